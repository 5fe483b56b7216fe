"""The failure policy (docs/design.md §5): one task's table, then the batch rules and
backoff. Pure: no Ray, no clock."""

import pytest

from controller.machine.failure_policy import FailureAction, FailurePolicy, classify, decide_task
from controller.spec import FailurePolicySpec
from controller.states.state import RecoveryReason
from protocol.wire import FailureCause, TaskEnd, TaskKey

A, C = FailureAction, FailureCause
PSS, MWMS = "parameter_server", "multi_worker_mirrored"
LIMITS = {"max_preemptions": 10, "max_task_failures": 3, "max_infrastructure_failures": 3}
NONE_SPENT = {k: 0 for k in LIMITS}
CHIEF, W0, W1, PS0 = TaskKey("chief", 0), TaskKey("worker", 0), TaskKey("worker", 1), TaskKey("ps", 0)


GPU_OOM = ("ResourceExhaustedError: {{function_node __wrapped__Conv2D}} OOM when allocating tensor with "
           "shape[256,64,112,112] and type float on /job:worker/replica:0/task:1/device:GPU:0 by allocator GPU_0_bfc")
CPU_OOM = ("ResourceExhaustedError: OOM when allocating tensor with shape[1000000,1000] and type float on "
           "/job:worker/replica:0/task:1/device:CPU:0 by allocator cpu")
DEVICE_LOST = "InternalError: CUDA error: CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure [Op:MatMul]"


def policy(strategy=MWMS, **failure) -> FailurePolicy:
    return FailurePolicy(strategy, FailurePolicySpec(**failure), settle_s=2.0, notice_grace_s=30.0)


@pytest.mark.parametrize(
    "strategy, role, cause, error, action, budget",
    [
        (PSS, "worker", C.PROCESS_DIED, None, A.REPLACE_TASK, "max_task_failures"),
        (PSS, "worker", C.HUNG, None, A.REPLACE_TASK, "max_task_failures"),
        (PSS, "worker", C.NODE_LOST, None, A.CONTINUE_WITHOUT, None),
        (PSS, "worker", C.START_FAILED, None, A.CONTINUE_WITHOUT, None),
        (PSS, "ps", C.PROCESS_DIED, None, A.RESTART_CLUSTER, "max_task_failures"),
        (PSS, "ps", C.NODE_LOST, None, A.RESTART_CLUSTER, "max_preemptions"),
        (PSS, "chief", C.PROCESS_DIED, None, A.RESTART_CLUSTER, "max_task_failures"),
        (PSS, "chief", C.USER_ERROR, "tensorflow.python.framework.errors_impl.UnavailableError: ps gone",
         A.RESTART_CLUSTER, "max_infrastructure_failures"),
        (PSS, "chief", C.USER_ERROR, "ValueError: bad shape", A.FAIL, None),
        (PSS, "evaluator", C.PROCESS_DIED, None, A.REPLACE_TASK, "max_task_failures"),
        (PSS, "evaluator", C.USER_ERROR, "KeyError", A.CONTINUE_WITHOUT, None),
        (MWMS, "worker", C.PROCESS_DIED, None, A.RESTART_CLUSTER, "max_task_failures"),
        (MWMS, "worker", C.HUNG, None, A.RESTART_CLUSTER, "max_task_failures"),
        (MWMS, "worker", C.STOPPED_ON_NOTICE, "saved at step 40", A.RESTART_CLUSTER, "max_preemptions"),
        (PSS, "worker", C.STOPPED_ON_NOTICE, None, A.REPLACE_TASK, "max_preemptions"),
        (MWMS, "chief", C.NODE_LOST, None, A.RESTART_CLUSTER, "max_preemptions"),
        (MWMS, "worker", C.USER_ERROR, "ValueError", A.FAIL, None),
        (MWMS, "worker", C.INFRASTRUCTURE, None, A.RESTART_CLUSTER, "max_infrastructure_failures"),
        (MWMS, "worker", C.USER_ERROR, "DeadlineExceededError: {{function_node __wrapped__CollectiveReduceV2}} "
         "Collective ops is aborted by: ... RPC: /tensorflow.CoordinationService/Heartbeat",
         A.RESTART_CLUSTER, "max_infrastructure_failures"),
        (MWMS, "evaluator", C.PROCESS_DIED, None, A.REPLACE_TASK, "max_task_failures"),
        # the tf.data service: a data worker is expendable; the dispatcher is replaced in place, or restarts all
        (MWMS, "data_worker", C.PROCESS_DIED, None, A.REPLACE_TASK, "max_task_failures"),
        ("one_device", "data_worker", C.HUNG, None, A.REPLACE_TASK, "max_task_failures"),
        (PSS, "data_worker", C.NODE_LOST, None, A.CONTINUE_WITHOUT, None),
        (MWMS, "data_worker", C.START_FAILED, None, A.CONTINUE_WITHOUT, None),
        (MWMS, "data_dispatcher", C.PROCESS_DIED, None, A.REPLACE_TASK, "max_task_failures"),
        (PSS, "data_dispatcher", C.HUNG, None, A.REPLACE_TASK, "max_task_failures"),
        (MWMS, "data_dispatcher", C.NODE_LOST, None, A.RESTART_CLUSTER, "max_preemptions"),
        (MWMS, "data_dispatcher", C.START_FAILED, None, A.FAIL, None),
        (MWMS, "data_dispatcher", C.USER_ERROR, "OSError: port in use", A.FAIL, None),
        # GPUs: out of memory fails fast (a retry would run out again); a GPU that failed restarts
        (MWMS, "worker", C.USER_ERROR, GPU_OOM, A.FAIL, None),
        (PSS, "chief", C.USER_ERROR, GPU_OOM, A.FAIL, None),
        (MWMS, "evaluator", C.USER_ERROR, GPU_OOM, A.CONTINUE_WITHOUT, None),
        (MWMS, "worker", C.USER_ERROR, "InternalError: failed to allocate memory: CUDA_ERROR_OUT_OF_MEMORY: out of "
         "memory", A.FAIL, None),
        (MWMS, "worker", C.USER_ERROR, CPU_OOM, A.FAIL, None),  # a user error, not a GPU's (below)
        (MWMS, "worker", C.PROCESS_DIED, "killed by signal 9; ... failed to allocate 2.0G (CUDA_ERROR_OUT_OF_MEMORY)",
         A.RESTART_CLUSTER, "max_task_failures"),  # a warning printed before a kill is not why it died
        (MWMS, "worker", C.USER_ERROR, DEVICE_LOST, A.RESTART_CLUSTER, "max_infrastructure_failures"),
        (MWMS, "chief", C.PROCESS_DIED, "killed by signal 6; ... F0000 ... CUDA_ERROR_ILLEGAL_ADDRESS: an illegal "
         "memory access was encountered", A.RESTART_CLUSTER, "max_infrastructure_failures"),
        (PSS, "worker", C.USER_ERROR, "uncorrectable ECC error encountered", A.REPLACE_TASK,
         "max_infrastructure_failures"),
        (PSS, "ps", C.PROCESS_DIED, "CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure", A.RESTART_CLUSTER,
         "max_infrastructure_failures"),
    ],
)
def test_one_task(strategy, role, cause, error, action, budget):
    decided, _, spends = decide_task(strategy, role, classify(strategy, role, cause, error), NONE_SPENT, LIMITS)
    assert (decided, spends) == (action, budget)


def test_a_spent_budget_fails_the_job_and_names_the_counter():
    action, reason, _ = decide_task(MWMS, "worker", C.PROCESS_DIED, {**NONE_SPENT, "max_task_failures": 3}, LIMITS)
    assert action is A.FAIL and "max_task_failures 3/3" in reason


def test_preemptions_never_spend_the_error_budget():
    action, _, budget = decide_task(MWMS, "worker", C.NODE_LOST, {**NONE_SPENT, "max_task_failures": 3}, LIMITS)
    assert action is A.RESTART_CLUSTER and budget == "max_preemptions"


def test_an_expendable_task_is_left_out_when_its_budget_is_spent():
    spent = {**NONE_SPENT, "max_task_failures": 3}
    assert decide_task(PSS, "worker", C.PROCESS_DIED, spent, LIMITS)[0] is A.CONTINUE_WITHOUT


def test_gpu_causes_are_named_and_out_of_memory_comes_with_advice():
    assert classify(MWMS, "worker", C.USER_ERROR, GPU_OOM) is C.GPU_OOM
    assert classify(MWMS, "worker", C.USER_ERROR, CPU_OOM) is C.USER_ERROR
    assert classify(MWMS, "worker", C.USER_ERROR, DEVICE_LOST) is C.DEVICE_LOST
    _, reason, _ = decide_task(MWMS, "worker", C.GPU_OOM, NONE_SPENT, LIMITS)
    assert "out of GPU memory" in reason and "per-replica batch" in reason
    assert "roles.worker.resources.gpu_memory" in reason and "fewer tasks on each GPU" in reason
    _, reason, _ = decide_task(MWMS, "worker", C.DEVICE_LOST, NONE_SPENT, LIMITS)
    assert "its GPU failed" in reason and "fresh processes" in reason


def test_classify_keeps_plain_user_errors():
    assert classify(PSS, "chief", C.USER_ERROR, "KeyError: 'x'") is C.USER_ERROR
    assert classify(MWMS, "chief", C.USER_ERROR, "UnavailableError") is C.USER_ERROR


# ------------------------------------------------------------------ batches

def test_user_errors_spend_nothing_and_fail():
    batch = policy().decide((TaskEnd.failed(CHIEF, C.USER_ERROR, "ZeroDivisionError"),), NONE_SPENT, restarts=0)
    assert batch.action is A.FAIL and batch.spent == NONE_SPENT and batch.recovery is None


def test_a_restart_spends_one_unit_however_many_tasks_it_answers():
    ends = (TaskEnd.failed(W0, C.PROCESS_DIED, "x"), TaskEnd.failed(W1, C.PROCESS_DIED, "y"))
    batch = policy().decide(ends, NONE_SPENT, restarts=0)
    assert batch.action is A.RESTART_CLUSTER and batch.spent["max_task_failures"] == 1
    assert [d.task for d in batch.decisions] == [W0, W1] and batch.recovery is RecoveryReason.FAILURE


def test_each_replacement_spends_its_own_unit():
    ends = (TaskEnd.failed(W0, C.PROCESS_DIED, "x"), TaskEnd.failed(W1, C.HUNG, "y"))
    batch = policy(PSS).decide(ends, NONE_SPENT, restarts=0)
    assert batch.action is A.REPLACE_TASK and batch.spent["max_task_failures"] == 2


def test_symptoms_beside_a_lost_task_are_dropped():
    ends = (TaskEnd.failed(CHIEF, C.USER_ERROR, "CollectiveOpsAborted"), TaskEnd.failed(W1, C.PROCESS_DIED, "kill"))
    batch = policy().decide(ends, NONE_SPENT, restarts=0)
    assert [d.task for d in batch.decisions] == [W1] and batch.symptoms == (CHIEF,)


def test_the_worst_action_wins():
    ends = (TaskEnd.failed(W0, C.PROCESS_DIED, "x"), TaskEnd.failed(PS0, C.PROCESS_DIED, "y"))
    assert policy(PSS).decide(ends, NONE_SPENT, restarts=0).action is A.RESTART_CLUSTER


def test_the_decision_carries_the_classified_cause():
    end = TaskEnd.failed(CHIEF, C.USER_ERROR, "UnavailableError: ps-0")
    (decision,) = policy(PSS).decide((end,), NONE_SPENT, restarts=0).decisions
    assert (decision.cause, decision.budget) == (C.INFRASTRUCTURE, "max_infrastructure_failures")


@pytest.mark.parametrize("cause, drained, recovery", [
    (C.PROCESS_DIED, False, RecoveryReason.FAILURE),
    (C.NODE_LOST, False, RecoveryReason.CAPACITY_LOST),
    (C.STOPPED_ON_NOTICE, False, RecoveryReason.CAPACITY_LOST),
    (C.PROCESS_DIED, True, RecoveryReason.CAPACITY_LOST),  # it died while its node was being drained
])
def test_a_restart_asks_for_capacity_again_when_it_went_with_the_task(cause, drained, recovery):
    batch = policy().decide((TaskEnd.failed(W1, cause, "x"),), NONE_SPENT, restarts=0,
                            drained=frozenset({W1}) if drained else frozenset())
    assert batch.recovery is recovery


@pytest.mark.parametrize("restart, wait", [(1, 0.0), (2, 1.5), (3, 3.0), (4, 4.0), (9, 4.0)])
def test_backoff_first_restart_at_once_then_doubling_to_the_cap(restart, wait):
    assert policy(backoff_s=1.5, max_backoff_s=4).backoff_s(restart) == wait


def test_a_batch_decision_says_its_restarts_backoff():
    batch = policy(backoff_s=1.5).decide((TaskEnd.failed(W0, C.PROCESS_DIED, "x"),), NONE_SPENT, restarts=2)
    assert batch.backoff_s == 3.0


@pytest.mark.parametrize("ends, running, settled", [
    ((TaskEnd.failed(CHIEF, C.USER_ERROR, "e"),), {CHIEF, W0}, False),  # a bare error: its cause may follow
    ((TaskEnd.failed(CHIEF, C.USER_ERROR, "e"),), {CHIEF}, True),  # every running task's end is in
    ((TaskEnd.failed(W0, C.PROCESS_DIED, "k"),), {CHIEF, W0}, True),  # a lost task is a cause in itself
    ((TaskEnd.failed(W0, C.STOPPED_ON_NOTICE, "s"),), {CHIEF, W0}, False),  # peers are still saving
])
def test_settling(ends, running, settled):
    assert policy().settled(ends, running) is settled


def test_a_pss_chief_that_lost_a_server_waits_for_the_servers_end():
    """The chief is PSS's only tracked task, but its UnavailableError is a symptom: the lost server's end,
    a moment behind it, is the cause (and the budget to spend); the settle deadline bounds the wait."""
    lost = TaskEnd.failed(CHIEF, C.USER_ERROR, "tensorflow.python.framework.errors_impl.UnavailableError: ps-0")
    pss = policy(PSS)
    assert not pss.settled((lost,), running={CHIEF})
    assert pss.settled((lost, TaskEnd.failed(PS0, C.PROCESS_DIED, "killed")), running={CHIEF})
    assert pss.settled((TaskEnd.failed(CHIEF, C.USER_ERROR, "ValueError: bad"),), running={CHIEF})


def test_settling_on_a_notice_waits_for_the_grace():
    p = policy()
    assert p.settle_deadline((TaskEnd.failed(W0, C.STOPPED_ON_NOTICE, "s"),), now=100) == 130
    assert p.settle_deadline((TaskEnd.failed(W0, C.USER_ERROR, "e"),), now=100) == 102


def test_an_unreplaced_task_is_gone_on_without():
    batch = policy(PSS).decide_unreplaced(W0, C.START_FAILED, "did not start", NONE_SPENT)
    assert batch.action is A.CONTINUE_WITHOUT and batch.decisions[0].cause is C.START_FAILED


def test_an_out_of_memory_task_fails_the_job_and_its_peers_errors_are_symptoms():
    aborted = "Collective ops is aborted by: worker-1 stopped answering"
    batch = policy().decide((TaskEnd.failed(W1, C.USER_ERROR, GPU_OOM), TaskEnd.failed(W0, C.USER_ERROR, aborted),
                             TaskEnd.failed(CHIEF, C.USER_ERROR, aborted)), NONE_SPENT, restarts=0)
    assert batch.action is A.FAIL and batch.spent == NONE_SPENT
    assert [(d.task, d.cause) for d in batch.decisions] == [(W1, C.GPU_OOM)] and set(batch.symptoms) == {W0, CHIEF}


def test_a_lost_gpu_restarts_on_the_infrastructure_budget_at_once():
    end = TaskEnd.failed(W1, C.USER_ERROR, DEVICE_LOST)
    assert policy().settled((end,), running={CHIEF, W0, W1})  # a cause in itself: no settling wait
    assert not policy().settled((TaskEnd.failed(W1, C.USER_ERROR, "ValueError"),), running={CHIEF, W0, W1})
    batch = policy().decide((end,), NONE_SPENT, restarts=0)
    assert (batch.action, batch.recovery) == (A.RESTART_CLUSTER, RecoveryReason.FAILURE)
    assert batch.spent["max_infrastructure_failures"] == 1 and batch.decisions[0].cause is C.DEVICE_LOST


def test_a_dispatcher_that_cannot_be_started_again_restarts_the_cluster_or_fails_never_goes_on_without():
    """Nothing trains without the dispatcher: its node gone restarts the cluster (a new address for every
    task); a start that failed fails the job with the reason."""
    lost = policy(MWMS).decide_unreplaced(TaskKey("data_dispatcher", 0), C.NODE_LOST, "node gone", NONE_SPENT, 0)
    assert lost.action is A.RESTART_CLUSTER and lost.recovery is RecoveryReason.CAPACITY_LOST
    failed = policy(MWMS).decide_unreplaced(TaskKey("data_dispatcher", 0), C.START_FAILED, "no start", NONE_SPENT)
    assert failed.action is A.FAIL
    worker = policy(MWMS).decide_unreplaced(TaskKey("data_worker", 1), C.START_FAILED, "no start", NONE_SPENT)
    assert worker.action is A.CONTINUE_WITHOUT
