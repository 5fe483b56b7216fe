"""The benchmark's event log: one JSON object a line, appended by every process of a run.

Every way of running the job (this project's controller, hand-launched
processes, Ray Train) writes the same events from the same training code,
so the figures are read the same way for all three: when a task process was
created, when it imported TensorFlow, built its strategy, restored, ended
each epoch, wrote each checkpoint, and when a fault was injected. Each line
is one ``write`` on a file opened with ``O_APPEND``, so lines from several
processes never interleave. No TensorFlow here: the harness and the drivers
import this module.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

EVENTS_ENV = "TFRAY_BENCH_EVENTS"  # where a process appends its events


def log_event(path: str | os.PathLike | None, event: str, **fields) -> None:
    """Append one event (with wall time and pid) to ``path``; a no-op without a path."""
    if not path:
        return
    record = {"event": event, "time": time.time(), "pid": os.getpid(), **fields}
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_events(path: str | os.PathLike) -> list[dict]:
    """Every event of a run, in file order (a torn last line from a killed process is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def chief_step(events: str) -> int:
    """The newest step chief-0 reported at an epoch end (0 before the first)."""
    return max((e.get("step", 0) for e in read_events(events) if e["event"] == "epoch_end" and e["task"] == "chief-0"),
               default=0)
