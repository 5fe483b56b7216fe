"""The metrics collector: every task's reports in one place.

Tasks send their reports (``protocol.wire``: metrics, checkpoints, ...) to
the job's report inbox; the controller drains it each step and hands them
here. Metrics reports are appended to ``metrics.jsonl`` under the job folder
(the record of truth, one JSON object a line: the report's ``to_json`` with
job, attempt, cluster restart and wall time), summarised into a progress line
for the CLI (``controller/report/progress.py``), and (the chief's and the
evaluator's) written as TensorBoard scalars
(``controller/report/tensorboard.py``). The other reports go back to the
caller.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, TextIO

from controller.report.bounds import figures, from_rows
from controller.report.progress import Pace, Progress
from controller.report.tensorboard import ScalarWriter
from protocol.wire import MetricsReport, Report

METRICS_FILE = "metrics.jsonl"


class MetricsCollector:
    """Writes reports as JSON lines and tracks the latest progress of the chief."""

    def __init__(
        self,
        job_dir: str | Path,
        job_name: str,
        attempt: int,
        chief: str,
        on_progress: Callable[[Progress], None] | None = None,
        scalars: ScalarWriter | None = None,
        total_epochs: int | None = None,
        clock: Callable[[], float] = time.time,
        reserved: Callable[[str], dict] | None = None,
    ):
        self.path = Path(job_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.job_name = job_name
        self.attempt = attempt
        self.chief = chief
        self.on_progress = on_progress
        self.scalars = scalars
        self.clock = clock
        self.pace = Pace(clock(), total_epochs)  # total_epochs: what the spec asks for, when it says
        self.restart = 0  # the cluster restart the reports belong to (set by the controller)
        self.latest: dict[str, dict] = {}  # task -> its latest metrics.jsonl row
        # task -> what it reserved and where it runs (cpu_share, memory_mb, node), added to its windows' rows
        self.reserved = reserved or (lambda task: {})
        self.windows: dict[str, dict] = {}  # task -> its latest row with a window
        self.bounds: dict | None = None  # what bounds the job, from each task's newest window (report/bounds.py)
        self._file: TextIO | None = None

    def handle(self, reports: list[Report]) -> list[Report]:
        """Record metrics reports; return the other reports (checkpoints, task events...) for the controller."""
        others = []
        lines = []
        chief_reported = windowed = False
        for report in reports:
            if not isinstance(report, MetricsReport):
                others.append(report)
                continue
            row = {"job": self.job_name, "attempt": self.attempt, "restart": self.restart, "time": self.clock(),
                   **report.to_json()}
            if "breakdown" in row:
                row["breakdown"].update({k: v for k, v in self.reserved(report.task).items() if v is not None})
                self.windows[report.task], windowed = row, True
                window = figures(report.task, row["breakdown"])
                if self.scalars is not None and window is not None:
                    self.scalars.write_window(report, vars(window))
            if report.task == self.chief:
                chief_reported = True
                # Epochs are timed on the chief's clock: when it reported, not when a drain brought it here.
                self.pace.observe(row, report.task_time)
            lines.append(json.dumps(row, sort_keys=True, default=str))
            self.latest[report.task] = row
            if self.scalars is not None:
                self.scalars.write(report)
        if lines:
            if windowed:
                self.bounds = from_rows(list(self.windows.values()))
            self._append(lines)
            if self.scalars is not None:
                self.scalars.flush()
            # Only a new metrics report of the chief is progress (its heartbeats and checkpoints are not).
            if self.on_progress and chief_reported:
                word = self.bounds["job"]["word"] if self.bounds else None
                self.on_progress(self.pace.progress(self.chief, self.latest[self.chief], self.clock(), bound=word))
        return others

    def _append(self, lines: list[str]) -> None:
        """One write and flush for every row a drain brought (the file is only ever appended to)."""
        if self._file is None:
            self._file = self.path.open("a")
        self._file.write("\n".join(lines) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self.scalars is not None:
            self.scalars.close()
        if self._file is not None:
            self._file.close()
            self._file = None


def read_metrics(job_dir: str | Path) -> list[dict]:
    """Every metrics row of a job (for tests, benchmarks and `status`)."""
    path = Path(job_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_rows(job_dir: str | Path, max_bytes: int = 256 * 1024) -> list[dict]:
    """The rows in the last ``max_bytes`` of ``metrics.jsonl`` (a days-long job's file is never read whole);
    a row cut at the window's start or torn at the file's end is skipped."""
    path = Path(job_dir) / METRICS_FILE
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - max_bytes))
            tail = f.read()
    except OSError:
        return []
    rows = []
    for line in tail.splitlines()[1 if size > max_bytes else 0:]:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
