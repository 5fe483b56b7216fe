"""The failure policy (pure): what to do when a task ends badly.

``decide(strategy, role, cause, restarts, max_restarts)`` returns a
:class:`FailureDecision`; it never touches Ray, so the whole table is a unit
test. The controller carries the decision out and logs it with its cause,
counter and limit. Defaults follow DESIGN.md §5:

| strategy | what ended | cause | action |
|---|---|---|---|
| any | evaluator | any | replace it alone; training never fails for it |
| PSS | worker | process died | replace at the same host:port (the coordinator reconnects) |
| PSS | worker | node lost | go on with fewer workers |
| PSS | ps, chief | process died / node lost | restart the cluster from the newest checkpoint |
| MWMS | any | process died / node lost | restart the group in fresh processes |
| any | chief/worker | user code raised | fail fast (do not spend restarts on a bug) |
| PSS | chief | TF reports a lost server (UnavailableError) | restart the cluster |

A restart of the cluster spends one of ``max_restarts``; past it the job fails.
Per-cause budgets, backoff and preemption notice come with the fault-handling
layer (see the open issues).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FailureCause(str, enum.Enum):
    """Why a task ended badly, as far as the task group can tell."""

    USER_ERROR = "user_error"  # the entrypoint raised / the script exited non-zero
    PROCESS_DIED = "process_died"  # the task process died (signal, OOM) on a live node
    NODE_LOST = "node_lost"  # the task's node is gone


class FailureAction(str, enum.Enum):
    FAIL = "fail"
    RESTART_CLUSTER = "restart_cluster"
    REPLACE_TASK = "replace_task"
    CONTINUE_WITHOUT = "continue_without"


@dataclass(frozen=True)
class FailureDecision:
    action: FailureAction
    reason: str


# A chief under ParameterServerStrategy raises these when a ps or worker it
# talks to is gone: the cause is the lost server, not the user's code.
LOST_SERVER_MARKERS = ("UnavailableError", "PSUnavailableError", "Socket closed", "Connection reset",
                       "failed to connect to all addresses")


def looks_like_lost_server(error: str | None) -> bool:
    return bool(error) and any(marker in error for marker in LOST_SERVER_MARKERS)


def decide(strategy: str, role: str, cause: FailureCause, error: str | None, restarts: int,
           max_restarts: int, replacements: int = 0, max_replacements: int = 10) -> FailureDecision:
    """The action for one failed task. ``replacements`` counts this task's replacements so far."""
    pss = strategy == "parameter_server"

    def replace(why: str) -> FailureDecision:
        if replacements >= max_replacements:
            return FailureDecision(FailureAction.CONTINUE_WITHOUT, f"replaced {replacements}/{max_replacements} "
                                                                   "times already; going on without it")
        return FailureDecision(FailureAction.REPLACE_TASK, f"{why} (replacement {replacements + 1}/"
                                                           f"{max_replacements})")

    def restart(why: str) -> FailureDecision:
        if restarts >= max_restarts:
            return FailureDecision(FailureAction.FAIL, f"{why}, but the restart budget is spent "
                                                       f"({restarts}/{max_restarts} restarts)")
        return FailureDecision(FailureAction.RESTART_CLUSTER, f"{why}: restart {restarts + 1}/{max_restarts}")

    if role == "evaluator":
        if cause is FailureCause.USER_ERROR:
            return FailureDecision(FailureAction.CONTINUE_WITHOUT, "the evaluator's code raised; training goes on")
        return replace("the evaluator is restarted alone")
    if pss and role == "worker":
        if cause is FailureCause.NODE_LOST:
            return FailureDecision(FailureAction.CONTINUE_WITHOUT, "its node is gone; training goes on with fewer "
                                                                   "workers")
        return replace("the coordinator absorbs it; a replacement serves at the same host:port")
    if cause is FailureCause.USER_ERROR:
        if pss and role == "chief" and looks_like_lost_server(error):
            return restart("the coordinator lost a server")
        return FailureDecision(FailureAction.FAIL, "user code raised: failing fast")
    what = "its node is gone" if cause is FailureCause.NODE_LOST else "its process died"
    scope = "the cluster" if pss else "the group (collectives cannot be rebuilt in place)"
    return restart(f"{role} lost ({what}); {scope} restarts from the newest checkpoint")


SEVERITY = {FailureAction.FAIL: 3, FailureAction.RESTART_CLUSTER: 2, FailureAction.REPLACE_TASK: 1,
            FailureAction.CONTINUE_WITHOUT: 0}
