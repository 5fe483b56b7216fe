"""Status that explains: a job's attempts, counters and failures, for people.

Reads what the controller keeps in ``job.json`` (rewritten at every state
change and decision) and prints each failure with its time, task, node,
cause and the decision taken with its budget counter. Identical failures on
many tasks are grouped into one line ("worker-1, worker-2: ...") rather
than printed N times.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def _first_line(error: str | None) -> str:
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    # The last line of a traceback names the exception; that is what tells failures apart.
    return lines[-1][:160] if lines else ""


def group_failures(events: list[dict]) -> list[str]:
    """One line per distinct (cause, action, error) with every task it hit."""
    groups: dict[tuple, list[dict]] = {}
    for event in events:
        if "action" not in event:
            continue
        error = _first_line(event.get("error")).replace(event["task"], "<task>")  # same failure, other task
        key = (event["cause"], event["action"], event.get("reason", ""), error)
        groups.setdefault(key, []).append(event)
    lines = []
    for (cause, action, reason, error), hits in groups.items():
        tasks = ", ".join(dict.fromkeys(e["task"] for e in hits))
        when = time.strftime("%H:%M:%S", time.localtime(hits[0]["time"]))
        nodes = ", ".join(dict.fromkeys((e.get("node") or "?")[:12] for e in hits))
        times = f" (x{len(hits)})" if len(hits) > 1 else ""
        lines.append(f"{when} {tasks} on node {nodes}: {cause} -> {action}{times}: {reason}"
                     + (f"\n      {error}" if error else ""))
    return lines


def format_status(job_dir: str | Path) -> str:
    """The text of `tfray status`."""
    path = Path(job_dir) / "job.json"
    if not path.exists():
        return f"no job state at {path}: the job has not run yet"
    record = json.loads(path.read_text())
    out = [f"job {record['name']} ({len(record['attempts'])} attempt(s)), state in {path}"]
    for attempt in record["attempts"]:
        spent = ", ".join(f"{k} {attempt.get('spent', {}).get(k, 0)}/{v}"
                          for k, v in attempt.get("limits", {}).items())
        out.append(f"attempt {attempt['attempt']}: {attempt['state']}, {attempt.get('restarts', 0)} restart(s)"
                   + (f"; budgets {spent}" if spent else "")
                   + (f"\n  {attempt['message']}" if attempt.get("message") else ""))
        statuses = attempt.get("statuses", {})
        if statuses:
            out.append("  tasks: " + ", ".join(f"{t} {s}" for t, s in statuses.items()))
        out.extend(f"  {line}" for line in group_failures(attempt.get("events", [])))
    return "\n".join(out)
