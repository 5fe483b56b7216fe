"""A task's output: every line into its log file in the job folder, and in batches to the driver's console.

The training process's stdout and stderr come to the task actor through a
pipe. Each line is written to ``<job>/logs/attempt-<N>/<task>.log`` (on the
task's node when it does not share the storage path; gathered to the head
after the run), rotated past a size so a chatty job cannot fill a disk, and
queued for the driver, which gets the queue as one ``output`` report about
every ``output_flush_s``. The driver decides what the console shows; the
file keeps everything. Lines the launcher printed before the run (its
TensorFlow import) open the file.
"""

from __future__ import annotations

import os
import threading
import time

from protocol.layout import task_log
from protocol.wire import OutputReport, TaskKey


class TaskOutput:
    def __init__(self, inbox, key: TaskKey, job_dir: str, attempt: int, max_bytes: int, backups: int,
                 flush_s: float):
        self.inbox = inbox
        self.key = key
        self.path = task_log(job_dir, attempt, str(key))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.backups, self.flush_s = max_bytes, backups, flush_s
        self._file = open(self.path, "a", encoding="utf-8", errors="replace")
        self._queued: list[str] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._flush_every, name="tfray-output", daemon=True).start()

    def note(self, text: str) -> None:
        """A line of tfray's own about this task (in the log and on the console)."""
        self.write(f"[tfray] {text}\n")

    def write(self, line: str, console: bool = True) -> None:
        with self._lock:
            self._file.write(line)
            if self._file.tell() > self.max_bytes:
                self._rotate()
            if console:
                self._queued.append(line.rstrip("\n"))

    def flush(self) -> None:
        """Send what is queued to the driver now (one report)."""
        with self._lock:
            lines, self._queued = self._queued, []
            self._file.flush()
        if lines:
            self.inbox.report.remote(OutputReport(self.key, lines))

    def close(self) -> None:
        self._closed.set()
        self.flush()
        with self._lock:
            self._file.close()

    def _flush_every(self) -> None:
        while not self._closed.wait(self.flush_s):
            self.flush()

    def _rotate(self) -> None:
        """``<task>.log`` becomes ``<task>.log.1`` (and so on, the oldest dropped); a new file starts."""
        self._file.close()
        for n in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{n}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{n + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._file = open(self.path, "a", encoding="utf-8", errors="replace")
        self._file.write(f"[tfray] {time.ctime()}: earlier lines are in {self.path.name}.1\n")
