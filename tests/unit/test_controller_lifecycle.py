"""The controller's life: start, run, end and resume, stepped with a fake task group standing in for Ray.

Tests assert the fakes.states the controller steps through, what it asked the group to do, and what its
attempt recorded (the JobResult and job.json), never its private attributes.
"""

import inspect

import pytest

from controller.machine.record import JobRecord
from controller.states.events import Decision, DriverLost
from controller.states.state import (
    TRANSITIONS,
    Failed,
    JobState,
    Pending,
    Provisioning,
    Running,
    Size,
    Succeeded,
    check_transition,
)
from controller.states.task_group import SchedulingTimeoutError, TaskGroup, TaskStartError
from protocol.wire import FailureCause, MetricsReport, RestorePoint, TaskEnd
from tests.unit import fakes
from tests.unit.fakes import CHIEF, W0, W1


def test_the_fake_implements_the_whole_task_group_protocol():
    from controller.ray.group import RayTaskGroup

    wanted = {name: inspect.signature(fn) for name, fn in vars(TaskGroup).items()
              if callable(fn) and not name.startswith("_")}
    assert len(wanted) == 16
    for cls in (fakes.FakeTaskGroup, RayTaskGroup):
        for name, signature in wanted.items():
            assert list(inspect.signature(getattr(cls, name)).parameters) == list(signature.parameters), (cls, name)


def test_happy_path_one_state_per_step(tmp_path):
    group = fakes.FakeTaskGroup()
    controller = fakes.controller_for(fakes.make_spec(tmp_path), group)
    assert isinstance(controller.state, Pending)
    assert controller.step() == Provisioning((Size(2, 120),))  # the full size, for timeouts.scheduling_s
    assert fakes.states(controller, 2) == [JobState.STARTING, JobState.RUNNING]
    assert controller.outcome().statuses == {"chief-0": "ALIVE", "worker-0": "ALIVE", "worker-1": "ALIVE"}
    assert controller.step() == Running()  # nothing happened yet
    group.ends = [TaskEnd.done(W0), TaskEnd.done(CHIEF, {"acc": 0.9})]
    assert controller.step().name is JobState.RUNNING  # worker-1 still fakes.running
    group.ends = [TaskEnd.done(W1)]
    assert controller.step() == Succeeded("training finished")
    result = controller.outcome()
    assert result.result == {"acc": 0.9} and result.attempt == 1 and result.state is JobState.SUCCEEDED
    assert group.shutdowns == 1  # released at the end, once
    controller.stop()
    assert group.shutdowns == 1 and controller.state.name is JobState.SUCCEEDED  # stop after the end is a no-op


def test_every_task_gets_its_tf_config_with_reported_addresses(tmp_path):
    group = fakes.FakeTaskGroup()
    fakes.start_running(fakes.controller_for(fakes.make_spec(tmp_path), group))
    cluster = {"chief": ["10.0.0.0:2220"], "worker": ["10.0.0.1:2221", "10.0.0.2:2222"]}
    launch = group.launches[W1]
    assert launch.tf_config == {"cluster": cluster, "task": {"type": "worker", "index": 1}}
    assert launch.entrypoint.args == {"epochs": 2} and not launch.is_chief and group.launches[CHIEF].is_chief
    assert group.env["TF_USE_LEGACY_KERAS"] == "1" and group.env["TF_GRPC_REUSE_PORT"] == "true"
    assert launch.restore is None


def test_scheduling_timeout_fails_the_job_and_releases(tmp_path):
    group = fakes.FakeTaskGroup(provision_error=SchedulingTimeoutError("asked for CPU=300; the cluster has CPU=2"))
    result = fakes.controller_for(fakes.make_spec(tmp_path), group).run()
    assert result.state is JobState.FAILED and "CPU=300" in result.message
    assert group.launches == {} and group.shutdowns == 1


def test_start_timeout_fails_the_job(tmp_path):
    group = fakes.FakeTaskGroup(start_error=TaskStartError("tasks worker-1 did not start within 5s"))
    result = fakes.controller_for(fakes.make_spec(tmp_path), group).run()
    assert result.state is JobState.FAILED and "worker-1 did not start" in result.message


def test_a_user_error_fails_fast_naming_task_node_and_error(tmp_path):
    clock = fakes.FakeClock()
    controller, group = fakes.running(fakes.make_spec(tmp_path), clock=clock)
    group.ends = [fakes.died(W1, FailureCause.USER_ERROR, "ValueError: bad batch")]
    assert controller.step().settling  # its peers may still report a cause (a lost task)
    clock.now += 2.5  # none came within failure settling
    state = controller.step()
    assert isinstance(state, Failed)
    assert "worker-1 on node node00000000" in state.message and "host2" in state.message
    assert "ValueError: bad batch" in state.message and "failing fast" in state.message
    decision = next(e for e in controller.outcome().events if isinstance(e, Decision))
    assert (decision.task, decision.cause, decision.action, decision.budget) == ("worker-1", "user_error", "fail",
                                                                                 None)
    assert group.shutdowns == 1


def test_ctrl_c_stops_cleanly_and_the_tasks_are_recorded_as_stopped(tmp_path):
    spec = fakes.make_spec(tmp_path)
    controller, group = fakes.running(spec)
    group.poll_error = KeyboardInterrupt()
    result = controller.run()
    assert result.state is JobState.STOPPED and "Ctrl-C" in result.message and group.shutdowns == 1
    assert set(result.statuses.values()) == {"STOPPED"}  # not ALIVE in a stopped attempt's record
    (attempt,) = JobRecord(spec.job_dir, spec.name).attempts()
    assert attempt.state == "STOPPED" and set(attempt.statuses.values()) == {"STOPPED"}


def test_checkpoint_reports_are_registered_only_when_complete(tmp_path):
    spec = fakes.make_spec(tmp_path)
    controller, group = fakes.running(spec)
    half = fakes.checkpoint_report(spec, 20)
    (spec.job_dir / "checkpoints" / "ckpt-000000020" / "COMPLETE.json").unlink()
    group.reports = [
        MetricsReport(CHIEF, 10, {"loss": 1.0}),
        fakes.checkpoint_report(spec, 10), half]
    controller.step()
    assert controller.outcome().latest_checkpoint.step == 10


def test_a_rerun_resumes_from_the_newest_complete_checkpoint(tmp_path):
    spec = fakes.make_spec(tmp_path)
    first = fakes.FakeTaskGroup()
    controller = fakes.controller_for(spec, first)
    fakes.start_running(controller)
    first.reports = [fakes.checkpoint_report(spec, 30, epoch=3)]
    controller.stop()
    assert controller.state.name is JobState.STOPPED

    second = fakes.FakeTaskGroup()
    fakes.start_running(fakes.controller_for(spec, second))
    launch = second.launches[W0]
    assert launch.restore == RestorePoint(str(spec.job_dir / "checkpoints" / "ckpt-000000030"), 30, 3)
    assert launch.attempt == 2


def test_chief_done_but_a_worker_never_ends_is_torn_down_after_grace(tmp_path):
    clock = fakes.FakeClock()
    controller, group = fakes.running(fakes.make_spec(tmp_path), clock=clock)
    group.ends = [TaskEnd.done(CHIEF), TaskEnd.done(W0)]
    controller.step()
    clock.now += 5
    assert controller.step().name is JobState.RUNNING
    clock.now += 6
    state = controller.step()
    assert state.name is JobState.SUCCEEDED and "worker-1" in state.message and group.shutdowns == 1
    assert controller.outcome().statuses == {"chief-0": "FINISHED", "worker-0": "FINISHED", "worker-1": "STOPPED"}


def test_job_timeout(tmp_path):
    clock = fakes.FakeClock()
    controller = fakes.controller_for(fakes.make_spec(tmp_path), clock=clock)
    fakes.start_running(controller)
    clock.now += 101
    assert controller.step() == Failed("the job ran past timeouts.job_s=100s")


def test_illegal_transitions_are_refused():
    with pytest.raises(RuntimeError, match="SUCCEEDED -> RUNNING"):
        check_transition(JobState.SUCCEEDED, JobState.RUNNING)
    with pytest.raises(RuntimeError):
        check_transition(JobState.PENDING, JobState.RUNNING)
    assert all(not TRANSITIONS[s] for s in JobState if s.is_terminal)


def test_faults_reach_only_their_task_and_run(tmp_path):
    spec = fakes.make_spec(tmp_path, faults=[{"task": "worker-1", "action": "kill", "at_step": 5},
                                       {"task": "chief-0", "action": "hang", "after_s": 1, "restart": 1}])
    controller, group = fakes.running(spec)
    assert [f["action"] for f in group.launches[W1].faults] == ["kill"]
    assert group.launches[CHIEF].faults == () and group.launches[W0].faults == ()
    group.ends = [fakes.died(W1)]
    assert fakes.states(controller, 3) == [JobState.RECOVERING, JobState.STARTING, JobState.RUNNING]
    assert group.launches[W1].faults == () and [f["action"] for f in group.launches[CHIEF].faults] == ["hang"]


def test_a_rerun_after_a_lost_driver_keeps_the_counters(tmp_path):
    spec = fakes.make_spec(tmp_path, failure={"backoff_s": 0})
    first = fakes.controller_for(spec)
    fakes.start_running(first)
    first.group.ends = [fakes.died(W1)]
    assert fakes.states(first, 3) == [JobState.RECOVERING, JobState.STARTING, JobState.RUNNING]
    # The driver dies here: no end is written (job.json says RUNNING) and the kernel drops its lease.
    first.store.lease.release()

    again = fakes.controller_for(spec)
    fakes.start_running(again)
    result = again.outcome()
    assert result.attempt == 2 and result.restarts == 1
    assert isinstance(result.events[-1], DriverLost) and result.events[-1].attempt == 1
    assert [a.state for a in JobRecord(spec.job_dir, spec.name).attempts()] == ["DRIVER_LOST", "RUNNING"]
    again.group.ends = [fakes.died(W0)]
    again.step()
    decision = [e for e in again.outcome().events if isinstance(e, Decision)][-1]
    assert decision.spent["max_task_failures"] == 2  # the lost driver's restart still counts

    again.stop()
    third = fakes.controller_for(spec)  # after an attempt that ended: fresh counters
    fakes.start_running(third)
    assert third.outcome().restarts == 0


def test_a_stop_from_another_thread_ends_the_run_between_steps(tmp_path):
    import threading

    group = fakes.FakeTaskGroup()
    controller = fakes.controller_for(fakes.make_spec(tmp_path), group)
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=controller.run()))
    runner.start()
    fakes.poll_until_true(lambda: controller.state.name is JobState.RUNNING)
    controller.stop("stopped from the test")
    runner.join(10)
    assert not runner.is_alive() and outcome["result"].state is JobState.STOPPED
    assert outcome["result"].message == "stopped from the test" and group.shutdowns == 1
