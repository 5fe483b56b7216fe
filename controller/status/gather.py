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

from controller.machine.record import AttemptRecord, JobRecord
from controller.plan.tasks import chief_of, plan
from controller.report.bounds import from_rows
from controller.report.metrics import last_rows
from controller.report.progress import epochs_asked
from controller.spec import JobSpec
from controller.status.view import group_failures
from controller.store.checkpoints import CheckpointManifest
from controller.store.lease import FileLease
from protocol.wire import TaskKey

SPEED_KEY = "examples_per_s"


def job_view(spec: JobSpec, job_dir: str | Path | None = None, now: float | None = None) -> dict:
    """The job at a glance (TornRecordError when ``job.json`` is not a job record)."""
    return folder_view(Path(job_dir or spec.job_dir), spec.name, str(chief_of(plan(spec)).key), now)


def folder_view(job_dir: Path, name: str, chief: str | None = None, now: float | None = None) -> dict:
    """What a job folder says of its job, with no spec at hand (``tfray jobs``): the chief is the one the
    last attempt ran, when not given. TornRecordError when ``job.json`` is not a job record."""
    now = time.time() if now is None else now
    attempts = JobRecord(job_dir, name).attempts()
    view: dict = {"job": name, "job_dir": str(job_dir)}
    if not attempts:
        return {**view, "state": "NOT_STARTED"}
    last = attempts[-1]
    holder = FileLease(job_dir).holder() if job_dir.exists() else None
    ended_at = None if not last.ended else last.updated_at
    view.update({
        "state": last.state, "message": last.message, "attempt": last.attempt,
        "started_at": last.started_at or None,
        "elapsed_s": round((ended_at or now) - last.started_at, 1) if last.started_at else None,
        "updated_s_ago": round(now - last.updated_at, 1) if last.updated_at else None,
        "driver": holder.describe() if holder else None,
        "restarts": last.restarts,
        "budgets": {budget: {"spent": last.spent.get(budget, 0), "limit": limit}
                    for budget, limit in last.limits.items()},
        "tasks": {task: {"state": state, **last.tasks.get(task, {})} for task, state in last.statuses.items()},
        "failures": group_failures(last.events),
        "attempts": [{"attempt": a.attempt, "state": a.state, "message": a.message, "restarts": a.restarts,
                      "failures": group_failures(a.events)} for a in attempts],
    })
    view["last_failure"] = view["failures"][-1].splitlines()[0] if view["failures"] else None
    view["training"] = _training(chief or _chief_of_record(last), job_dir, now)
    # What bounds the job: each training task's newest window of this attempt, and the verdict.
    view["bounds"] = from_rows([r for r in last_rows(job_dir) if r.get("attempt") == last.attempt])
    if view["training"] and not view["training"]["total_epochs"]:  # the training did not say: the spec may have
        view["training"]["total_epochs"] = epochs_asked(last.spec.get("args"))
    # The newest checkpoint is the same whatever the spec keeps: `keep` only decides what pruning deletes.
    latest = CheckpointManifest(job_dir, keep=1).latest()
    view["checkpoint"] = None if latest is None else {
        "step": latest.step, "epoch": latest.epoch, "path": latest.path,
        "age_s": round(now - latest.time, 1) if latest.time else None}
    return view


def _chief_of_record(attempt: AttemptRecord) -> str:
    """The chief of the tasks an attempt ran: ``chief-0``, or ``worker-0`` when it had no chief (the plan's rule,
    read from the attempt's record of what it trained, or else from its tasks)."""
    roles = attempt.spec.get("roles") or {}
    has_chief = bool(roles.get("chief")) if roles else str(TaskKey("chief", 0)) in attempt.statuses
    return str(TaskKey("chief", 0) if has_chief else TaskKey("worker", 0))


def _training(chief: str, job_dir: Path, now: float) -> dict | None:
    """The chief's newest report: step, epoch (of how many, when it said), examples/s and the metrics it logged."""
    rows = [r for r in last_rows(job_dir) if r.get("task") == chief]
    if not rows:
        return None
    row = rows[-1]
    # The epoch of the newest report that has one: a report after fit (final metrics) carries none.
    with_epoch = next((r for r in reversed(rows) if "epoch" in (r.get("values") or {})), {})
    values = dict(row.get("values") or {})
    values.pop("epoch", None)
    epoch = (with_epoch.get("values") or {}).get("epoch")
    speed = values.pop(SPEED_KEY, None)
    return {"task": chief, "step": row.get("step"), "epoch": epoch,
            "total_epochs": row.get("total_epochs") or with_epoch.get("total_epochs"),
            "examples_per_s": speed,
            "metrics": {k: v for k, v in values.items() if isinstance(v, (int, float, str))},
            "reported_s_ago": round(now - row["time"], 1) if isinstance(row.get("time"), (int, float)) else None}
