"""The controller's state machine, stepped with a fake task group standing in for Ray."""

import pytest

from controller.checkpoints import checkpoint_dir, seal
from controller.job import Controller
from controller.plan import TaskKey
from controller.policy import FailureCause
from controller.spec import parse_spec
from controller.state import JobState, TaskStatus, check_transition
from controller.task_group import NodeLostError, SchedulingTimeoutError, TaskEvent, TaskInfo, TaskStartError

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
        self.draining: dict[str, float] = {}
        self.notices: list[TaskKey] = []
        self.capacity = False
        self.provisions: list[tuple[int, float]] = []  # (tasks asked for, timeout)

    def provision(self, tasks, placement, timeout_s):
        self.provisions.append((len(tasks), timeout_s))
        error = self.provision_error(tasks) if callable(self.provision_error) else self.provision_error
        if error:
            raise error
        self.tasks = tasks

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

    def kill_task(self, key):
        self.killed = [*getattr(self, "killed", []), key]

    def draining_nodes(self):
        return self.draining

    def give_notice(self, key):
        self.notices.append(key)

    def has_capacity(self, bundles):
        return self.capacity

    def stop_tasks(self):
        self.stops = getattr(self, "stops", 0) + 1


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
        "timeouts": {"finish_grace_s": 10, "job_s": 100, "heartbeat_s": 1000},
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


# --------------------------------------------------------------- parameter server

PS0, EVAL = TaskKey("ps", 0), TaskKey("evaluator", 0)


def pss_spec(tmp_path, **changes):
    roles = {"chief": {"count": 1}, "worker": {"count": 2}, "ps": {"count": 1}, "evaluator": {"count": 1}}
    return make_spec(tmp_path, strategy="parameter_server", roles=roles, **changes)


class ReplacingGroup(FakeTaskGroup):
    def __init__(self, replace_error=None):
        super().__init__()
        self.replaced, self.stops, self.sidecar_stops, self.replace_error = [], 0, 0, replace_error

    def replace(self, key, timeout_s):
        if self.replace_error:
            raise self.replace_error
        self.replaced.append(key)
        return TaskInfo("10.0.0.1:2221", "node000000000001", "host1", 999)

    def stop_tasks(self):
        self.stops += 1

    def request_sidecar_stop(self):
        self.sidecar_stops += 1


def test_pss_chief_waits_for_servers_and_tasks_get_grpc_fail_fast(tmp_path):
    group = ReplacingGroup()
    controller = Controller(pss_spec(tmp_path), group)
    start_running(controller)
    chief = group.launches[CHIEF]
    assert dict(chief.servers) == {"worker-0": "10.0.0.1:2221", "worker-1": "10.0.0.2:2222", "ps-0": "10.0.0.3:2223"}
    assert group.launches[PS0].runs_server and not chief.runs_server and group.launches[W0].servers == ()
    assert group.env["GRPC_FAIL_FAST"] == "use_caller"
    assert "evaluator" not in chief.tf_config["cluster"]


def test_pss_worker_loss_is_absorbed_by_a_replacement(tmp_path):
    group = ReplacingGroup()
    controller = Controller(pss_spec(tmp_path), group)
    start_running(controller)
    group.events = [TaskEvent(W0, TaskStatus.FAILED, error="killed", cause=FailureCause.PROCESS_DIED)]
    assert controller.step() is JobState.RUNNING
    assert group.replaced == [W0] and controller.restarts == 0 and group.stops == 0
    assert controller.statuses[W0] is TaskStatus.ALIVE and controller.infos[W0].pid == 999
    assert controller.events[-1]["action"] == "replace_task"


def test_pss_worker_whose_node_is_gone_is_left_out(tmp_path):
    group = ReplacingGroup()
    controller = Controller(pss_spec(tmp_path), group)
    start_running(controller)
    group.events = [TaskEvent(W1, TaskStatus.FAILED, error="node died", cause=FailureCause.NODE_LOST)]
    assert controller.step() is JobState.RUNNING
    assert group.replaced == [] and controller.statuses[W1] is TaskStatus.PREEMPTED


def test_a_failed_replacement_goes_on_without_the_task(tmp_path):
    group = ReplacingGroup(replace_error=TaskStartError("the replacement of worker-0 landed on another node"))
    controller = Controller(pss_spec(tmp_path), group)
    start_running(controller)
    group.events = [TaskEvent(W0, TaskStatus.FAILED, error="killed", cause=FailureCause.PROCESS_DIED)]
    assert controller.step() is JobState.RUNNING
    assert controller.statuses[W0] is TaskStatus.FAILED


def test_a_replacement_whose_node_died_meanwhile_counts_as_node_lost(tmp_path):
    group = ReplacingGroup(replace_error=NodeLostError("the node of worker-0 is gone"))
    controller = Controller(pss_spec(tmp_path), group)
    start_running(controller)
    group.events = [TaskEvent(W0, TaskStatus.FAILED, error="killed", cause=FailureCause.PROCESS_DIED)]
    assert controller.step() is JobState.RUNNING
    assert controller.statuses[W0] is TaskStatus.PREEMPTED
    assert controller.events[-1]["cause"] == "node_lost"


def test_pss_ps_loss_restarts_the_cluster_from_the_newest_checkpoint(tmp_path):
    spec = pss_spec(tmp_path)
    group = ReplacingGroup()
    controller = Controller(spec, group, sleep=lambda s: None)
    start_running(controller)
    path = checkpoint_dir(spec.job_dir, 40)
    path.mkdir(parents=True)
    seal(path, 40, epoch=4, metrics={})
    group.reports = [{"kind": "checkpoint", "task": "chief-0", "step": 40, "path": str(path)}]
    group.events = [TaskEvent(PS0, TaskStatus.FAILED, error="killed", cause=FailureCause.PROCESS_DIED),
                    TaskEvent(CHIEF, TaskStatus.FAILED, error="UnavailableError: ps-0", cause=FailureCause.USER_ERROR)]
    assert controller.step() is JobState.RECOVERING
    assert controller.step() is JobState.STARTING and group.stops == 1
    assert controller.step() is JobState.RUNNING
    assert group.launches[CHIEF].restore_step == 40 and controller.restarts == 1
    assert controller.outcome().restarts == 1


def test_restarts_past_the_budget_fail_the_job_and_back_off(tmp_path):
    group = ReplacingGroup()
    waits = []
    spec = pss_spec(tmp_path, failure={"max_task_failures": 3, "backoff_s": 1.5, "max_backoff_s": 2})
    controller = Controller(spec, group, sleep=waits.append)
    start_running(controller)
    for expected in (JobState.RECOVERING, JobState.RECOVERING, JobState.RECOVERING, JobState.FAILED):
        group.events = [TaskEvent(PS0, TaskStatus.FAILED, error="killed", cause=FailureCause.PROCESS_DIED)]
        assert controller.step() is expected
        if expected is JobState.RECOVERING:
            assert [controller.step(), controller.step()] == [JobState.STARTING, JobState.RUNNING]
    assert waits == [1.5, 2]  # the first restart at once, then doubling, capped by max_backoff_s
    assert "budget is spent (max_task_failures 3/3)" in controller.message
    assert "ps-0" in controller.message and group.shutdowns == 1 and controller.restarts == 3


def test_a_preemption_does_not_spend_the_task_failure_budget(tmp_path):
    group = ReplacingGroup()
    controller = Controller(pss_spec(tmp_path, failure={"max_task_failures": 0, "backoff_s": 0}), group)
    start_running(controller)
    group.events = [TaskEvent(PS0, TaskStatus.FAILED, error="node gone", cause=FailureCause.NODE_LOST)]
    assert controller.step() is JobState.RECOVERING
    assert controller.spent == {"max_preemptions": 1, "max_task_failures": 0, "max_infrastructure_failures": 0}


def test_pss_succeeds_when_the_chief_finishes_and_the_evaluator_is_stopped(tmp_path):
    clock = FakeClock()
    group = ReplacingGroup()
    controller = Controller(pss_spec(tmp_path), group, clock=clock)
    start_running(controller)
    group.events = [TaskEvent(CHIEF, TaskStatus.FINISHED, result={"step": 300})]
    assert controller.step() is JobState.RUNNING  # ps and workers never end by themselves
    assert group.sidecar_stops == 1
    group.events = [TaskEvent(EVAL, TaskStatus.FINISHED, result={"evaluated": 3})]
    assert controller.step() is JobState.SUCCEEDED
    assert controller.result == {"step": 300} and group.shutdowns == 1


def test_an_evaluator_that_never_stops_is_torn_down_after_grace(tmp_path):
    clock = FakeClock()
    group = ReplacingGroup()
    controller = Controller(pss_spec(tmp_path), group, clock=clock)
    start_running(controller)
    group.events = [TaskEvent(CHIEF, TaskStatus.FINISHED)]
    controller.step()
    clock.now += 11
    assert controller.step() is JobState.SUCCEEDED and "evaluator-0 torn down" in controller.message


def test_a_peer_error_beside_a_lost_process_is_a_symptom_not_a_bug(tmp_path):
    group = ReplacingGroup()
    controller = Controller(make_spec(tmp_path), group, sleep=lambda s: None)
    start_running(controller)
    group.events = [TaskEvent(CHIEF, TaskStatus.FAILED, error="CollectiveOpsAborted", cause=FailureCause.USER_ERROR),
                    TaskEvent(W1, TaskStatus.FAILED, error="SIGKILL", cause=FailureCause.PROCESS_DIED)]
    assert controller.step() is JobState.RECOVERING
    assert [e["task"] for e in controller.events if "action" in e] == ["worker-1"]


def test_a_task_without_heartbeats_is_killed_and_handled_as_hung(tmp_path):
    clock = FakeClock()
    group = ReplacingGroup()
    controller = Controller(make_spec(tmp_path, timeouts={"heartbeat_s": 5}), group, clock=clock,
                            sleep=lambda s: None)
    start_running(controller)
    clock.now += 4
    group.reports = [{"kind": "heartbeat", "task": t, "pid": 1} for t in ("chief-0", "worker-0", "worker-1")]
    assert controller.step() is JobState.RUNNING
    clock.now += 4  # 8 s since the start, 4 s since the last beat: fine
    group.reports = [{"kind": "heartbeat", "task": t, "pid": 1} for t in ("chief-0", "worker-0")]
    assert controller.step() is JobState.RUNNING
    clock.now += 2  # worker-1 silent for 6 s
    assert controller.step() is JobState.RECOVERING
    assert group.killed == [W1]
    event = controller.events[-1]
    assert (event["task"], event["cause"], event["action"]) == ("worker-1", "hung", "restart_cluster")
    assert "no heartbeat for 6s" in event["error"]


def test_faults_reach_only_their_task_and_run(tmp_path):
    spec = make_spec(tmp_path, faults=[{"task": "worker-1", "action": "kill", "at_step": 5},
                                       {"task": "chief-0", "action": "hang", "after_s": 1, "restart": 1}])
    group = ReplacingGroup()
    controller = Controller(spec, group, sleep=lambda s: None)
    start_running(controller)
    assert [f["action"] for f in group.launches[W1].faults] == ["kill"]
    assert group.launches[CHIEF].faults == () and group.launches[W0].faults == ()
    group.events = [TaskEvent(W1, TaskStatus.FAILED, error="SIGKILL", cause=FailureCause.PROCESS_DIED)]
    controller.step()
    controller.step()
    controller.step()
    assert group.launches[W1].faults == () and [f["action"] for f in group.launches[CHIEF].faults] == ["hang"]


def test_a_rerun_after_a_lost_driver_keeps_the_counters(tmp_path):
    spec = make_spec(tmp_path, failure={"backoff_s": 0})
    first = Controller(spec, ReplacingGroup())
    start_running(first)
    first.group.events = [TaskEvent(W1, TaskStatus.FAILED, error="SIGKILL", cause=FailureCause.PROCESS_DIED)]
    first.step()
    first.step()
    first.step()
    assert first.state is JobState.RUNNING and first.restarts == 1
    # The driver dies here: no end is written; job.json says RUNNING.

    again = Controller(spec, ReplacingGroup())
    start_running(again)
    assert again.attempt == 2 and again.restarts == 1 and again.spent["max_task_failures"] == 1
    assert again.events[-1]["event"] == "driver_lost"
    import json
    record = json.loads((spec.job_dir / "job.json").read_text())
    assert record["attempts"][0]["state"] == "DRIVER_LOST"

    third = Controller(spec, ReplacingGroup())  # after an attempt that ended (here: still running)
    again.stop()
    start_running(third)
    assert third.restarts == 0 and third.spent["max_task_failures"] == 0


def checkpoint_report(spec, step):
    path = checkpoint_dir(spec.job_dir, step)
    path.mkdir(parents=True)
    seal(path, step, 1, {})
    return {"kind": "checkpoint", "task": "chief-0", "step": step, "path": str(path)}


def test_elastic_job_shrinks_when_capacity_is_short_and_grows_back_at_a_checkpoint(tmp_path):
    spec = make_spec(tmp_path, elastic={"min_workers": 1, "capacity_wait_s": 42}, failure={"backoff_s": 0})
    fits = {"tasks": 3}
    group = FakeTaskGroup(provision_error=lambda tasks: SchedulingTimeoutError("no room")
                          if len(tasks) > fits["tasks"] else None)
    controller = Controller(spec, group, clock=FakeClock(), sleep=lambda s: None)
    start_running(controller)
    group.reports = [checkpoint_report(spec, 10)]
    controller.step()
    fits["tasks"] = 2  # the node of worker-1 is gone and nothing replaces it
    group.events = [TaskEvent(W1, TaskStatus.FAILED, error="node died", cause=FailureCause.NODE_LOST)]
    assert controller.step() is JobState.RECOVERING
    assert controller.step() is JobState.PROVISIONING  # capacity was lost: ask for it again
    assert controller.step() is JobState.STARTING
    assert group.provisions[-2:] == [(3, 42), (2, 5.0)]  # full size for capacity_wait_s, then smaller
    assert controller.workers == 1 and [str(t.key) for t in controller.tasks] == ["chief-0", "worker-0"]
    assert controller.step() is JobState.RUNNING
    assert group.launches[CHIEF].tf_config["cluster"]["worker"] == ["10.0.0.1:2221"]
    assert group.launches[CHIEF].restore_step == 10 and group.launches[CHIEF].num_workers == 2
    assert controller.spent["max_preemptions"] == 1

    group.capacity = True  # capacity is back; the job grows at its next checkpoint, not before
    assert controller.step() is JobState.RUNNING
    fits["tasks"] = 3
    group.reports = [checkpoint_report(spec, 20)]
    assert controller.step() is JobState.RECOVERING
    assert controller.step() is JobState.PROVISIONING
    assert controller.step() is JobState.STARTING and controller.workers == 2
    assert controller.step() is JobState.RUNNING
    assert group.launches[W1].restore_step == 20 and controller.restarts == 2
    assert controller.spent == {"max_preemptions": 1, "max_task_failures": 0, "max_infrastructure_failures": 0}
    assert [e["workers"] for e in controller.events if e.get("event") in ("resize", "grow")] == [1, 2, 2]


def test_elastic_job_fails_with_the_minimum_in_the_message_when_not_even_it_fits(tmp_path):
    spec = make_spec(tmp_path, elastic={"min_workers": 2})
    group = FakeTaskGroup(provision_error=SchedulingTimeoutError("asked for CPU=3"))
    result = Controller(spec, group).run()
    assert result.state is JobState.FAILED
    assert "CPU=3" in result.message and "elastic.min_workers=2" in result.message


@pytest.mark.parametrize("elastic, error", [
    ({"min_workers": 3}, "more than roles.worker.count"),
    ({"min_workers": 1, "max_workers": 4}, "must equal|match it"),
])
def test_elastic_spec_errors_say_what_to_change(tmp_path, elastic, error):
    from controller.spec import SpecError

    with pytest.raises(SpecError, match=error):
        make_spec(tmp_path, elastic=elastic)


def test_a_drained_node_is_a_preemption_notice_for_its_training_tasks(tmp_path):
    group = FakeTaskGroup()
    controller = Controller(make_spec(tmp_path, failure={"backoff_s": 0}), group, clock=FakeClock(),
                            sleep=lambda s: None)
    start_running(controller)
    group.draining = {"node000000000002": 0}  # the node of worker-1 (see FakeTaskGroup.start)
    controller.step()
    controller.step()
    assert group.notices == [W1]  # once, however often the drain is seen
    assert [e["task"] for e in controller.events if e.get("event") == "drain_notice"] == ["worker-1"]
    group.events = [TaskEvent(W1, TaskStatus.FAILED, error="saved at step 30", cause=FailureCause.PREEMPTED)]
    assert controller.step() is JobState.RECOVERING
    assert controller.step() is JobState.PROVISIONING  # not onto the drained node's old bundle
    assert controller.spent["max_preemptions"] == 1
