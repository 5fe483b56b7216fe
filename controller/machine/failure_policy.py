"""The failure policy (pure): what the job does when tasks end badly.

It never touches Ray or the clock, so every rule is a table test
(``tests/unit/test_failure_policy.py``). The controller hands it the batch
of failed ends it gathered and carries out what comes back.

One task, by strategy, role and cause (the only copy of this table; docs/design.md §5 points here):

| strategy | what ended | cause | action |
|---|---|---|---|
| any | evaluator | user code raised | go on without it; training never fails for it |
| any | evaluator | lost | replace it alone |
| PSS | worker | process died / hung / stopped on notice | replace at the same host:port (the coordinator reconnects) |
| PSS | worker | node lost, or could not be started again | go on with fewer workers |
| PSS | ps, chief | lost | restart the cluster from the newest checkpoint |
| any | data_worker | process died / hung | replace at the same host:port (it registers again) |
| any | data_worker | node lost, or could not be started again | go on with fewer data workers |
| any | data_dispatcher | process died / hung | replace at the same host:port (its journal restores its jobs) |
| any | data_dispatcher | node lost, or could not be started again | restart the cluster (a new address for all) |
| MWMS | any | lost | restart the group in fresh processes |
| any | chief/worker | user code raised | fail fast (do not spend retries on a bug) |
| PSS | chief | TF reports a lost server (UnavailableError) | restart the cluster (infrastructure) |
| MWMS | any | TF aborted its collectives for an unresponsive peer | restart the group (infrastructure) |
| any | chief/worker | out of GPU memory | fail fast with advice (a retry would run out again) |
| any | any | its GPU failed (launch failure, ECC, device gone) | restart / replace (infrastructure) |

A batch (several ends that belong together):

- **Settle** before deciding: a bare error may be the symptom of a loss
  whose end is still on its way (a ps dies, then the coordinator raises
  because of it). A lost task is a cause in itself and needs no wait; nor
  does a batch that holds every running task's end. Tasks stopping on a
  preemption notice are saving, so their peers get the notice's grace.
- **Symptoms** are dropped: a user error beside a lost task is its
  consequence (a broken collective, a server gone), not a bug.
- The **worst** action wins (fail > restart > replace > go on without).
- A restart spends **one** unit of budget however many tasks it answers;
  each replacement spends one. Node loss and a save on notice spend
  ``max_preemptions``, a dead or hung process ``max_task_failures``, an
  infrastructure error ``max_infrastructure_failures``; user errors spend
  nothing, and a preemption never spends an error budget.
- **Backoff**: the first restart is immediate, then ``backoff_s`` doubling
  up to ``max_backoff_s``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from controller.spec import FailurePolicySpec
from controller.states.state import RecoveryReason
from protocol.wire import FailureCause, TaskEnd, TaskKey

C = FailureCause
BUDGET_OF = {
    C.NODE_LOST: "max_preemptions",
    C.STOPPED_ON_NOTICE: "max_preemptions",
    C.PROCESS_DIED: "max_task_failures",
    C.HUNG: "max_task_failures",
    C.INFRASTRUCTURE: "max_infrastructure_failures",
    C.DEVICE_LOST: "max_infrastructure_failures",
    C.CHECKPOINT_UNREADABLE: "max_corrupt_checkpoints",
}
ROOT_CAUSES = {C.PROCESS_DIED, C.NODE_LOST, C.HUNG, C.INFRASTRUCTURE, C.START_FAILED,  # decide at once
               C.CHECKPOINT_UNREADABLE, C.GPU_OOM, C.DEVICE_LOST}
GPU_CAUSES = {C.GPU_OOM, C.DEVICE_LOST}  # read from the error's text: a cause, however the task ended
CAPACITY_CAUSES = {C.NODE_LOST, C.STOPPED_ON_NOTICE}  # the task's capacity is going away with it

# A chief under ParameterServerStrategy raises these when a ps or worker it
# talks to is gone: the cause is the lost server, not the user's code.
LOST_SERVER_MARKERS = ("UnavailableError", "PSUnavailableError", "Socket closed", "Connection reset",
                       "failed to connect to all addresses")


class FailureAction(str, enum.Enum):
    FAIL = "fail"
    RESTART_CLUSTER = "restart_cluster"
    REPLACE_TASK = "replace_task"
    CONTINUE_WITHOUT = "continue_without"


SEVERITY = {FailureAction.FAIL: 3, FailureAction.RESTART_CLUSTER: 2, FailureAction.REPLACE_TASK: 1,
            FailureAction.CONTINUE_WITHOUT: 0}


@dataclass(frozen=True)
class TaskDecision:
    """What to do about one failed task, with the cause as the policy classified it."""

    task: TaskKey
    cause: FailureCause
    action: FailureAction
    reason: str
    budget: str | None = None  # the budget this decision spends, if any
    error: str = ""


@dataclass(frozen=True)
class BatchDecision:
    """What the job does about a batch of failed ends."""

    action: FailureAction  # the worst of the decisions
    decisions: tuple[TaskDecision, ...]  # one per task that is a cause, not a symptom
    symptoms: tuple[TaskKey, ...]  # tasks whose error followed from a lost peer
    spent: dict  # every budget's count after this batch
    recovery: RecoveryReason | None = None  # set for a restart
    backoff_s: float = 0.0  # wait before that restart
    quarantine: bool = False  # the checkpoint this run restored is unreadable: set it aside first


# A MultiWorkerMirroredStrategy task raises these when TensorFlow aborted its collectives because a peer
# stopped answering (TF's coordination service missed its heartbeats): a peer's trouble, not a bug.
ABORTED_COLLECTIVE_MARKERS = ("Collective ops is aborted", "CoordinationService/Heartbeat",
                              "coordination service has stopped")


# Out of GPU memory: TensorFlow's ResourceExhaustedError on a GPU ("OOM when allocating tensor ... on
# /job:.../device:GPU:0 by allocator GPU_0_bfc"), the CUDA driver's and the CUDA libraries' own words.
# Not "ran out of memory trying to allocate": TF logs that as a warning when it merely could not cache more.
GPU_OOM_MARKERS = re.compile(r"OOM when allocating[^\n]*GPU|CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation|"
                             r"CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED")
# A GPU that failed under the task: the CUDA driver's errors for a kernel that faulted or a device that went
# away (an Xid in the kernel's log), and nvidia-smi's words for a device that fell off the bus.
DEVICE_LOST_MARKERS = re.compile(r"CUDA_ERROR_LAUNCH_FAILED|unspecified launch failure|CUDA_ERROR_ILLEGAL_ADDRESS|"
                                 r"an illegal memory access was encountered|CUDA_ERROR_ECC_UNCORRECTABLE|"
                                 r"uncorrectable ECC error|CUDA_ERROR_HARDWARE_STACK_ERROR|"
                                 r"CUDA_ERROR_NVLINK_UNCORRECTABLE|GPU is lost|fallen off the bus|NVRM: Xid")
OOM_ADVICE = ("lower the per-replica batch, set roles.<role>.resources.gpu_memory (growth) or gpu_memory_mb, or "
              "put fewer tasks on each GPU")


def looks_like_lost_server(error: str | None) -> bool:
    return bool(error) and any(marker in error for marker in LOST_SERVER_MARKERS)


def gpu_cause(cause: FailureCause, error: str | None) -> FailureCause | None:
    """A GPU failure read from an end's error (its traceback, or the output of a process that died): the
    device gone under a process that raised or died, or out of memory in one that raised (a process killed
    may have printed an allocator's warning before; that is not why it died)."""
    if not error or cause not in (C.USER_ERROR, C.PROCESS_DIED):
        return None
    if DEVICE_LOST_MARKERS.search(error):
        return C.DEVICE_LOST
    if cause is C.USER_ERROR and GPU_OOM_MARKERS.search(error):
        return C.GPU_OOM
    return None


def classify(strategy: str, role: str, cause: FailureCause, error: str | None) -> FailureCause:
    """Refine a cause: a GPU out of memory or lost (from the error's text); a PSS chief's 'user error' that is
    a lost server, or an MWMS task's whose collectives TensorFlow aborted for an unresponsive peer, is
    infrastructure."""
    on_gpu = gpu_cause(cause, error)
    if on_gpu is not None:
        return on_gpu
    if cause is not C.USER_ERROR or not error:
        return cause
    if strategy == "parameter_server" and role == "chief" and looks_like_lost_server(error):
        return C.INFRASTRUCTURE
    if strategy == "multi_worker_mirrored" and any(marker in error for marker in ABORTED_COLLECTIVE_MARKERS):
        return C.INFRASTRUCTURE
    return cause


def decide_task(strategy: str, role: str, cause: FailureCause, spent: dict[str, int],
                limits: dict[str, int]) -> tuple[FailureAction, str, str | None]:
    """The table: action, reason and the budget it spends for one failed task (its cause classified)."""
    pss = strategy == "parameter_server"
    budget = BUDGET_OF.get(cause)
    if cause is C.USER_ERROR:
        if role == "evaluator":
            return FailureAction.CONTINUE_WITHOUT, "the evaluator's code raised; training goes on", None
        return FailureAction.FAIL, "user code raised: failing fast, no retry spent", None
    if cause is C.GPU_OOM:
        if role == "evaluator":
            return FailureAction.CONTINUE_WITHOUT, "the evaluator ran out of GPU memory; training goes on", None
        return (FailureAction.FAIL, f"out of GPU memory: failing fast, no retry spent (a retry would run out "
                f"again): {OOM_ADVICE.replace('<role>', role)}", None)
    expendable = role in ("evaluator", "data_worker") or (pss and role == "worker")
    in_place = expendable or (role == "data_dispatcher" and cause not in (C.NODE_LOST, C.START_FAILED))
    if expendable and cause in (C.NODE_LOST, C.START_FAILED):
        gone = "its node is gone" if cause is C.NODE_LOST else "it could not be started again"
        return FailureAction.CONTINUE_WITHOUT, f"{gone}; training goes on without it", None
    used, limit = spent.get(budget, 0), limits.get(budget, 0)
    if budget is None or used >= limit:
        action = FailureAction.CONTINUE_WITHOUT if expendable else FailureAction.FAIL
        why = f"the budget is spent ({budget} {used}/{limit})" if budget else "nothing recovers from it"
        return action, f"{cause.value}, but {why}", None
    spend = f"{budget} {used + 1}/{limit}"
    if in_place:
        return FailureAction.REPLACE_TASK, f"replaced alone at the same host:port ({spend})", budget
    if cause is C.CHECKPOINT_UNREADABLE:
        return (FailureAction.RESTART_CLUSTER, f"its restore checkpoint cannot be read: it is set aside and the "
                f"cluster restarts from the one before ({spend})", budget)
    scope = "the cluster" if pss else "the group (collectives cannot be rebuilt in place)"
    lost = "its GPU failed" if cause is C.DEVICE_LOST else f"lost ({cause.value})"
    return (FailureAction.RESTART_CLUSTER,
            f"{role} {lost}; {scope} restarts from the newest checkpoint in fresh processes ({spend})", budget)


class FailurePolicy:
    """Decides about batches of failed ends for one job (its strategy, budgets and backoff)."""

    def __init__(self, strategy: str, failure: FailurePolicySpec, *, settle_s: float, notice_grace_s: float):
        self.strategy = strategy
        self.limits = failure.limits()
        self.backoff_base_s = failure.backoff_s
        self.max_backoff_s = failure.max_backoff_s
        self.settle_s = settle_s
        self.notice_grace_s = notice_grace_s

    def settle_deadline(self, batch: tuple[TaskEnd, ...], now: float) -> float:
        """Until when to gather more ends for this batch (tasks stopping on a notice are saving)."""
        noticed = any(end.cause is C.STOPPED_ON_NOTICE for end in batch)
        return now + (self.notice_grace_s if noticed else self.settle_s)

    def settled(self, batch: tuple[TaskEnd, ...], running: set[TaskKey]) -> bool:
        """True when the batch holds a cause in itself (a GPU failure read from an error is one), or every
        running tracked task's end. A PSS chief that lost a server waits (until the settle deadline) for
        the server's own end: that is the cause, and its budget is the one to spend."""
        if any(end.cause in ROOT_CAUSES or gpu_cause(end.cause, end.error) for end in batch):
            return True
        if self.strategy == "parameter_server" and any(
                end.key.role == "chief" and looks_like_lost_server(end.error) for end in batch):
            return False
        return running <= {end.key for end in batch}

    def backoff_s(self, restart: int) -> float:
        """The wait before the ``restart``-th restart of this attempt (the first is immediate)."""
        if restart <= 1:
            return 0.0
        return min(self.max_backoff_s, self.backoff_base_s * 2 ** (restart - 2))

    def decide(self, batch: tuple[TaskEnd, ...], spent: dict[str, int], restarts: int,
               drained: frozenset[TaskKey] = frozenset()) -> BatchDecision:
        """The job's answer to a settled batch (``restarts``: how many this attempt has done so far;
        ``drained``: tasks sent a notice because their node is being drained)."""
        causes = [end for end in batch if end.cause not in (None, C.USER_ERROR) or gpu_cause(end.cause, end.error)]
        symptoms = tuple(end.key for end in batch if causes and end not in causes)
        spent = dict(spent)
        decisions = []
        for end in causes or list(batch):
            cause = classify(self.strategy, end.key.role, end.cause or C.USER_ERROR, end.error)
            action, reason, budget = decide_task(self.strategy, end.key.role, cause, spent, self.limits)
            if action is FailureAction.REPLACE_TASK:
                spent[budget] += 1  # each replacement spends its own
            decisions.append(TaskDecision(end.key, cause, action, reason, budget, end.error or ""))
        worst = max((d.action for d in decisions), key=SEVERITY.get)
        if worst is not FailureAction.RESTART_CLUSTER:
            return BatchDecision(worst, tuple(decisions), symptoms, spent)
        budget = next(d.budget for d in decisions if d.action is FailureAction.RESTART_CLUSTER)
        spent[budget] += 1  # one restart, however many tasks it answers
        capacity_lost = any(d.cause in CAPACITY_CAUSES or d.task in drained for d in decisions)
        return BatchDecision(worst, tuple(decisions), symptoms, spent,
                             RecoveryReason.CAPACITY_LOST if capacity_lost else RecoveryReason.FAILURE,
                             self.backoff_s(restarts + 1),
                             quarantine=any(d.cause is C.CHECKPOINT_UNREADABLE for d in decisions))

    def may_quarantine(self, spent: dict[str, int]) -> tuple[bool, str]:
        """Whether one more corrupt checkpoint may be set aside (the job then falls back to the one before),
        and the counter to show."""
        used, limit = spent.get("max_corrupt_checkpoints", 0), self.limits.get("max_corrupt_checkpoints", 0)
        return used < limit, f"max_corrupt_checkpoints {used + (used < limit)}/{limit}"

    def decide_unreplaced(self, key: TaskKey, cause: FailureCause, error: str, spent: dict[str, int],
                          restarts: int = 0) -> BatchDecision:
        """A replacement the policy asked for could not be started (its node is gone, or it did not start): the
        job goes on without that task rather than trying forever, or, for the tf.data service's dispatcher,
        which nothing goes on without, restarts the cluster or fails as the table says."""
        return self.decide((TaskEnd.failed(key, cause, error),), spent, restarts)
