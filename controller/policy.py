"""The failure policy (pure): what to do when a task ends badly.

``decide(strategy, role, cause, error, spent, limits)`` returns a
:class:`FailureDecision`; it never touches Ray, so the whole table is a unit
test. The controller carries the decision out and logs it with its cause,
counter and limit. Defaults follow DESIGN.md §5:

| strategy | what ended | cause | action |
|---|---|---|---|
| any | evaluator | user code raised | go on without it; training never fails for it |
| any | evaluator | lost | replace it alone |
| PSS | worker | process died / hung / preempted | replace at the same host:port (the coordinator reconnects) |
| PSS | worker | node lost | go on with fewer workers |
| PSS | ps, chief | lost | restart the cluster from the newest checkpoint |
| MWMS | any | lost | restart the group in fresh processes |
| any | chief/worker | user code raised | fail fast (do not spend retries on a bug) |
| PSS | chief | TF reports a lost server (UnavailableError) | restart the cluster (infrastructure) |

Every restart or replacement spends one unit of its cause's budget: node
loss and a preemption with notice spend ``max_preemptions``, a dead or hung process ``max_task_failures``,
an infrastructure error ``max_infrastructure_failures``. A preemption never
spends the error budgets. When a budget is spent the job fails (or, for a
task training can live without, goes on without it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FailureCause(str, enum.Enum):
    """Why a task ended badly, as far as the controller can tell."""

    USER_ERROR = "user_error"  # the entrypoint raised / the script exited non-zero
    PROCESS_DIED = "process_died"  # the task process died (signal, OOM) on a live node
    NODE_LOST = "node_lost"  # the task's node is gone (preemption, crash)
    PREEMPTED = "preempted"  # the task saved on a preemption notice (SIGTERM) and stopped
    HUNG = "hung"  # no heartbeat within timeouts.heartbeat_s
    INFRASTRUCTURE = "infrastructure"  # Ray or gRPC failed under the task (e.g. a server it used is gone)


BUDGET_OF = {
    FailureCause.NODE_LOST: "max_preemptions",
    FailureCause.PREEMPTED: "max_preemptions",
    FailureCause.PROCESS_DIED: "max_task_failures",
    FailureCause.HUNG: "max_task_failures",
    FailureCause.INFRASTRUCTURE: "max_infrastructure_failures",
}


class FailureAction(str, enum.Enum):
    FAIL = "fail"
    RESTART_CLUSTER = "restart_cluster"
    REPLACE_TASK = "replace_task"
    CONTINUE_WITHOUT = "continue_without"


SEVERITY = {FailureAction.FAIL: 3, FailureAction.RESTART_CLUSTER: 2, FailureAction.REPLACE_TASK: 1,
            FailureAction.CONTINUE_WITHOUT: 0}


@dataclass(frozen=True)
class FailureDecision:
    action: FailureAction
    reason: str
    budget: str | None = None  # the budget this decision spends, if any


# A chief under ParameterServerStrategy raises these when a ps or worker it
# talks to is gone: the cause is the lost server, not the user's code.
LOST_SERVER_MARKERS = ("UnavailableError", "PSUnavailableError", "Socket closed", "Connection reset",
                       "failed to connect to all addresses")


def looks_like_lost_server(error: str | None) -> bool:
    return bool(error) and any(marker in error for marker in LOST_SERVER_MARKERS)


def classify(strategy: str, role: str, cause: FailureCause, error: str | None) -> FailureCause:
    """Refine a cause: a PSS chief's 'user error' that is a lost server is infrastructure."""
    if cause is FailureCause.USER_ERROR and strategy == "parameter_server" and role == "chief" \
            and looks_like_lost_server(error):
        return FailureCause.INFRASTRUCTURE
    return cause


def decide(strategy: str, role: str, cause: FailureCause, error: str | None, spent: dict[str, int],
           limits: dict[str, int]) -> FailureDecision:
    """The action for one failed task, given what each budget has spent and its limit."""
    cause = classify(strategy, role, cause, error)
    pss = strategy == "parameter_server"
    budget = BUDGET_OF.get(cause)
    left = budget is not None and spent.get(budget, 0) < limits[budget]
    counter = f"{budget} {spent.get(budget, 0)}/{limits[budget]}" if budget else ""

    if cause is FailureCause.USER_ERROR:
        if role == "evaluator":
            return FailureDecision(FailureAction.CONTINUE_WITHOUT, "the evaluator's code raised; training goes on")
        return FailureDecision(FailureAction.FAIL, "user code raised: failing fast, no retry spent")
    expendable = role == "evaluator" or (pss and role == "worker")
    if expendable and cause is FailureCause.NODE_LOST:
        return FailureDecision(FailureAction.CONTINUE_WITHOUT, "its node is gone; training goes on without it")
    if not left:
        action = FailureAction.CONTINUE_WITHOUT if expendable else FailureAction.FAIL
        return FailureDecision(action, f"{cause.value}, but the budget is spent ({counter})")
    spend = f"{budget} {spent.get(budget, 0) + 1}/{limits[budget]}"
    if expendable:
        return FailureDecision(FailureAction.REPLACE_TASK, f"replaced alone at the same host:port ({spend})", budget)
    scope = "the cluster" if pss else "the group (collectives cannot be rebuilt in place)"
    return FailureDecision(FailureAction.RESTART_CLUSTER,
                           f"{role} lost ({cause.value}); {scope} restarts from the newest checkpoint ({spend})",
                           budget)
