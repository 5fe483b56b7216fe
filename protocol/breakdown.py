"""Where one task's time went in one reporting window, and what it used: what a metrics report carries for the
job's verdict (input-, compute-, memory-, peer-bound or a straggler; ``controller/report/bounds.py``).

A window is the time between two reports of a task: an epoch of Keras' ``fit``
(``workers.keras.JobCallback``), or whatever a custom loop reports at
(``ctx.report``). Times are totals over the window, in seconds; the task
measures them (``workers/breakdown.py``, ``workers/step_clock.py``; the
method is in docs/design.md §8, "What bounds a job"). ``cpu_share``,
``memory_mb`` and ``node`` are filled in by the driver when it records the
report: what the task reserved and where it ran, which the task does not know.
A field the task could not measure is None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

OFF_ENV = "TFRAY_BREAKDOWN"  # "0" in a task's environment: no breakdown measured or reported (the bench's baseline)


@dataclass(frozen=True)
class Breakdown:
    """One task's reporting window: its steps' parts, its checkpoints, its CPU and its memory."""

    window_s: float  # wall time since the task's previous report (or since training began)
    steps: int  # training steps in the window
    timed_steps: int = 0  # steps whose parts were timed inside the step (0: input/compute/peers not split)
    input_s: float | None = None  # waiting for the next batch (with the cost of calling the step, tens of µs)
    compute_s: float | None = None  # in the step, out of the gradients' all-reduce
    peers_s: float | None = None  # in the gradients' all-reduce: the transfer, and waiting for the slowest peer
    loop_s: float | None = None  # between steps: the training loop's own time (Keras' loop and callbacks)
    checkpoint_s: float = 0.0  # training held by checkpoint saves (their files are written in the background)
    cpu_s: float | None = None  # CPU time of the training process, every thread
    node_cores: int | None = None  # the cores of the task's node
    rss_peak_mb: float | None = None  # the training process's peak resident memory so far (the kernel's VmHWM)
    pss_mb: float | None = None  # its proportional share of memory at the window's end (what the task costs)
    node_memory_mb: float | None = None  # the node's memory
    node_available_mb: float | None = None  # what the node had left at the window's end
    cpu_share: float | None = None  # driver: the cores the task reserved (roles.<role>.resources.cpu)
    memory_mb: float | None = None  # driver: the memory it reserved (roles.<role>.resources.memory_mb)
    node: str | None = None  # driver: the node it ran on

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict | None) -> Breakdown | None:
        """From ``to_json`` (unknown keys dropped: a newer task's); None for anything that is not one."""
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None
