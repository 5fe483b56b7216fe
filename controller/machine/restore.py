"""Which checkpoint a run of the cluster restores: the newest whose files are still as sealed.

A checkpoint whose files changed since their seal (a disk fault, a torn
copy) is set aside into the job's quarantine folder, never deleted, and
costs a unit of the ``max_corrupt_checkpoints`` budget; the next newest is
tried, and the one restored instead is said (a line and an event), so that
nobody reads the step of the one set aside as where the job carries on. When
the budget is spent, or nothing is left, the job fails saying where the
checkpoints went and how to start over.

A script (or module) that keeps its own checkpoints resumes from what it
finds under AIP_CHECKPOINT_DIR; one that writes them elsewhere (a temp
folder made at each start) finds nothing after a restart and starts over:
its choice, said at the restart (:func:`restart_point`) so that nobody
takes it for the job losing its progress.
"""

from __future__ import annotations

import logging
import os

from controller.machine.attempt import Attempt
from controller.machine.failure_policy import FailurePolicy
from controller.machine.job_folder import JobStore
from controller.spec import JobSpec
from controller.states.events import CheckpointFallback, CheckpointQuarantined
from controller.states.state import Failed
from controller.store.checkpoints import CheckpointRecord
from protocol.layout import QUARANTINE_DIR
from protocol.seal import verify_checkpoint

log = logging.getLogger("tfray")


def verified_restore(spec: JobSpec, store: JobStore, attempt: Attempt,
                     policy: FailurePolicy) -> CheckpointRecord | Failed | None:
    """The checkpoint to restore (None: start fresh), or Failed when none can be trusted."""
    while (latest := store.latest()) is not None:
        problem = verify_checkpoint(latest.path)
        if problem is None:
            set_aside = _set_aside_unsaid(attempt)
            if set_aside:
                log.warning("restoring the checkpoint of step %d (%s) instead of that of %s, set aside", latest.step,
                            latest.path, ", ".join(f"step {step}" for step in set_aside))
                attempt.add(CheckpointFallback(step=latest.step, path=latest.path, instead_of=set_aside))
            return latest
        allowed, counter = policy.may_quarantine(attempt.spent)
        if not allowed:
            return Failed(f"the checkpoint of step {latest.step} is corrupt ({problem}) and the budget is spent "
                          f"({counter}); its folder is {latest.path}")
        attempt.spent["max_corrupt_checkpoints"] += 1
        quarantine(store, attempt, latest, problem)
    if any(isinstance(e, CheckpointQuarantined) for e in attempt.events):
        return Failed(f"no complete checkpoint of job {spec.name} is left: every one was set aside in "
                      f"{spec.job_dir / QUARANTINE_DIR}; to start over, run it with --fresh (the old folder is "
                      "moved aside) or give the job a new name")
    return None


def quarantine(store: JobStore, attempt: Attempt, record: CheckpointRecord, reason: str) -> None:
    """Set a checkpoint aside and record it (with the budget spent so far)."""
    aside = store.quarantine(record, reason)
    attempt.add(CheckpointQuarantined(step=record.step, path=record.path, to=str(aside), reason=reason,
                                      spent=dict(attempt.spent)))


def _set_aside_unsaid(attempt: Attempt) -> list[int]:
    """The steps set aside since the last fallback was said: here just now, or where a run's restore failed in
    the tasks (``Controller._recover``)."""
    steps: list[int] = []
    for event in attempt.events:
        if isinstance(event, CheckpointFallback):
            steps = []
        elif isinstance(event, CheckpointQuarantined):
            steps.append(event.step)
    return steps


# Where the docs say what a script's own checkpoints need to survive a restart.
OWN_CHECKPOINTS_DOC = "README.md, 'Bring your own TF script'"


def restart_point(entrypoint_kind: str, latest_step: int | None, backups_hold_files: bool,
                  backups_dir: str | os.PathLike) -> str:
    """Where a restart of the cluster starts from, in the words of its line: the newest tfray checkpoint; else
    what the code saved under AIP_CHECKPOINT_DIR (``backups_dir``); else the beginning, and for a script or
    module why (its checkpoints, if it writes any, are where a restarted process will not look). A function's
    checkpoints go through its task context, so for it no checkpoint says it all. Pure."""
    if latest_step is not None:
        return f"step {latest_step}"
    if backups_hold_files:
        return (f"what the code saved under AIP_CHECKPOINT_DIR ({backups_dir}), if it resumes from there (no tfray "
                "checkpoint yet)")
    if entrypoint_kind == "function":
        return "the beginning (no checkpoint yet)"
    return (f"the beginning: the {entrypoint_kind} saved nothing under AIP_CHECKPOINT_DIR ({backups_dir}); "
            f"checkpoints it writes elsewhere (e.g. a temp folder) are not read after a restart "
            f"({OWN_CHECKPOINTS_DOC})")
