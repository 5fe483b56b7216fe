"""The job's states, each a frozen value with what the next step needs, and the legal moves.

A job moves PENDING -> PROVISIONING -> STARTING -> RUNNING and ends in one
of the terminal states SUCCEEDED, FAILED or STOPPED. A failure the policy
answers with a restart goes RUNNING -> RECOVERING -> STARTING, or back to
PROVISIONING when the capacity must be asked for again (a node was lost or
drained, or an elastic job grows back). Each state is a class carrying its
payload (which sizes are left to try, why the job recovers, which failures
are still settling), so no flag carries intent from one step to the next;
:class:`JobState` names them for records and people. The controller refuses
any move not in ``TRANSITIONS``, so a bug shows up as an error rather than a
strange state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from protocol.wire import TaskEnd


class JobState(str, enum.Enum):
    """The name of where a job is. ``is_terminal`` says whether it can still change."""

    PENDING = "PENDING"  # spec validated, nothing scheduled
    PROVISIONING = "PROVISIONING"  # placement group requested, waiting for resources
    STARTING = "STARTING"  # task actors starting, ports being reserved
    RUNNING = "RUNNING"  # every task has its TF_CONFIG and runs the entrypoint
    RECOVERING = "RECOVERING"  # tearing the tasks down to restart the cluster from the newest checkpoint
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"  # stopped by the user (Ctrl-C, SIGTERM, stop())

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.STOPPED)


_ENDINGS = {JobState.FAILED, JobState.STOPPED}

TRANSITIONS: dict[JobState, set[JobState]] = {
    JobState.PENDING: {JobState.PROVISIONING} | _ENDINGS,
    JobState.PROVISIONING: {JobState.PROVISIONING, JobState.STARTING} | _ENDINGS,  # next size to try
    JobState.STARTING: {JobState.RUNNING} | _ENDINGS,
    JobState.RUNNING: {JobState.RUNNING, JobState.SUCCEEDED, JobState.RECOVERING} | _ENDINGS,
    JobState.RECOVERING: {JobState.STARTING, JobState.PROVISIONING} | _ENDINGS,
    JobState.SUCCEEDED: set(),
    JobState.FAILED: set(),
    JobState.STOPPED: set(),
}


def check_transition(current: JobState, nxt: JobState) -> None:
    """Raise if ``current -> nxt`` is not a legal transition."""
    if nxt not in TRANSITIONS[current]:
        raise RuntimeError(f"illegal job transition {current.value} -> {nxt.value}")


class RecoveryReason(str, enum.Enum):
    """Why the cluster is restarted."""

    FAILURE = "failure"  # a task failed and the policy restarts the cluster on its old capacity
    CAPACITY_LOST = "capacity_lost"  # the failure took capacity with it (node lost or drained): ask again
    GROW = "grow"  # an elastic job running small grows back at a checkpoint (planned: spends no budget)

    @property
    def reprovisions(self) -> bool:
        return self is not RecoveryReason.FAILURE


@dataclass(frozen=True)
class Size:
    """One size to provision: how many workers, and how long to wait for their resources."""

    workers: int
    wait_s: float


@dataclass(frozen=True)
class State:
    """A job state; ``name`` is its :class:`JobState`."""

    name: ClassVar[JobState]

    @property
    def is_terminal(self) -> bool:
        return self.name.is_terminal


@dataclass(frozen=True)
class Pending(State):
    name = JobState.PENDING


@dataclass(frozen=True)
class Provisioning(State):
    """Ask for the sizes in order (the full size first); ``first_error`` says why the first did not fit."""

    name = JobState.PROVISIONING
    sizes: tuple[Size, ...]
    first_error: str | None = None


@dataclass(frozen=True)
class Starting(State):
    name = JobState.STARTING


@dataclass(frozen=True)
class Running(State):
    """Training. ``settling``: failed ends gathered until their cause is in (or ``settle_until``);
    ``chief_done_at`` / ``sidecars_told_at``: clock times of the end's two phases; ``coordinator_told_at``:
    when a PSS server's preemption notice went on to the coordinator (once a run of the cluster: a restart
    starts from a fresh ``Running``)."""

    name = JobState.RUNNING
    settling: tuple[TaskEnd, ...] = ()
    settle_until: float | None = None
    chief_done_at: float | None = None
    sidecars_told_at: float | None = None
    coordinator_told_at: float | None = None


@dataclass(frozen=True)
class Recovering(State):
    """Tear the tasks down, wait ``backoff_s``, and start again from the newest complete checkpoint."""

    name = JobState.RECOVERING
    reason: RecoveryReason
    backoff_s: float = 0.0
    quarantine: str | None = None  # the restore checkpoint to set aside first (its restore failed)


@dataclass(frozen=True)
class Succeeded(State):
    name = JobState.SUCCEEDED
    message: str


@dataclass(frozen=True)
class Failed(State):
    name = JobState.FAILED
    message: str


@dataclass(frozen=True)
class Stopped(State):
    name = JobState.STOPPED
    message: str


class TaskStatus(str, enum.Enum):
    """What the controller knows of one task."""

    PENDING = "PENDING"
    ALIVE = "ALIVE"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    LOST = "LOST"  # gone with its node, not replaced (a parameter-server worker, the evaluator)
    STOPPED = "STOPPED"  # torn down when the job ended

    @property
    def is_terminal(self) -> bool:
        return self is not TaskStatus.PENDING and self is not TaskStatus.ALIVE
