"""The controller carrying out the failure policy: restarts, replacements, settling, hangs, budgets.

Stepped with the fake task group; asserts fakes.states, what the group was asked, and the recorded events.
"""

from controller.machine.record import JobRecord
from controller.states.events import Decision, Restart
from controller.states.state import Failed, JobState, Recovering, RecoveryReason, Running
from controller.states.task_group import NodeLostError, TaskInfo, TaskStartError
from protocol.wire import FailureCause, TaskEnd
from tests.unit import fakes
from tests.unit.fakes import CHIEF, EVAL, PS0, W0, W1


def decisions(controller) -> list[Decision]:
    return [e for e in controller.outcome().events if isinstance(e, Decision)]


def test_pss_chief_waits_for_servers_and_tasks_get_grpc_fail_fast(tmp_path):
    group = fakes.FakeTaskGroup()
    fakes.start_running(fakes.controller_for(fakes.pss_spec(tmp_path), group))
    chief = group.launches[CHIEF]
    assert dict(chief.servers) == {"worker-0": "10.0.0.1:2221", "worker-1": "10.0.0.2:2222", "ps-0": "10.0.0.3:2223"}
    assert group.launches[PS0].runs_server and not chief.runs_server and group.launches[W0].servers == ()
    assert group.env["GRPC_FAIL_FAST"] == "use_caller"
    assert "evaluator" not in chief.tf_config["cluster"]


def test_pss_worker_loss_is_absorbed_by_a_replacement_without_its_faults(tmp_path):
    group = fakes.FakeTaskGroup()
    spec = fakes.pss_spec(tmp_path, faults=[{"task": "worker-0", "action": "kill", "at_step": 5}])
    controller = fakes.controller_for(spec, group)
    fakes.start_running(controller)
    assert group.launches[W0].faults
    group.ends = [fakes.died(W0)]
    assert controller.step() == Running()
    assert group.replaced == [W0] and group.stops == 0 and group.launches[W0].faults == ()
    result = controller.outcome()
    assert result.restarts == 0 and result.statuses["worker-0"] == "ALIVE" and result.tasks["worker-0"].pid == 999
    (decision,) = decisions(controller)
    assert (decision.action, decision.budget, decision.spent["max_task_failures"]) == ("replace_task",
                                                                                       "max_task_failures", 1)


def test_pss_worker_whose_node_is_gone_is_left_out(tmp_path):
    controller, group = fakes.running(fakes.pss_spec(tmp_path))
    group.ends = [fakes.died(W1, FailureCause.NODE_LOST, "node fakes.died")]
    assert controller.step() == Running()
    assert group.replaced == [] and controller.outcome().statuses["worker-1"] == "LOST"
    assert decisions(controller)[0].action == "continue_without"


def test_a_failed_replacement_start_is_a_recorded_decision_to_go_on_without(tmp_path):
    error = TaskStartError("the replacement of worker-0 landed on another node")
    controller, group = fakes.running(fakes.pss_spec(tmp_path), fakes.FakeTaskGroup(replace_error=error))
    group.ends = [fakes.died(W0)]
    assert controller.step() == Running()
    assert controller.outcome().statuses["worker-0"] == "FAILED" and group.killed == [W0]
    replaced, unreplaced = decisions(controller)
    assert (replaced.action, replaced.cause) == ("replace_task", "process_died")
    assert (unreplaced.cause, unreplaced.action) == ("start_failed", "continue_without")
    assert "landed on another node" in unreplaced.error


def test_a_replacement_whose_node_died_meanwhile_counts_as_node_lost(tmp_path):
    error = NodeLostError("the node of worker-0 is gone")
    controller, group = fakes.running(fakes.pss_spec(tmp_path), fakes.FakeTaskGroup(replace_error=error))
    group.ends = [fakes.died(W0)]
    assert controller.step() == Running()
    assert controller.outcome().statuses["worker-0"] == "LOST"
    assert (decisions(controller)[-1].cause, decisions(controller)[-1].action) == ("node_lost", "continue_without")


def test_pss_ps_loss_restarts_the_cluster_from_the_newest_checkpoint(tmp_path):
    spec = fakes.pss_spec(tmp_path)
    controller, group = fakes.running(spec)
    group.reports = [fakes.checkpoint_report(spec, 40, epoch=4)]
    group.ends = [fakes.died(PS0), fakes.died(CHIEF, FailureCause.USER_ERROR, "UnavailableError: ps-0")]
    assert controller.step() == Recovering(RecoveryReason.FAILURE, 0.0)
    assert fakes.states(controller, 2) == [JobState.STARTING, JobState.RUNNING] and group.stops == 1
    assert group.launches[CHIEF].restore.step == 40 and controller.outcome().restarts == 1
    (decision,) = decisions(controller)  # the chief's error is a symptom of the lost ps
    assert decision.task == "ps-0"
    restart = next(e for e in controller.outcome().events if isinstance(e, Restart))
    assert (restart.restart, restart.from_step, restart.reason) == (1, 40, "failure")


def test_a_pss_chief_losing_a_server_is_recorded_as_infrastructure(tmp_path):
    """The classified cause is what the record shows and what the budget spent says (it was misrecorded
    as user_error while spending max_infrastructure_failures)."""
    clock = fakes.FakeClock()
    controller, group = fakes.running(fakes.pss_spec(tmp_path), clock=clock)
    group.ends = [fakes.died(CHIEF, FailureCause.USER_ERROR, "tensorflow...UnavailableError: ps-0 is gone")]
    assert controller.step().settling  # the lost server's own end may follow: it would be the cause
    clock.now += 2.5  # it did not come within failure settling: the chief's error is all there is
    assert isinstance(controller.step(), Recovering)
    (decision,) = decisions(controller)
    assert (decision.cause, decision.action, decision.budget) == ("infrastructure", "restart_cluster",
                                                                  "max_infrastructure_failures")
    assert decision.spent["max_infrastructure_failures"] == 1
    (attempt,) = JobRecord(controller.spec.job_dir, "job").attempts()
    assert attempt.events[-1].cause == "infrastructure"


def test_restarts_past_the_budget_fail_the_job_and_back_off(tmp_path):
    waits = []
    spec = fakes.pss_spec(tmp_path, failure={"max_task_failures": 3, "backoff_s": 1.5, "max_backoff_s": 2})
    controller, group = fakes.running(spec, sleep=waits.append)
    for expected in (JobState.RECOVERING, JobState.RECOVERING, JobState.RECOVERING, JobState.FAILED):
        group.ends = [fakes.died(PS0)]
        assert controller.step().name is expected
        if expected is JobState.RECOVERING:
            assert fakes.states(controller, 2) == [JobState.STARTING, JobState.RUNNING]
    assert waits == [1.5, 2]  # the first restart at once, then doubling, capped by max_backoff_s
    message = controller.outcome().message
    assert "budget is spent (max_task_failures 3/3)" in message and "ps-0" in message
    assert group.shutdowns == 1 and controller.outcome().restarts == 3


def test_a_preemption_does_not_spend_the_task_failure_budget(tmp_path):
    controller, group = fakes.running(fakes.pss_spec(tmp_path, failure={"max_task_failures": 0, "backoff_s": 0}))
    group.ends = [fakes.died(PS0, FailureCause.NODE_LOST, "node gone")]
    assert controller.step() == Recovering(RecoveryReason.CAPACITY_LOST, 0.0)
    assert decisions(controller)[0].spent == {"max_preemptions": 1, "max_task_failures": 0,
                                              "max_infrastructure_failures": 0, "max_corrupt_checkpoints": 0}


def test_pss_succeeds_when_the_chief_finishes_and_the_evaluator_is_stopped(tmp_path):
    controller, group = fakes.running(fakes.pss_spec(tmp_path), clock=fakes.FakeClock())
    group.ends = [TaskEnd.done(CHIEF, {"step": 300})]
    assert controller.step().name is JobState.RUNNING  # ps and workers never end by themselves
    assert group.sidecar_stops == 1
    group.ends = [TaskEnd.done(EVAL, {"evaluated": 3})]
    assert controller.step().name is JobState.SUCCEEDED
    assert controller.result == {"step": 300} and group.shutdowns == 1


def test_an_evaluator_that_never_stops_is_torn_down_after_grace(tmp_path):
    clock = fakes.FakeClock()
    controller, group = fakes.running(fakes.pss_spec(tmp_path), clock=clock)
    group.ends = [TaskEnd.done(CHIEF)]
    controller.step()
    clock.now += 11
    state = controller.step()
    assert state.name is JobState.SUCCEEDED and "evaluator-0 torn down" in state.message


def test_a_peer_error_beside_a_lost_process_is_a_symptom_not_a_bug(tmp_path):
    controller, group = fakes.running(fakes.make_spec(tmp_path))
    group.ends = [fakes.died(CHIEF, FailureCause.USER_ERROR, "CollectiveOpsAborted"), fakes.died(W1, error="SIGKILL")]
    assert isinstance(controller.step(), Recovering)
    assert [d.task for d in decisions(controller)] == ["worker-1"]


def test_a_bare_error_settles_until_its_cause_arrives(tmp_path):
    clock = fakes.FakeClock()
    controller, group = fakes.running(fakes.make_spec(tmp_path), clock=clock)
    group.ends = [fakes.died(CHIEF, FailureCause.USER_ERROR, "CollectiveOpsAborted")]
    state = controller.step()
    assert state.name is JobState.RUNNING and [e.key for e in state.settling] == [CHIEF]
    clock.now += 1  # within the settle bound: the lost peer's end arrives
    group.ends = [fakes.died(W0, error="SIGKILL")]
    assert isinstance(controller.step(), Recovering)
    assert [(d.task, d.cause) for d in decisions(controller)] == [("worker-0", "process_died")]


def test_a_task_without_heartbeats_is_handled_as_hung(tmp_path):
    clock = fakes.FakeClock()
    controller, group = fakes.running(fakes.make_spec(tmp_path, timeouts={"heartbeat_s": 5}), clock=clock)
    clock.now += 4
    group.reports = fakes.heartbeats("chief-0", "worker-0", "worker-1")
    assert controller.step().name is JobState.RUNNING
    clock.now += 4  # 8 s since the start, 4 s since the last beat: fine
    group.reports = fakes.heartbeats("chief-0", "worker-0")
    assert controller.step().name is JobState.RUNNING
    clock.now += 2  # worker-1 silent for 6 s
    assert isinstance(controller.step(), Recovering)
    (decision,) = decisions(controller)
    assert (decision.task, decision.cause, decision.action) == ("worker-1", "hung", "restart_cluster")
    assert "no heartbeat for 6s" in decision.error


def test_a_hung_evaluator_whose_budget_is_spent_is_killed_and_left_out(tmp_path):
    clock = fakes.FakeClock()
    group = fakes.FakeTaskGroup()
    spec = fakes.pss_spec(tmp_path, timeouts={"heartbeat_s": 5}, failure={"max_task_failures": 0})
    controller = fakes.controller_for(spec, group, clock=clock)
    fakes.start_running(controller)
    clock.now += 4
    group.reports = fakes.heartbeats("chief-0", "worker-0", "worker-1", "ps-0")
    controller.step()
    clock.now += 2
    assert controller.step().name is JobState.RUNNING
    assert group.killed == [EVAL] and controller.outcome().statuses["evaluator-0"] == "FAILED"


# ------------------------------------------------------------------ a GPU failure, as the controller sees it

def test_a_task_out_of_gpu_memory_fails_the_job_naming_it_its_gpu_and_what_to_do(tmp_path):
    shared_gpu = {"worker": {"count": 2, "resources": {"gpu": 0.5}}}
    controller, group = fakes.running(fakes.make_spec(tmp_path, roles=shared_gpu))
    where = controller.tasks.infos[W1]
    controller.tasks.infos[W1] = TaskInfo(where.address, where.node_id, where.hostname, where.pid, ("0",))
    group.ends = [TaskEnd.failed(W1, FailureCause.USER_ERROR, "ResourceExhaustedError: OOM when allocating "
                                 "tensor with shape[64,512] on /job:worker/replica:0/task:1/device:GPU:0")]
    state = controller.step()
    assert isinstance(state, Failed), state
    assert "worker-1 on node" in state.message and "GPU 0)" in state.message
    assert "out of GPU memory" in state.message and "roles.worker.resources.gpu_memory" in state.message
    (decision,) = decisions(controller)
    assert (decision.cause, decision.action, decision.budget) == ("gpu_oom", "fail", None)
