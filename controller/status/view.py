"""Status that explains: a job at a glance, and its failures, for people.

Formats what ``controller.status.gather`` gathered: state, attempt and time,
the chief's step, speed and metrics, the newest checkpoint and its age, each
task's state and node, restarts and budgets, the last failure. Each failure
is its time, task, node, cause and the decision taken with its reason;
identical failures on many tasks are one line ("worker-1, worker-2: ...").
"""

from __future__ import annotations

import time

from controller.report.progress import epochs_text
from controller.states.events import Decision, JobEvent
from controller.states.text import duration


def _last_line(error: str | None) -> str:
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    # The last line of a traceback names the exception; that is what tells failures apart.
    return lines[-1][:160] if lines else ""


def group_failures(events: list[JobEvent] | tuple[JobEvent, ...]) -> list[str]:
    """One line per distinct (cause, action, reason, error) with every task it hit."""
    groups: dict[tuple, list[Decision]] = {}
    for event in events:
        if isinstance(event, Decision):
            error = _last_line(event.error).replace(event.task, "<task>")  # same failure, other task
            groups.setdefault((event.cause, event.action, event.reason, error), []).append(event)
    lines = []
    for (cause, action, reason, error), hits in groups.items():
        tasks = ", ".join(dict.fromkeys(e.task for e in hits))
        when = time.strftime("%H:%M:%S", time.localtime(hits[0].time))
        nodes = ", ".join(dict.fromkeys((e.node or "?")[:12] for e in hits))
        times = f" (x{len(hits)})" if len(hits) > 1 else ""
        lines.append(f"{when} {tasks} on node {nodes}: {cause} -> {action}{times}: {reason}"
                     + (f"\n      {error}" if error else ""))
    return lines


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_status(view: dict, verbose: bool = False) -> str:
    """The text of `tfray status`: a few lines at a glance; ``verbose`` adds every attempt and failure."""
    if view["state"] == "NOT_STARTED":
        return f"job {view['job']}: has not run yet (no job state in {view['job_dir']})"
    ago = "running for" if view.get("driver") else "ran for"
    out = [f"job {view['job']}: {view['state']}, attempt {view['attempt']}, {ago} {duration(view['elapsed_s'])}"
           + (f"  ({view['message']})" if view.get("message") and not verbose else "")]
    training = view.get("training")
    if training:
        parts = [f"step {training['step']}"]
        if training.get("epoch") is not None:
            parts.append(f"epoch {epochs_text(training['epoch'], training.get('total_epochs'))}")
        if training.get("examples_per_s") is not None:
            parts.append(f"{training['examples_per_s']:.0f} examples/s")
        metrics = "  ".join(f"{k} {_number(v)}" for k, v in training["metrics"].items())
        out.append("  " + ", ".join(parts) + (f";  {metrics}" if metrics else "")
                   + f"  (reported {duration(training['reported_s_ago'])} ago by {training['task']})")
    checkpoint = view.get("checkpoint")
    out.append(f"  checkpoint: step {checkpoint['step']}, {duration(checkpoint['age_s'])} old, {checkpoint['path']}"
               if checkpoint else "  checkpoint: none yet")
    tasks = view.get("tasks") or {}
    if tasks:
        out.append("  tasks: " + ", ".join(f"{name} {t['state']}" + (f" on {t['node'][:12]}" if t.get("node") else "")
                                           for name, t in tasks.items()))
    budgets = ", ".join(f"{name} {b['spent']}/{b['limit']}" for name, b in view.get("budgets", {}).items())
    out.append(f"  restarts: {view['restarts']}" + (f"; budgets spent: {budgets}" if budgets else ""))
    if view.get("driver"):
        out.append(f"  driver: {view['driver']}")
    if not verbose:
        if view.get("last_failure"):
            more = len(view["failures"]) - 1
            out.append(f"  last failure: {view['last_failure']}" + (f" (and {more} more: --verbose)" if more else ""))
        out.append(f"  job folder: {view['job_dir']}")
        return "\n".join(out)
    out.append(f"  job folder: {view['job_dir']}")
    for attempt in view["attempts"]:
        out.append(f"attempt {attempt['attempt']}: {attempt['state']}, {attempt['restarts']} restart(s)"
                   + (f"\n  {attempt['message']}" if attempt["message"] else ""))
        out.extend(f"  {line}" for line in attempt["failures"])
    return "\n".join(out)
