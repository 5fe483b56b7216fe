"""The driver's console, kept: ``logs/attempt-<N>/driver.log`` in the job folder, each line stamped.

What `tfray run` prints about a run (its ``tfray:`` lines, the warnings, the
progress lines, what the console shows of the tasks, the summary) would be
gone once its terminal closed; this file keeps it. Each line is written and
flushed as it is said, so a driver killed mid-run leaves everything it said.
The attempt's number (and so the file) is known only once the driver holds
the job's lease: lines said before then (the warnings before Ray starts)
are held with their time and written first. A run that never gets an
attempt (the job already succeeded, another driver holds it) writes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from protocol.layout import driver_log

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # local time, as `tfray status` says when a driver started


class DriverLog:
    """Stamped lines into the attempt's ``driver.log``, held until :meth:`open` names the attempt."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.path: Path | None = None
        self._held: list[str] = []
        self._file: TextIO | None = None
        self._closed = False
        self._lock = threading.Lock()  # the controller's logger may be called from another thread than print's

    def line(self, text: str) -> None:
        """Keep one line (or several, each stamped) as it is said."""
        stamp = time.strftime(TIME_FORMAT, time.localtime(self.clock()))
        stamped = "".join(f"{stamp} {part}".rstrip() + "\n" for part in text.splitlines() or [""])
        with self._lock:
            if self._closed:
                return
            if self._file is None:
                self._held.append(stamped)
                return
            self._write(stamped)

    def open(self, job_dir: str | os.PathLike, attempt: int) -> None:
        """The attempt is known: its ``driver.log`` is opened (appended to) and the held lines go first."""
        with self._lock:
            if self._closed or self._file is not None:
                return
            self.path = driver_log(job_dir, attempt)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Open for the run's life (close() ends it); line-buffered, and flushed at each write below.
                self._file = open(self.path, "a", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
            except OSError as err:
                self._give_up(err)
                return
            self._write("".join(self._held))
            self._held = []

    def _write(self, text: str) -> None:
        try:
            self._file.write(text)
            self._file.flush()  # a killed driver leaves every line it said
        except OSError as err:
            self._give_up(err)

    def _give_up(self, err: OSError) -> None:
        """The log cannot be written (a full disk, no permission): said once, and the run goes on without it.
        Said on stderr, not through the logger, whose records come back here."""
        print(f"warning: the driver's console is no longer kept in {self.path}: {err}", file=sys.stderr)
        self._closed = True
        self._held = []
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def close(self) -> None:
        """The run is over: the file is closed, and what was held for an attempt that never came is dropped."""
        with self._lock:
            self._closed = True
            self._held = []
            if self._file is not None:
                self._file.close()
                self._file = None

    def tee(self, terminal: TextIO) -> Tee:
        """A stream that writes to ``terminal`` and keeps each complete line here."""
        return Tee(terminal, self)

    @contextmanager
    def keeping(self, logger: logging.Logger) -> Iterator[DriverLog]:
        """For a run: the logger's records kept here too, as the CLI prints them (``tfray: ...``); at its end
        the file is closed. A filter that lets every record through, not a handler: a handler would count as
        one, and a caller that configured no logging would lose the warnings Python's last-resort handler
        prints to stderr."""
        keeper = _KeepRecords(self, "tfray: ")
        logger.addFilter(keeper)
        try:
            yield self
        finally:
            logger.removeFilter(keeper)
            self.close()


class Tee:
    """A text stream for ``print``: every write goes to the terminal at once; the driver log gets whole lines
    (``print`` writes a line's text and its newline in two calls)."""

    def __init__(self, terminal: TextIO, log: DriverLog):
        self.terminal = terminal
        self.log = log
        self._partial = ""

    def write(self, text: str) -> int:
        written = self.terminal.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.log.line(line)
        return written

    def flush(self) -> None:
        self.terminal.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()


class _KeepRecords(logging.Filter):
    def __init__(self, log: DriverLog, prefix: str):
        super().__init__()
        self.log = log
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        self.log.line(self.prefix + record.getMessage())
        return True
