"""Status that explains: a job's attempts, counters and failures, for people.

Reads the job's record (``controller/record.py``: typed attempts and events)
and only formats it: each failure with its time, task, node, cause and the
decision taken with its reason. Identical failures on many tasks are grouped
into one line ("worker-1, worker-2: ...") rather than printed N times.
"""

from __future__ import annotations

import time
from pathlib import Path

from controller.events import Decision, JobEvent
from controller.record import JobRecord


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


def format_status(job_dir: str | Path, job_name: str) -> str:
    """The text of `tfray status`."""
    record = JobRecord(job_dir, job_name)
    if not record.path.exists():
        return f"no job state at {record.path}: the job has not run yet"
    attempts = record.attempts()
    out = [f"job {job_name} ({len(attempts)} attempt(s)), state in {record.path}"]
    for attempt in attempts:
        spent = ", ".join(f"{k} {attempt.spent.get(k, 0)}/{v}" for k, v in attempt.limits.items())
        out.append(f"attempt {attempt.attempt}: {attempt.state}, {attempt.restarts} restart(s)"
                   + (f"; budgets {spent}" if spent else "")
                   + (f"\n  {attempt.message}" if attempt.message else ""))
        if attempt.statuses:
            out.append("  tasks: " + ", ".join(f"{t} {s}" for t, s in attempt.statuses.items()))
        out.extend(f"  {line}" for line in group_failures(attempt.events))
    return "\n".join(out)
