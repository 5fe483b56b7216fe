"""Faults injected through the job spec (the shared seam) into real task processes. No TF needed."""

import pytest

from controller.api import run_job
from controller.states.events import Decision
from controller.states.state import JobState

from .conftest import REPO, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration

STEPS = {"function": "tests.integration.entrypoints:count_steps", "args": {"steps": 20, "interval_s": 0.1}}
NO_TF = {"TFRAY_PREIMPORT_TF": "0"}  # no TensorFlow in the entrypoint: nor in the launchers


def faulty_job(tmp_path, name, fault, **extra):
    return job_spec(tmp_path, name, STEPS, faults=[fault], env=NO_TF,
                    failure={"backoff_s": 0}, timeouts={"heartbeat_s": 4, "startup_s": 60, "job_s": 120}, **extra)


@pytest.mark.parametrize("action, cause, budget", [("kill", "process_died", "max_task_failures"),
                                                   ("sigterm", "stopped_on_notice", "max_preemptions"),
                                                   ("hang", "hung", "max_task_failures")])
def test_a_lost_task_restarts_the_group_and_the_job_ends_well(local_ray, tmp_path, action, cause, budget):
    spec = faulty_job(tmp_path, f"fault-{action}", {"task": "worker-1", "action": action, "at_step": 3})
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.restarts == 1 and result.result == 20
    decided = [e for e in result.events if isinstance(e, Decision)]
    assert [(e.task, e.cause, e.action) for e in decided] == [("worker-1", cause, "restart_cluster")]
    assert decided[-1].spent[budget] == 1 and sum(decided[-1].spent.values()) == 1
    assert_nothing_left()


def test_an_injected_exception_fails_fast_without_spending_a_retry(local_ray, tmp_path):
    spec = faulty_job(tmp_path, "fault-raise", {"task": "chief-0", "action": "raise", "at_step": 3})
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.FAILED
    assert "InjectedFault: injected fault in chief-0" in result.message
    decided = [e for e in result.events if isinstance(e, Decision)]
    assert result.restarts == 0 and decided[-1].spent == {
        "max_preemptions": 0, "max_task_failures": 0, "max_infrastructure_failures": 0,
        "max_corrupt_checkpoints": 0}
    assert_nothing_left()


def test_failures_past_the_budget_fail_with_the_cause_and_the_budget(local_ray, tmp_path):
    faults = [{"task": "worker-0", "action": "kill", "at_step": 2, "restart": r} for r in range(2)]
    spec = job_spec(tmp_path, "fault-budget", STEPS, faults=faults, env=NO_TF,
                    failure={"backoff_s": 0, "max_task_failures": 1})
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.FAILED
    assert "process_died, but the budget is spent (max_task_failures 1/1)" in result.message
    assert result.restarts == 1
    assert_nothing_left()
