"""Job and task states, and the job's legal transitions, in one place.

A job moves PENDING -> PROVISIONING -> STARTING -> RUNNING and ends in one
of the terminal states SUCCEEDED, FAILED or STOPPED; a failure that the
policy answers with a restart goes RUNNING -> RECOVERING -> STARTING (or -> PROVISIONING when
capacity was lost or an elastic job changes size). Every exit path ends
in a terminal state; the controller refuses any transition not listed in
``TRANSITIONS``, so a bug shows up as an error rather than a strange state.
"""

from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    """Where a job is. ``is_terminal`` says whether it can still change."""

    PENDING = "PENDING"  # spec validated, nothing scheduled
    PROVISIONING = "PROVISIONING"  # placement group requested, waiting for resources
    STARTING = "STARTING"  # task actors starting, ports being reserved
    RUNNING = "RUNNING"  # every task has its TF_CONFIG and runs the entrypoint
    RECOVERING = "RECOVERING"  # tearing the tasks down to restart the cluster from the newest checkpoint
    # (back to PROVISIONING when capacity was lost or an elastic job resizes, else straight to STARTING)
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"  # stopped by the user (Ctrl-C, stop())

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.STOPPED)


_ENDINGS = {JobState.FAILED, JobState.STOPPED}

TRANSITIONS: dict[JobState, set[JobState]] = {
    JobState.PENDING: {JobState.PROVISIONING} | _ENDINGS,
    JobState.PROVISIONING: {JobState.STARTING} | _ENDINGS,
    JobState.STARTING: {JobState.RUNNING} | _ENDINGS,
    JobState.RUNNING: {JobState.SUCCEEDED, JobState.RECOVERING} | _ENDINGS,
    JobState.RECOVERING: {JobState.STARTING, JobState.PROVISIONING} | _ENDINGS,
    JobState.SUCCEEDED: set(),
    JobState.FAILED: set(),
    JobState.STOPPED: set(),
}


def check_transition(current: JobState, nxt: JobState) -> None:
    """Raise if ``current -> nxt`` is not a legal transition."""
    if nxt not in TRANSITIONS[current]:
        raise RuntimeError(f"illegal job transition {current.value} -> {nxt.value}")


class TaskStatus(str, enum.Enum):
    """What the controller knows of one task."""

    PENDING = "PENDING"
    ALIVE = "ALIVE"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    PREEMPTED = "PREEMPTED"  # lost with its node; not replaced

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.FINISHED, TaskStatus.FAILED, TaskStatus.PREEMPTED)
