"""What the terminal shows of the tasks' output: what happened, and nothing else.

Every line stays in the task's log file (``tfray logs``); the console leaves
out TensorFlow's C++ banners (its absl start-up line, INFO and WARNING lines,
and the CUDA probing errors of a machine without a GPU) unless ``--verbose``,
shows each distinct traceback once with every task it hit, and collapses a
flood of one noisy message (a PSS coordinator re-registering functions on a
replaced worker) into its first line and a count. Each line is prefixed with
its task; no colour codes.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

# TensorFlow's C++ log lines: severity letter, date, time, thread, file:line].
_CPP_LINE = re.compile(r"^([IWEF])\d{4} [\d:]+\.\d+\s+\d+ (\S+?):\d+\] ")
_BANNERS = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",)
_HARMLESS_CPP_ERRORS = ("cuda_platform.cc", "cuda_dnn.cc", "cuda_fft.cc", "cuda_blas.cc", "cuda_executor.cc",
                        "cuda_diagnostics.cc")
_FLOODS = ("Failed to register function remotely", "triggered tf.function retracing")
_TRACEBACK = "Traceback (most recent call last):"


def noise(line: str) -> bool:
    """TensorFlow's start-up and C++ chatter that says nothing about the job."""
    if line.startswith(_BANNERS):
        return True
    match = _CPP_LINE.match(line)
    if not match:
        return False
    severity, source = match.groups()
    return severity in "IW" or (severity == "E" and source.startswith(_HARMLESS_CPP_ERRORS))


class Console:
    def __init__(self, stream: TextIO | None = None, verbose: bool = False):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self._blocks: dict[str, list[str]] = {}  # task -> the traceback it is printing
        self._seen: dict[str, str] = {}  # a traceback's text -> the first task it was shown for
        self._floods: dict[tuple[str, str], int] = {}  # (task, message) -> lines held back

    def lines(self, task: str, lines: list[str]) -> None:
        for line in lines:
            self._line(task, line)
        self.stream.flush()

    def finish(self) -> None:
        """Say what was held back: how many lines of each flood, and tracebacks cut off by the end."""
        for (task, message), count in self._floods.items():
            if count:
                self._print(task, f"... {count} more line(s) like: {message}")
        self._floods.clear()
        for task in list(self._blocks):
            self._end_block(task)
        self.stream.flush()

    def _line(self, task: str, line: str) -> None:
        if task in self._blocks:
            block = self._blocks[task]
            block.append(line)
            if line and not line[0].isspace() and len(block) > 1:  # the exception's own line ends it
                self._end_block(task)
            return
        if not self.verbose and noise(line):
            return
        if line.startswith(_TRACEBACK) and not self.verbose:
            self._blocks[task] = [line]
            return
        flood = next((f for f in _FLOODS if f in line), None)
        if flood and not self.verbose:
            held = self._floods.get((task, flood))
            self._floods[(task, flood)] = 0 if held is None else held + 1
            if held is not None:
                return
        self._print(task, line)

    def _end_block(self, task: str) -> None:
        block = self._blocks.pop(task)
        text = "\n".join(block).replace(task, "<task>")
        first = self._seen.setdefault(text, task)
        if first == task:
            for line in block:
                self._print(task, line)
        else:
            self._print(task, f"(the same traceback as {first}) {block[-1]}")

    def _print(self, task: str, line: str) -> None:
        print(f"({task}) {line}", file=self.stream)
