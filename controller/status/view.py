"""Status that explains: a job at a glance, its failures, and what bounds it, for people.

Formats what ``controller.status.gather`` gathered: state, attempt and time,
the chief's step, speed and metrics, the newest checkpoint and its age, each
task's state and node, restarts and budgets, the last failure. Each failure
is its time, task, node, cause and the decision taken with its reason;
identical failures on many tasks are one line ("worker-1, worker-2: ...").
"""

from __future__ import annotations

import time

from controller.report.progress import epochs_text
from controller.states.events import CheckpointFallback, CheckpointQuarantined, Decision, JobEvent
from controller.states.text import duration, plain


def _last_line(error: str | None) -> str:
    lines = [line.strip() for line in plain(error or "").splitlines() if line.strip()]
    # The last line of a traceback names the exception; that is what tells failures apart.
    return lines[-1][:160] if lines else ""


def group_failures(events: list[JobEvent] | tuple[JobEvent, ...]) -> list[str]:
    """One line per distinct (cause, action, reason, error) with every task it hit; a checkpoint set aside,
    and the one restored instead, one line each, in their turn."""
    groups: dict[tuple, list[JobEvent]] = {}
    for event in events:
        if isinstance(event, Decision):
            same = _last_line(event.error).replace(event.task, "\0")  # the same failure names another task
            groups.setdefault((event.cause, event.action, event.reason, same), []).append(event)
        elif isinstance(event, (CheckpointQuarantined, CheckpointFallback)):
            groups[(event.kind, len(groups))] = [event]
    return [_checkpoint_line(hits[0]) if len(key) == 2 else _failure_line(key, hits) for key, hits in groups.items()]


def _failure_line(key: tuple, hits: list[Decision]) -> str:
    cause, action, reason, _ = key
    tasks = ", ".join(dict.fromkeys(e.task for e in hits))
    nodes = ", ".join(dict.fromkeys((e.node or "?")[:12] for e in hits))
    times = f" (x{len(hits)})" if len(hits) > 1 else ""
    error = _last_line(hits[0].error)  # in the first task's own words, its name where it says it
    if error and len(hits) > 1 and hits[0].task in error:
        error = f"{hits[0].task}: {error}"
    return (f"{_clock(hits[0].time)} {tasks} on node {nodes}: {cause} -> {action}{times}: {reason}"
            + (f"\n      {error}" if error else ""))


def _checkpoint_line(event: CheckpointQuarantined | CheckpointFallback) -> str:
    if isinstance(event, CheckpointQuarantined):
        return f"{_clock(event.time)} checkpoint of step {event.step} set aside as {event.to}: {event.reason}"
    steps = ", ".join(f"step {step}" for step in event.instead_of)
    return f"{_clock(event.time)} restored the checkpoint of step {event.step} instead of {steps}: {event.path}"


def _clock(epoch_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_s))


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _share(value) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, (int, float)) else "-"


def _task_row(task: str, entry: dict) -> list[str]:
    f = entry["figures"]
    cpu = f"{f['cpu_cores']:.2f}" if f.get("cpu_cores") is not None else "-"
    cpu += f"/{f['cpu_share']:g}" if f.get("cpu_share") else (f"/{f['node_cores']}" if f.get("node_cores") else "")
    memory = f"{f['memory_peak_mb']:.0f}" if f.get("memory_peak_mb") else "-"
    memory += f"/{f['memory_limit_mb']:.0f}" if f.get("memory_limit_mb") else ""
    return [task, (f.get("node") or "-")[:12], f"{1000 * f['step_s']:.1f}ms", _share(f.get("input")),
            _share(f.get("compute")), _share(f.get("peers")), _share(f.get("loop")), _share(f.get("checkpoint")), cpu,
            memory,
            entry["verdict"]["word"]]


def bounds_lines(bounds: dict | None, table: bool = True) -> list[str]:
    """What bounds the job (``controller/report/bounds.py``'s verdict): the verdict with its figure and what to
    do, and (``table``) each training task's newest window: its step; the shares of its steps waiting for
    input, computing, in the all-reduce and in the training loop's own cost; the share of its window held
    by checkpoints; the cores it used of those it reserved (or of its node's); its peak memory of what it
    reserved (or of its node's), in MB."""
    if not bounds:
        return []
    job = bounds["job"]
    lines = [f"bound: {job['word']}: {job['task']}: {job['figure']}"]
    lines += [f"  what to do: {action}" for action in job["actions"]]
    if table:
        rows = [["TASK", "NODE", "STEP", "INPUT", "COMPUTE", "PEERS", "LOOP", "CKPT", "CPU", "MEMORY MB",
                 "VERDICT"]]
        rows += [_task_row(task, entry) for task, entry in bounds["tasks"].items()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return lines


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
    out.extend(f"  {line}" for line in bounds_lines(view.get("bounds")))
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
