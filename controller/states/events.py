"""What happened to a job, as typed, frozen records: one class per kind, serialised here only.

The controller appends these to its attempt's record (``job.json``) as they
happen; ``tfray status`` reads them back with :func:`from_json` and only
formats them. Each record's JSON has ``event`` (its kind) and ``time``
(epoch seconds) beside its own fields. Records written by older versions
(a decision without ``event``) still read.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import ClassVar

from protocol.wire import EventReport

ERROR_CHARS = 2000  # how much of a failure's text a decision record keeps


@dataclass(frozen=True)
class JobEvent:
    """One thing that happened; ``kind`` (its name in JSON) is the class name in snake case."""

    kind: ClassVar[str] = ""
    time: float = field(default_factory=time.time, kw_only=True)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.kind = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()

    def to_json(self) -> dict:
        return {"event": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Decision(JobEvent):
    """The failure policy's answer to one failed task (with the cause it classified)."""

    task: str
    cause: str
    action: str
    reason: str
    node: str | None = None
    budget: str | None = None
    spent: dict = field(default_factory=dict)  # every budget's count after this decision
    error: str = ""


@dataclass(frozen=True)
class Restart(JobEvent):
    """The cluster restarts (its ``restart``-th time this attempt) from a checkpoint, or the beginning."""

    restart: int
    reason: str
    from_step: int | None = None
    from_checkpoint: str | None = None


@dataclass(frozen=True)
class CheckpointQuarantined(JobEvent):
    """A checkpoint failed its check or its restore: set aside (``to``), and the job fell back."""

    step: int
    path: str
    to: str
    reason: str
    spent: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointFallback(JobEvent):
    """After checkpoints were set aside (``instead_of``: their steps), the run restores this one instead."""

    step: int
    path: str
    instead_of: list = field(default_factory=list)


@dataclass(frozen=True)
class Resize(JobEvent):
    """An elastic job runs with ``workers`` of its ``full`` worker count from now on."""

    workers: int
    full: int


@dataclass(frozen=True)
class Grow(JobEvent):
    """An elastic job running small restarts at full size from the checkpoint of ``from_step``."""

    workers: int
    from_step: int | None = None


@dataclass(frozen=True)
class DrainNotice(JobEvent):
    """A task's node is being drained: the task was sent a preemption notice."""

    task: str
    node: str
    deadline: float | None = None  # epoch seconds, when Ray gave one


@dataclass(frozen=True)
class PreemptionNotice(JobEvent):
    """A task got a preemption notice (a SIGTERM, or ``via`` a PSS server that got one or whose node is
    drained); it saves at its next step boundary."""

    task: str
    via: str | None = None


@dataclass(frozen=True)
class DriverLost(JobEvent):
    """The driver of ``attempt`` stopped before the job ended; this attempt carried on with its counters."""

    attempt: int


@dataclass(frozen=True)
class TaskReported(JobEvent):
    """Something a task reported doing (``what``: e.g. ``serving``), with its details."""

    task: str
    what: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkFault(JobEvent):
    """The controller changed the network of ``task``'s host (``host``, its address) for a planned fault:
    ``what`` is ``silenced``, ``silenced_from_head``, ``partitioned`` (healing after the fault's
    ``duration_s``), ``healed``, or ``not_carried_out`` (``error`` says why)."""

    task: str
    host: str
    what: str
    fault: dict = field(default_factory=dict)  # the fault as planned (the spec's form)
    error: str = ""


@dataclass(frozen=True)
class BoundChanged(JobEvent):
    """What bounds the job changed (``controller/report/bounds.py``): its verdict (``input``, ``compute``,
    ``memory``, ``peers``, ``straggler``), in a word, the task it is about, and the figure behind it."""

    verdict: str
    word: str
    task: str
    figure: str
    node: str | None = None


NETWORK_FIRED = frozenset({"silenced", "silenced_from_head", "partitioned"})  # a NetworkFault that is its fault firing

KINDS: dict[str, type[JobEvent]] = {cls.kind: cls for cls in
                                    (Decision, Restart, CheckpointQuarantined, CheckpointFallback, Resize, Grow,
                                     DrainNotice, PreemptionNotice, DriverLost, TaskReported, NetworkFault,
                                     BoundChanged)}


def from_json(data: dict) -> JobEvent | None:
    """The record of one event as JSON, typed again; None for a kind this version does not know."""
    data = dict(data)
    kind = data.pop("event", None)
    if kind is None and "action" in data:
        kind = Decision.kind  # written before events had kinds
    cls = KINDS.get(kind)
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError:  # a required field is missing: not a record this version can read
        return None


def task_reported(report: EventReport) -> TaskReported:
    """A task's event report as a record."""
    return TaskReported(task=report.task, what=report.event, details=dict(report.details))
