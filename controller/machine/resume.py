"""What a re-run of a job will do, said before it starts.

Running a job name again resumes it from its newest complete checkpoint.
That is what a user wants after a crash, and a surprise in two other cases:
the job already succeeded (the run would train nothing and report success
again), or the spec changed under the same name (the run would carry on
from the old weights). Both are said here; ``--fresh`` moves the old job
folder aside and starts over.
"""

from __future__ import annotations

import time
from pathlib import Path

from controller.machine.record import AttemptRecord, JobRecord, TornRecordError
from controller.spec import JobSpec
from controller.store.checkpoints import CheckpointManifest


def fingerprint(spec: JobSpec) -> dict:
    """What decides what a job trains: its strategy, its roles' counts, its entrypoint and arguments."""
    ep = spec.entrypoint
    return {"strategy": spec.strategy.value, "roles": {r.value: n for r, n in spec.counts().items() if n},
            "entrypoint": f"{ep.kind} {ep.function or ep.script or ep.module}",
            "args": list(ep.argv) if ep.argv is not None else dict(ep.args)}


def last_attempt(spec: JobSpec) -> AttemptRecord | None:
    try:
        attempts = JobRecord(spec.job_dir, spec.name).attempts()
    except TornRecordError:
        return None
    return attempts[-1] if attempts else None


def already_succeeded(spec: JobSpec, spec_path: str = "JOB.yaml") -> str | None:
    """The message for a job whose last attempt succeeded (None otherwise)."""
    last = last_attempt(spec)
    if last is None or last.state != "SUCCEEDED":
        return None
    latest = CheckpointManifest(spec.job_dir, keep=spec.checkpoint.keep).latest()
    at = f" at step {latest.step}" if latest else ""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.updated_at)) if last.updated_at else "before"
    return (f"job {spec.name} already SUCCEEDED{at} (attempt {last.attempt}, {when}); nothing to train. "
            f"`tfray run {spec_path} --fresh` starts over (the old job folder is moved aside), or give the job "
            "another name")


def drift(spec: JobSpec) -> str | None:
    """A warning when the spec differs from the last attempt's in what it trains (None when it does not)."""
    last = last_attempt(spec)
    if last is None or not last.spec:
        return None
    now = fingerprint(spec)
    changed = [f"{key} {last.spec.get(key)!r} -> {now[key]!r}" for key in now if last.spec.get(key) != now[key]]
    if not changed:
        return None
    return (f"job {spec.name}'s spec differs from attempt {last.attempt}'s ({'; '.join(changed)}), but the run "
            "resumes from that attempt's checkpoints; `--fresh` or another job name starts over")


def move_aside(spec: JobSpec) -> Path | None:
    """Start the job over: its folder becomes ``<name>.old-<time>`` (nothing is deleted); where it went."""
    if not spec.job_dir.exists():
        return None
    aside = spec.job_dir.with_name(f"{spec.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    spec.job_dir.rename(aside)
    return aside
