"""What the terminal shows of the tasks' output: what happened, and nothing else.

Every line stays in the task's log file (``tfray logs``); unless
``--verbose``, the console leaves out TensorFlow's C++ banners (its absl
start-up line, INFO and WARNING lines, and the CUDA probing errors of a
machine without a GPU), shows each distinct traceback once with every task it
hit, collapses a flood of one noisy message (a PSS coordinator failing to
register or remove functions on a lost worker, each with its gRPC details)
into its first line and one line that counts the rest, and shows one task's
Keras progress bar: the chief's (``progress_of``), whose the job's are; every
worker prints its own, the same bar again with its own per-step numbers. A
line a progress bar redraws (carriage returns, backspaces) is shown as it
ends up. Each line is prefixed with its task; no colour codes.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import TextIO

from controller.states.text import redrawn
from protocol.wire import TaskKey

# TensorFlow's C++ log lines: severity letter, date, time, thread, file:line].
_CPP_LINE = re.compile(r"^([IWEF])\d{4} [\d:]+\.\d+\s+\d+ (\S+?):\d+\] ")
_BANNERS = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",)
_HARMLESS_CPP_ERRORS = ("cuda_platform.cc", "cuda_dnn.cc", "cuda_fft.cc", "cuda_blas.cc", "cuda_executor.cc",
                        "cuda_diagnostics.cc")
# A flood's message -> the words its count line uses: a PSS coordinator registers (and removes) each new
# function on every worker, and says so once per function and worker that is gone.
_FLOODS = {"Failed to register function remotely": "Failed to register/remove function remotely",
           "Failed to remove function remotely": "Failed to register/remove function remotely",
           "triggered tf.function retracing": "triggered tf.function retracing"}
# The lines a flood's message goes on with: gRPC's details of the call that failed, and TF's hint.
_FLOOD_DETAIL = re.compile(r"^\s*$|^\s*(:|\{|Additional GRPC error information|This could happen if)")
_REMOTE_TASK = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")
_TRACEBACK = "Traceback (most recent call last):"
# tf_keras's bar (`12/50 [=====>....] - ETA: 3s - loss: 0.41`, `7/Unknown - 2s`), Keras 3's (`12/50 ━━━━...`),
# and the `Epoch 2/3` line fit prints before each bar.
_PROGRESS_BAR = re.compile(r"^\s*\d+/(\d+|Unknown)(\s+(\[[=>.]*\]|━)|\s+-\s)|^Epoch \d+/\d+$")


def noise(line: str) -> bool:
    """TensorFlow's start-up and C++ chatter that says nothing about the job."""
    if line.startswith(_BANNERS):
        return True
    match = _CPP_LINE.match(line)
    if not match:
        return False
    severity, source = match.groups()
    return severity in "IW" or (severity == "E" and source.startswith(_HARMLESS_CPP_ERRORS))


def progress_bar(line: str) -> bool:
    """A line of a Keras progress bar (``fit(verbose=1)``), or the ``Epoch N/M`` line above it."""
    return bool(_PROGRESS_BAR.match(line))


@dataclass
class _Flood:
    """One task's flood of one message: the messages after the first, held back, and their lines."""

    held: int = 0  # messages after the first
    lines: int = 0  # lines left out: those messages and every message's details
    about: dict[str, None] = field(default_factory=dict)  # the tasks its messages name (the lost worker)

    def count_line(self, words: str, task: str) -> str:
        about = f"about {', '.join(self.about)}; " if self.about else ""
        what = f"{self.held} more like: {words}" if self.held else f"the details of: {words}"
        return f"... {what} ({about}{self.lines} line(s) left out here, all in {task}'s log)"


class Console:
    def __init__(self, stream: TextIO | None = None, verbose: bool = False, progress_of: str | None = None):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.progress_of = progress_of  # the task whose progress bar is shown (None: every task's)
        self._blocks: dict[str, list[str]] = {}  # task -> the traceback it is printing
        self._seen: dict[str, str] = {}  # a traceback's text -> the first task it was shown for
        self._floods: dict[tuple[str, str], _Flood] = {}  # (task, its count line's words) -> what was held back
        self._in_flood: dict[str, _Flood] = {}  # task -> the flood whose message's details may come next
        self._bars_left_out: set[str] = set()  # tasks whose progress bars were left out (said once each)

    def lines(self, task: str, lines: list[str]) -> None:
        for line in lines:
            self._line(task, redrawn(line))
        self.stream.flush()

    def finish(self) -> None:
        """Say what was held back: how many messages of each flood, and tracebacks cut off by the end."""
        for (task, words), flood in self._floods.items():
            if flood.lines:
                self._print(task, flood.count_line(words, task))
        self._floods.clear()
        self._in_flood.clear()
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
        if not self.verbose and self._flooded(task, line):
            return
        if not self.verbose and self._someone_elses_bar(task, line):
            return
        self._print(task, line)

    def _flooded(self, task: str, line: str) -> bool:
        """Whether the line is a flood's (its message or the details after it), counted; its first message's
        first line is not held back: the console shows what began, and counts what follows."""
        words = next((w for message, w in _FLOODS.items() if message in line), None)
        if words is None:
            flood = self._in_flood.get(task)
            if flood is None or not _FLOOD_DETAIL.match(line):
                self._in_flood.pop(task, None)
                return False
        else:
            flood = self._floods.get((task, words))
            if flood is None:  # its first message
                self._floods[(task, words)] = self._in_flood[task] = _Flood()
                return False
            self._in_flood[task] = flood
            flood.held += 1
        flood.lines += 1
        flood.about.update(dict.fromkeys(str(TaskKey(role, int(index))) for role, index in _REMOTE_TASK.findall(line)))
        return True

    def _someone_elses_bar(self, task: str, line: str) -> bool:
        """Whether the line is a progress bar of a task other than the one whose bar is shown; the first one
        of each such task says where its bars are."""
        if self.progress_of is None or task == self.progress_of or not progress_bar(line):
            return False
        if task not in self._bars_left_out:
            self._bars_left_out.add(task)
            self._print(task, f"(its progress bar is left out here: {self.progress_of}'s is shown; `tfray logs` "
                        f"has {task}'s)")
        return True

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
