"""What `tfray status` knows of a job, gathered from its folder into one JSON-able dict.

Everything comes from files the driver keeps current while the job runs:
``job.json`` (state, attempt, tasks, budgets, every decision), the tail of
``metrics.jsonl`` (the chief's step, epoch, speed and metrics), the
checkpoint manifest (the newest complete checkpoint and its age) and the
lease (which driver runs the job now). Nothing here talks to Ray, so it
reads a job on another machine as well, once its folder is here (a
storage URI is read through ``controller.store.storage``; a cluster's head
through the Jobs API, ``controller.remote.status``).
"""

from __future__ import annotations

import time
from pathlib import Path

from controller.machine.record import JobRecord
from controller.plan.tasks import chief_of, plan
from controller.report.metrics import last_rows
from controller.spec import JobSpec
from controller.status.view import group_failures
from controller.store.checkpoints import CheckpointManifest
from controller.store.lease import FileLease

SPEED_KEY = "examples_per_s"


def job_view(spec: JobSpec, job_dir: str | Path | None = None, now: float | None = None) -> dict:
    """The job at a glance (TornRecordError when ``job.json`` is not a job record)."""
    job_dir = Path(job_dir or spec.job_dir)
    now = time.time() if now is None else now
    attempts = JobRecord(job_dir, spec.name).attempts()
    view: dict = {"job": spec.name, "job_dir": str(job_dir)}
    if not attempts:
        return {**view, "state": "NOT_STARTED"}
    last = attempts[-1]
    holder = FileLease(job_dir).holder() if job_dir.exists() else None
    ended_at = None if not last.ended else last.updated_at
    view.update({
        "state": last.state, "message": last.message, "attempt": last.attempt,
        "started_at": last.started_at or None,
        "elapsed_s": round((ended_at or now) - last.started_at, 1) if last.started_at else None,
        "driver": holder.describe() if holder else None,
        "restarts": last.restarts,
        "budgets": {name: {"spent": last.spent.get(name, 0), "limit": limit} for name, limit in last.limits.items()},
        "tasks": {task: {"state": state, **last.tasks.get(task, {})} for task, state in last.statuses.items()},
        "failures": group_failures(last.events),
        "attempts": [{"attempt": a.attempt, "state": a.state, "message": a.message, "restarts": a.restarts,
                      "failures": group_failures(a.events)} for a in attempts],
    })
    view["last_failure"] = view["failures"][-1].splitlines()[0] if view["failures"] else None
    view["training"] = _training(spec, job_dir, now)
    latest = CheckpointManifest(job_dir, keep=spec.checkpoint.keep).latest()
    view["checkpoint"] = None if latest is None else {
        "step": latest.step, "epoch": latest.epoch, "path": latest.path,
        "age_s": round(now - latest.time, 1) if latest.time else None}
    return view


def _training(spec: JobSpec, job_dir: Path, now: float) -> dict | None:
    """The chief's newest report: step, epoch, examples/s and the metrics it logged."""
    chief = str(chief_of(plan(spec)).key)
    row = next((r for r in reversed(last_rows(job_dir)) if r.get("task") == chief), None)
    if row is None:
        return None
    values = dict(row.get("values") or {})
    epoch = values.pop("epoch", None)
    speed = values.pop(SPEED_KEY, None)
    return {"task": chief, "step": row.get("step"), "epoch": epoch, "examples_per_s": speed,
            "metrics": {k: v for k, v in values.items() if isinstance(v, (int, float, str))},
            "reported_s_ago": round(now - row["time"], 1) if isinstance(row.get("time"), (int, float)) else None}
