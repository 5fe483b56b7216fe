"""A training process's reporting windows: wall and CPU time, checkpoints held, memory, and (when the step is
timed) input, compute and peers; each window closed into a ``protocol.breakdown.Breakdown`` for its report.

Everything here is read where it costs nothing a step: ``os.times()`` for the
process's CPU time, ``/proc/self/status`` (its peak RSS) and ``/proc/meminfo``
(the node's memory) once a window and at most once a second (a custom loop
that reports every step pays a clock read, not a file read; the two reads
took 0.15 ms in a TensorFlow process here), and its PSS from
``/proc/self/smaps_rollup`` at most once a minute: the kernel walks every
mapping for it, and a TensorFlow process's 1,800 took 36 ms here. The parts of a step are timed inside it by
``workers/step_clock.py`` (Keras' ``fit``) or by :meth:`Windows.timed_input`
(a custom loop's input). ``TFRAY_BREAKDOWN=0`` in the task's environment turns
it all off (docs/design.md §8, "What bounds a job").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator

from protocol.breakdown import OFF_ENV, Breakdown

MEMORY_EVERY_S = 1.0  # peak RSS and the node's memory are read at most this often
PSS_EVERY_S = 60.0  # and the PSS at most this often (see above)


def enabled() -> bool:
    return os.environ.get(OFF_ENV, "1") != "0"


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _kb_fields(path: str, names: tuple[str, ...]) -> dict[str, float]:
    """``Name:  1234 kB`` lines of a /proc file, in MB; what cannot be read is left out."""
    found: dict[str, float] = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in names:
                    found[name] = int(rest.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return found


def memory(pss: bool = True) -> dict:
    """The process's peak RSS (and, if ``pss``, its PSS now), the node's memory and what it has left (MB; None
    where unknown)."""
    status = _kb_fields("/proc/self/status", ("VmHWM",))
    node = _kb_fields("/proc/meminfo", ("MemTotal", "MemAvailable"))
    found = {"rss_peak_mb": status.get("VmHWM"), "node_memory_mb": node.get("MemTotal"),
             "node_available_mb": node.get("MemAvailable")}
    if pss:
        found["pss_mb"] = _kb_fields("/proc/self/smaps_rollup", ("Pss",)).get("Pss")
    return found


class Windows:
    """The windows of one training process: opened at the first report's start, closed at each report."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, cpu: Callable[[], float] = _cpu_s,
                 read_memory: Callable[[bool], dict] = memory):
        self.clock, self.cpu, self.read_memory = clock, cpu, read_memory
        self._memory: dict = {}
        self._memory_at = self._pss_at = float("-inf")
        self.begin(None)

    def begin(self, step: int | None) -> None:
        """A window starts now, at ``step`` (None: the next report's step is its first)."""
        self._start, self._cpu0, self._step = self.clock(), self.cpu(), step
        self.input_s = self.checkpoint_s = 0.0

    def held(self, seconds: float) -> None:
        """A checkpoint save held training this long."""
        self.checkpoint_s += seconds

    def timed_input(self, batches: Iterable) -> Iterator:
        """``batches`` as they come, the time spent waiting for each added to the window's input time (a custom
        loop: ``for x, y in ctx.timed_input(dataset)``)."""
        it = iter(batches)
        while True:
            start = self.clock()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                self.input_s += self.clock() - start
            yield item

    def close(self, step: int, timed: dict | None = None) -> Breakdown | None:
        """The window up to ``step``, and the next one begun; ``timed``: the step clock's totals (input_s,
        compute_s, peers_s, steps). None when no step was trained in it (a report after training)."""
        now, cpu = self.clock(), self.cpu()
        window_s, steps = now - self._start, (step - self._step) if self._step is not None else 0
        if now - self._memory_at >= MEMORY_EVERY_S:
            pss = now - self._pss_at >= PSS_EVERY_S
            self._memory, self._memory_at = {**self._memory, **self.read_memory(pss)}, now
            self._pss_at = now if pss else self._pss_at
        parts: dict = {"input_s": round(self.input_s, 6)} if self.input_s else {}
        if timed and timed.get("steps"):
            parts = {"timed_steps": int(timed["steps"]), "input_s": timed["input_s"],
                     "compute_s": timed["compute_s"], "peers_s": timed.get("peers_s"), "loop_s": timed.get("loop_s")}
        elif self.input_s and steps > 0:  # a custom loop's input timed: the rest of the window is its step
            parts["compute_s"] = max(0.0, window_s - self.input_s - self.checkpoint_s)
            parts["timed_steps"] = steps
        result = None
        if window_s > 0 and steps > 0:
            result = Breakdown(window_s=round(window_s, 6), steps=max(0, steps),
                               checkpoint_s=round(self.checkpoint_s, 6), cpu_s=round(cpu - self._cpu0, 4),
                               node_cores=os.cpu_count(), **parts, **self._memory)
        self._start, self._cpu0, self._step = now, cpu, step
        self.input_s = self.checkpoint_s = 0.0
        return result
