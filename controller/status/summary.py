"""What ``tfray run`` prints when a job ends: how it ended, how long it took, what failed, which faults fired,
what is left.

Only files that exist are named, and every planned fault is accounted for:
fired (and when) or never fired (the job ended before its moment came, or a
script reported no steps).
"""

from __future__ import annotations

from pathlib import Path

from controller.report.bounds import from_rows
from controller.report.metrics import METRICS_FILE, last_rows
from controller.report.tensorboard import TENSORBOARD_DIR
from controller.spec import FaultSpec, JobSpec
from controller.states.events import NETWORK_FIRED, NetworkFault, TaskReported
from controller.states.result import JobResult
from controller.states.state import JobState
from controller.states.text import duration
from controller.status.view import bounds_lines, group_failures
from protocol.layout import LOGS_DIR, MODEL_DIR


def fault_lines(faults: list[FaultSpec], events: list) -> list[str]:
    """One line per planned fault: fired or not (a network fault fired when the controller carried it out)."""
    fired = [e.details.get("fault", {}) for e in events if isinstance(e, TaskReported) and e.what == "fault_fired"]
    fired += [e.fault for e in events if isinstance(e, NetworkFault) and e.what in NETWORK_FIRED]
    lines = []
    for fault in faults:
        planned = fault.model_dump(mode="json")
        what = f"{fault.action.value} {fault.task} at {fault.when()} (run {fault.restart} of the cluster)"
        hit = any(all(f.get(k) == v for k, v in planned.items()) for f in fired)
        lines.append(f"fault {what}: {'fired' if hit else 'never fired (its moment did not come)'}")
    return lines


def summary_lines(spec: JobSpec, result: JobResult, spec_path: str | None = None) -> list[str]:
    lines = [f"job {spec.name} {result.state.value} (attempt {result.attempt}, {result.restarts} cluster "
             f"restart(s)): {result.message}"]
    if result.elapsed_s is not None:  # the cluster's start and every restart included: the time it took
        earlier = " (this attempt alone)" if result.attempt > 1 else ""
        lines.append(f"  total time {duration(result.elapsed_s)}{earlier}")
    lines += [f"  {line}" for line in group_failures(result.events)]
    gone = [task for task, status in result.statuses.items() if status in ("FAILED", "LOST")]
    if gone and result.state is JobState.SUCCEEDED:
        lines.append(f"  finished without: {', '.join(gone)}")
    lines += [f"  {line}" for line in fault_lines(spec.faults, result.events)]
    if result.chief_metrics:
        step, values = result.chief_metrics.get("step"), result.chief_metrics.get("values", {})
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
                          if isinstance(v, (int, float, str)))
        lines.append(f"{result.chief_metrics.get('task', 'chief')} at step {step}: {shown}")
    job = Path(result.job_dir)
    # What bounded the job at its end, from each training task's last window of this attempt.
    bounds = from_rows([r for r in last_rows(job) if r.get("attempt") == result.attempt])
    lines += bounds_lines(bounds, table=False)
    if result.latest_checkpoint:
        lines.append(f"latest checkpoint: step {result.latest_checkpoint.step} at {result.latest_checkpoint.path}")
    for label, path in (("model", job / MODEL_DIR), ("metrics", job / METRICS_FILE),
                        ("logs", job / LOGS_DIR / f"attempt-{result.attempt}")):
        if path.exists() and (path.is_file() or any(path.iterdir())):
            lines.append(f"{label}: {path}")
    if (job / TENSORBOARD_DIR).is_dir():
        lines.append(f"curves: tfray tensorboard {spec_path or 'JOB.yaml'}")
    return lines
