"""The controller's state machine, stepped with a fake task group standing in for Ray."""

import pytest

from controller.checkpoints import checkpoint_dir, seal
from controller.job import Controller
from controller.plan import TaskKey
from controller.spec import parse_spec
from controller.state import JobState, TaskStatus, check_transition
from controller.task_group import SchedulingTimeoutError, TaskEvent, TaskInfo, TaskStartError

CHIEF, W0, W1 = TaskKey("chief", 0), TaskKey("worker", 0), TaskKey("worker", 1)


class FakeTaskGroup:
    """Does what it is told: tests script its events and reports."""

    def __init__(self, provision_error=None, start_error=None):
        self.provision_error = provision_error
        self.start_error = start_error
        self.events: list[TaskEvent] = []
        self.reports: list[dict] = []
        self.launches = None
        self.shutdowns = 0
        self.poll_error = None

    def provision(self, tasks, placement, timeout_s):
        self.tasks = tasks
        if self.provision_error:
            raise self.provision_error

    def start(self, env, timeout_s):
        self.env = env
        if self.start_error:
            raise self.start_error
        return {t.key: TaskInfo(f"10.0.0.{i}:{2220 + i}", f"node{i:0>12}", f"host{i}", 100 + i)
                for i, t in enumerate(self.tasks)}

    def launch(self, launches):
        self.launches = launches

    def poll(self, timeout_s):
        if self.poll_error:
            raise self.poll_error
        events, self.events = self.events, []
        return events

    def drain_reports(self):
        reports, self.reports = self.reports, []
        return reports

    def shutdown(self):
        self.shutdowns += 1


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_spec(tmp_path, **changes):
    data = {
        "name": "job",
        "strategy": "multi_worker_mirrored",
        "roles": {"chief": {"count": 1}, "worker": {"count": 2}},
        "entrypoint": {"function": "m:f", "args": {"epochs": 2}},
        "storage_path": str(tmp_path),
        "timeouts": {"finish_grace_s": 10, "job_s": 100},
        **changes,
    }
    return parse_spec(data)


def start_running(controller):
    states = [controller.step() for _ in range(3)]
    assert states == [JobState.PROVISIONING, JobState.STARTING, JobState.RUNNING]


def test_happy_path_one_transition_per_step(tmp_path):
    group = FakeTaskGroup()
    controller = Controller(make_spec(tmp_path), group)
    assert controller.state is JobState.PENDING
    start_running(controller)
    assert set(controller.statuses.values()) == {TaskStatus.ALIVE}
    assert controller.step() is JobState.RUNNING  # nothing happened yet
    group.events = [TaskEvent(W0, TaskStatus.FINISHED), TaskEvent(CHIEF, TaskStatus.FINISHED, result={"acc": 0.9})]
    assert controller.step() is JobState.RUNNING  # worker-1 still running
    group.events = [TaskEvent(W1, TaskStatus.FINISHED)]
    assert controller.step() is JobState.SUCCEEDED
    result = controller.outcome()
    assert result.result == {"acc": 0.9} and result.attempt == 1
    assert group.shutdowns == 1  # released at the end, once
    controller.stop()
    assert group.shutdowns == 1 and controller.state is JobState.SUCCEEDED  # stop after the end is a no-op


def test_every_task_gets_its_tf_config_with_reported_addresses(tmp_path):
    group = FakeTaskGroup()
    controller = Controller(make_spec(tmp_path), group)
    start_running(controller)
    cluster = {"chief": ["10.0.0.0:2220"], "worker": ["10.0.0.1:2221", "10.0.0.2:2222"]}
    launch = group.launches[W1]
    assert launch.tf_config == {"cluster": cluster, "task": {"type": "worker", "index": 1}}
    assert launch.args == {"epochs": 2} and not launch.is_chief and group.launches[CHIEF].is_chief
    assert group.env["TF_USE_LEGACY_KERAS"] == "1" and group.env["TF_GRPC_REUSE_PORT"] == "true"
    assert launch.restore_from is None


def test_scheduling_timeout_fails_the_job_and_releases(tmp_path):
    group = FakeTaskGroup(provision_error=SchedulingTimeoutError("asked for CPU=300; the cluster has CPU=2"))
    result = Controller(make_spec(tmp_path), group).run()
    assert result.state is JobState.FAILED and "CPU=300" in result.message
    assert group.launches is None and group.shutdowns == 1


def test_start_timeout_fails_the_job(tmp_path):
    group = FakeTaskGroup(start_error=TaskStartError("tasks worker-1 did not start within 5s"))
    result = Controller(make_spec(tmp_path), group).run()
    assert result.state is JobState.FAILED and "worker-1 did not start" in result.message


def test_task_failure_names_role_index_node_and_error(tmp_path):
    group = FakeTaskGroup()
    controller = Controller(make_spec(tmp_path), group)
    start_running(controller)
    group.events = [TaskEvent(W1, TaskStatus.FAILED, error="ValueError: bad batch")]
    assert controller.step() is JobState.FAILED
    message = controller.outcome().message
    assert "worker-1 on node node00000000" in message and "host2" in message and "ValueError: bad batch" in message
    assert group.shutdowns == 1


def test_ctrl_c_stops_cleanly(tmp_path):
    group = FakeTaskGroup()
    controller = Controller(make_spec(tmp_path), group)
    start_running(controller)
    group.poll_error = KeyboardInterrupt()
    result = controller.run()
    assert result.state is JobState.STOPPED and "Ctrl-C" in result.message
    assert group.shutdowns == 1


def test_checkpoint_reports_are_registered_only_when_complete(tmp_path):
    spec = make_spec(tmp_path)
    group = FakeTaskGroup()
    controller = Controller(spec, group)
    start_running(controller)
    done, half = checkpoint_dir(spec.job_dir, 10), checkpoint_dir(spec.job_dir, 20)
    done.mkdir(parents=True)
    half.mkdir(parents=True)
    seal(done, 10, epoch=1, metrics={})
    group.reports = [
        {"kind": "metrics", "task": "chief-0", "role": "chief", "index": 0, "step": 10, "values": {"loss": 1.0}},
        {"kind": "checkpoint", "task": "chief-0", "step": 10, "path": str(done)},
        {"kind": "checkpoint", "task": "chief-0", "step": 20, "path": str(half)},
    ]
    controller.step()
    assert [r.step for r in controller.manifest.records] == [10]


def test_a_rerun_resumes_from_the_newest_complete_checkpoint(tmp_path):
    spec = make_spec(tmp_path)
    first = FakeTaskGroup()
    controller = Controller(spec, first)
    start_running(controller)
    path = checkpoint_dir(spec.job_dir, 30)
    path.mkdir(parents=True)
    seal(path, 30, epoch=3, metrics={})
    first.reports = [{"kind": "checkpoint", "task": "chief-0", "step": 30, "path": str(path)}]
    controller.stop()
    assert controller.state is JobState.STOPPED

    second = FakeTaskGroup()
    again = Controller(spec, second)
    start_running(again)
    launch = second.launches[W0]
    assert (launch.restore_from, launch.restore_step, launch.restore_epoch) == (str(path), 30, 3)
    assert launch.attempt == 2


def test_chief_done_but_a_worker_never_ends_is_torn_down_after_grace(tmp_path):
    clock = FakeClock()
    group = FakeTaskGroup()
    controller = Controller(make_spec(tmp_path), group, clock=clock)
    start_running(controller)
    group.events = [TaskEvent(CHIEF, TaskStatus.FINISHED), TaskEvent(W0, TaskStatus.FINISHED)]
    controller.step()
    clock.now += 5
    assert controller.step() is JobState.RUNNING
    clock.now += 6
    assert controller.step() is JobState.SUCCEEDED
    assert "worker-1" in controller.message and group.shutdowns == 1


def test_job_timeout(tmp_path):
    clock = FakeClock()
    controller = Controller(make_spec(tmp_path), FakeTaskGroup(), clock=clock)
    start_running(controller)
    clock.now += 101
    assert controller.step() is JobState.FAILED
    assert "timeouts.job_s=100s" in controller.message


def test_illegal_transitions_are_refused():
    with pytest.raises(RuntimeError, match="SUCCEEDED -> RUNNING"):
        check_transition(JobState.SUCCEEDED, JobState.RUNNING)
    with pytest.raises(RuntimeError):
        check_transition(JobState.PENDING, JobState.RUNNING)
    assert all(s.is_terminal for s in (JobState.SUCCEEDED, JobState.FAILED, JobState.STOPPED))
