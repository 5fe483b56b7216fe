"""Every report of the chief and the evaluator as TensorBoard event files, written by the driver.

``tensorboard --logdir <job folder>`` then shows the loss and accuracy curves
of every attempt with no user code: one run per attempt and task
(``tensorboard/attempt-2/chief-0``), each numeric value a scalar at its step.
The files are written with tensorboardX, which needs no TensorFlow (the
driver never imports it; tensorboard's own writer imports TensorFlow when it
is installed). ``tfray tensorboard JOB.yaml`` serves the job folder on
loopback.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from controller import settings
from protocol.wire import MetricsReport

log = logging.getLogger("tfray")

TENSORBOARD_DIR = "tensorboard"
# A window's figures as scalars: (tag under breakdown/, figure, scale).
WINDOW_SCALARS = (("step_ms", "step_s", 1000.0), ("input_share", "input", 1.0), ("compute_share", "compute", 1.0),
                  ("peers_share", "peers", 1.0), ("checkpoint_share", "checkpoint", 1.0),
                  ("cpu_cores", "cpu_cores", 1.0), ("memory_peak_mb", "memory_peak_mb", 1.0))


class ScalarWriter:
    """Writes report values as scalars, one event file per (attempt, task); the files stay open for the run."""

    def __init__(self, job_dir: str | Path, attempt: int, tasks: set[str]):
        self.root = Path(job_dir) / TENSORBOARD_DIR / f"attempt-{attempt}"
        self.tasks = set(tasks)  # whose reports are written (the chief, the evaluator)
        self._writers: dict = {}
        self._broken = False
        self._flushed_at = 0.0

    def write(self, report: MetricsReport) -> None:
        if report.task not in self.tasks:
            return
        values = [(name, float(value)) for name, value in report.values.items()
                  if isinstance(value, (int, float)) and not isinstance(value, bool)]
        self._write(report, values)

    def write_window(self, report: MetricsReport, figures: dict) -> None:
        """Where a training task's time went in its window (``controller/report/bounds.py``'s figures), as
        ``breakdown/*`` scalars in that task's run: every training task's, the chief's or not."""
        values = [(f"breakdown/{name}", float(figures[key]) * scale) for name, key, scale in WINDOW_SCALARS
                  if isinstance(figures.get(key), (int, float))]
        self._write(report, values)

    def _write(self, report: MetricsReport, values: list[tuple[str, float]]) -> None:
        if self._broken or not values:
            return
        try:
            from tensorboardX.proto import event_pb2, summary_pb2

            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=name, simple_value=value)
                                                 for name, value in values])
            event = event_pb2.Event(wall_time=report.task_time or time.time(), step=int(report.step),
                                    summary=summary)
            self._writer(report.task).write_event(event)
        except Exception as err:  # event files are a view of metrics.jsonl: never fail the job for them
            log.warning("TensorBoard event files are not written any more (%s: %s); metrics.jsonl has every "
                        "report", type(err).__name__, err)
            self._broken = True

    def flush(self) -> None:
        """Make the events visible to a running TensorBoard (not too often: a flush syncs the file)."""
        now = time.monotonic()
        if now - self._flushed_at < settings.TENSORBOARD_FLUSH_S:
            return
        self._flushed_at = now
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _writer(self, task: str):
        if task not in self._writers:
            from tensorboardX.event_file_writer import EventsWriter  # synchronous: no thread, no queue

            folder = self.root / task
            folder.mkdir(parents=True, exist_ok=True)
            self._writers[task] = EventsWriter(str(folder / "events"))
        return self._writers[task]
