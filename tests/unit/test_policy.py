"""The failure policy table (DESIGN.md §5), one row a case; pure, no Ray."""

import pytest

from controller.policy import FailureAction, FailureCause, decide

A, C = FailureAction, FailureCause
PSS, MWMS = "parameter_server", "multi_worker_mirrored"


@pytest.mark.parametrize(
    "strategy, role, cause, error, action",
    [
        (PSS, "worker", C.PROCESS_DIED, None, A.REPLACE_TASK),
        (PSS, "worker", C.NODE_LOST, None, A.CONTINUE_WITHOUT),
        (PSS, "worker", C.USER_ERROR, "server crashed", A.REPLACE_TASK),
        (PSS, "ps", C.PROCESS_DIED, None, A.RESTART_CLUSTER),
        (PSS, "ps", C.NODE_LOST, None, A.RESTART_CLUSTER),
        (PSS, "chief", C.PROCESS_DIED, None, A.RESTART_CLUSTER),
        (PSS, "chief", C.USER_ERROR, "tensorflow.python.framework.errors_impl.UnavailableError: ps gone",
         A.RESTART_CLUSTER),
        (PSS, "chief", C.USER_ERROR, "ValueError: bad shape", A.FAIL),
        (PSS, "evaluator", C.PROCESS_DIED, None, A.REPLACE_TASK),
        (PSS, "evaluator", C.USER_ERROR, "KeyError", A.CONTINUE_WITHOUT),
        (MWMS, "worker", C.PROCESS_DIED, None, A.RESTART_CLUSTER),
        (MWMS, "chief", C.NODE_LOST, None, A.RESTART_CLUSTER),
        (MWMS, "worker", C.USER_ERROR, "ValueError", A.FAIL),
        (MWMS, "evaluator", C.PROCESS_DIED, None, A.REPLACE_TASK),
    ],
)
def test_default_actions(strategy, role, cause, error, action):
    assert decide(strategy, role, cause, error, restarts=0, max_restarts=3).action is action


def test_restart_budget_is_a_limit():
    decision = decide(PSS, "ps", C.PROCESS_DIED, None, restarts=3, max_restarts=3)
    assert decision.action is A.FAIL and "3/3" in decision.reason
    ok = decide(PSS, "ps", C.PROCESS_DIED, None, restarts=2, max_restarts=3)
    assert ok.action is A.RESTART_CLUSTER and "restart 3/3" in ok.reason


def test_a_crash_looping_task_is_left_out_after_its_replacements():
    decision = decide(PSS, "worker", C.PROCESS_DIED, None, 0, 3, replacements=10, max_replacements=10)
    assert decision.action is A.CONTINUE_WITHOUT and "10/10" in decision.reason


def test_user_errors_never_spend_restarts():
    assert decide(MWMS, "chief", C.USER_ERROR, "ZeroDivisionError", restarts=0, max_restarts=99).action is A.FAIL
