"""The failure policy table (DESIGN.md §5), one row a case; pure, no Ray."""

import pytest

from controller.policy import FailureAction, FailureCause, classify, decide

A, C = FailureAction, FailureCause
PSS, MWMS = "parameter_server", "multi_worker_mirrored"
LIMITS = {"max_preemptions": 10, "max_task_failures": 3, "max_infrastructure_failures": 3}
NONE_SPENT = {k: 0 for k in LIMITS}


@pytest.mark.parametrize(
    "strategy, role, cause, error, action, budget",
    [
        (PSS, "worker", C.PROCESS_DIED, None, A.REPLACE_TASK, "max_task_failures"),
        (PSS, "worker", C.HUNG, None, A.REPLACE_TASK, "max_task_failures"),
        (PSS, "worker", C.NODE_LOST, None, A.CONTINUE_WITHOUT, None),
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
        (MWMS, "worker", C.PREEMPTED, "TaskPreempted: saved at step 40", A.RESTART_CLUSTER, "max_preemptions"),
        (PSS, "worker", C.PREEMPTED, None, A.REPLACE_TASK, "max_preemptions"),
        (MWMS, "chief", C.NODE_LOST, None, A.RESTART_CLUSTER, "max_preemptions"),
        (MWMS, "worker", C.USER_ERROR, "ValueError", A.FAIL, None),
        (MWMS, "evaluator", C.PROCESS_DIED, None, A.REPLACE_TASK, "max_task_failures"),
    ],
)
def test_default_actions(strategy, role, cause, error, action, budget):
    decision = decide(strategy, role, cause, error, spent=NONE_SPENT, limits=LIMITS)
    assert (decision.action, decision.budget) == (action, budget)


def test_a_spent_budget_fails_the_job_and_names_the_counter():
    spent = {**NONE_SPENT, "max_task_failures": 3}
    decision = decide(MWMS, "worker", C.PROCESS_DIED, None, spent=spent, limits=LIMITS)
    assert decision.action is A.FAIL and "max_task_failures 3/3" in decision.reason


def test_preemptions_never_spend_the_error_budget():
    spent = {**NONE_SPENT, "max_task_failures": 3}  # error budget gone
    decision = decide(MWMS, "worker", C.NODE_LOST, None, spent=spent, limits=LIMITS)
    assert decision.action is A.RESTART_CLUSTER and decision.budget == "max_preemptions"


def test_an_expendable_task_is_left_out_when_its_budget_is_spent():
    spent = {**NONE_SPENT, "max_task_failures": 3}
    assert decide(PSS, "worker", C.PROCESS_DIED, None, spent=spent, limits=LIMITS).action is A.CONTINUE_WITHOUT


def test_user_errors_never_spend_anything():
    decision = decide(MWMS, "chief", C.USER_ERROR, "ZeroDivisionError", spent=NONE_SPENT, limits=LIMITS)
    assert decision.action is A.FAIL and decision.budget is None


def test_classify_keeps_plain_user_errors():
    assert classify(PSS, "chief", C.USER_ERROR, "KeyError: 'x'") is C.USER_ERROR
    assert classify(MWMS, "chief", C.USER_ERROR, "UnavailableError") is C.USER_ERROR
