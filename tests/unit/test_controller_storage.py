"""The controller and the job's storage: corrupt checkpoints set aside and fallen back from, one driver per
job, torn records, and the faults summary. Stepped with the fake task group; the files are real."""

import os

from controller.machine.record import JobRecord
from controller.states.events import CheckpointFallback, CheckpointQuarantined, Decision, PreemptionNotice, TaskReported
from controller.states.result import JobResult
from controller.states.state import JobState, Recovering, RecoveryReason
from controller.status.summary import fault_lines
from controller.status.view import group_failures
from controller.store.lease import JobRunningError
from protocol.layout import checkpoint_dir
from protocol.seal import seal
from protocol.wire import CheckpointReport, FailureCause, FolderReport, HeartbeatReport, TaskKey
from tests.unit import fakes
from tests.unit.fakes import CHIEF, W0, W1


def cut_short(spec, step):
    path = checkpoint_dir(spec.job_dir, step)
    data = path / "ckpt.data-00000-of-00001"
    data.write_bytes(b"x" * 100)
    return data


def with_checkpoints(tmp_path, *steps, **changes):
    """A job that ran once and wrote these checkpoints (each with a data file, sealed)."""
    spec = fakes.make_spec(tmp_path, failure={"backoff_s": 0, **changes.pop("failure", {})}, **changes)
    controller, group = fakes.running(spec)
    for step in steps:
        folder = checkpoint_dir(spec.job_dir, step)
        folder.mkdir(parents=True)
        (folder / "ckpt.data-00000-of-00001").write_bytes(b"w" * 1000)
        seal(folder, step, step // 10, {})
        group.reports.append(CheckpointReport(CHIEF, step, str(folder)))
    controller.stop()
    return spec


def quarantined(result: JobResult) -> list[int]:
    return [e.step for e in result.events if isinstance(e, CheckpointQuarantined)]


def fell_back(result: JobResult) -> list[tuple[int, list[int]]]:
    """Each checkpoint restored instead of others, and theirs steps."""
    return [(e.step, e.instead_of) for e in result.events if isinstance(e, CheckpointFallback)]


def test_a_corrupt_newest_checkpoint_is_set_aside_and_the_one_before_restored(tmp_path):
    spec = with_checkpoints(tmp_path, 10, 20, 30)
    cut_short(spec, 30)
    controller, group = fakes.running(spec)
    assert group.launches[W0].restore.step == 20
    result = controller.outcome()
    aside = next(e for e in result.events if isinstance(e, CheckpointQuarantined))
    assert quarantined(result) == [30] and "bytes" in aside.reason
    assert not checkpoint_dir(spec.job_dir, 30).exists() and (spec.job_dir / "quarantine").is_dir()
    assert fell_back(result) == [(20, [30])]  # which one the job carries on from is said, not only what went
    said = [line.split(" ", 1)[1] for line in group_failures(result.events)]
    assert said == [f"checkpoint of step 30 set aside as {aside.to}: {aside.reason}",
                    f"restored the checkpoint of step 20 instead of step 30: {checkpoint_dir(spec.job_dir, 20)}"]


def test_two_corrupt_in_a_row_fall_back_twice(tmp_path):
    spec = with_checkpoints(tmp_path, 10, 20, 30)
    cut_short(spec, 30)
    data = checkpoint_dir(spec.job_dir, 20) / "ckpt.data-00000-of-00001"
    data.write_bytes(b"W" + data.read_bytes()[1:])  # same size, altered
    controller, group = fakes.running(spec)
    result = controller.outcome()
    assert group.launches[CHIEF].restore.step == 10 and quarantined(result) == [30, 20]
    assert fell_back(result) == [(10, [30, 20])]


def test_corrupt_checkpoints_past_their_budget_fail_the_job(tmp_path):
    spec = with_checkpoints(tmp_path, 10, 20, failure={"max_corrupt_checkpoints": 1})
    cut_short(spec, 10)
    cut_short(spec, 20)
    result = fakes.controller_for(spec).run()
    assert result.state is JobState.FAILED and "max_corrupt_checkpoints 1/1" in result.message
    assert quarantined(result) == [20]


def test_when_every_checkpoint_is_corrupt_the_job_fails_saying_how_to_start_over(tmp_path):
    spec = with_checkpoints(tmp_path, 10)
    cut_short(spec, 10)
    result = fakes.controller_for(spec).run()
    assert result.state is JobState.FAILED and "no complete checkpoint of job job is left" in result.message
    assert "to start over" in result.message


def test_a_restore_that_fails_in_the_tasks_sets_the_checkpoint_aside_and_restarts(tmp_path):
    spec = with_checkpoints(tmp_path, 10, 20)
    controller, group = fakes.running(spec)
    assert group.launches[W1].restore.step == 20
    error = "CheckpointUnreadable: ckpt-000000020: IndexError: Read less bytes than requested"
    group.ends = [fakes.died(key, FailureCause.CHECKPOINT_UNREADABLE, error) for key in (CHIEF, W0, W1)]
    state = controller.step()
    assert state == Recovering(RecoveryReason.FAILURE, 0.0, quarantine=str(checkpoint_dir(spec.job_dir, 20)))
    assert fakes.states(controller, 2) == [JobState.STARTING, JobState.RUNNING]
    assert group.launches[W1].restore.step == 10
    result = controller.outcome()
    assert quarantined(result) == [20] and fell_back(result) == [(10, [20])]
    decided = [e for e in result.events if isinstance(e, Decision)]
    assert {d.cause for d in decided} == {"checkpoint_unreadable"} and decided[-1].budget == "max_corrupt_checkpoints"
    assert decided[-1].spent["max_corrupt_checkpoints"] == 1 and decided[-1].spent["max_task_failures"] == 0


def test_a_second_driver_of_a_running_job_is_refused_and_writes_nothing(tmp_path):
    spec = fakes.make_spec(tmp_path)
    first, _ = fakes.running(spec)
    before = JobRecord(spec.job_dir, spec.name).path.read_bytes()
    second = fakes.controller_for(spec)
    assert second.step().name is JobState.FAILED
    assert f"job job is running (driver pid {os.getpid()}" in second.message
    assert JobRecord(spec.job_dir, spec.name).path.read_bytes() == before  # the first one's record, untouched
    first.stop()
    assert JobRecord(spec.job_dir, spec.name).attempts()[-1].state == "STOPPED"


def test_a_second_driver_on_the_same_cluster_is_refused_by_the_cluster_lease(tmp_path):
    group = fakes.FakeTaskGroup(claim_error=JobRunningError("job job is running (driver pid 7 on head)"))
    result = fakes.controller_for(fakes.make_spec(tmp_path), group).run()
    assert result.state is JobState.FAILED and "driver pid 7 on head" in result.message
    assert group.launches == {} and result.attempt == 0


def test_a_torn_record_is_set_aside_and_the_job_carries_on_from_its_checkpoints(tmp_path):
    spec = with_checkpoints(tmp_path, 10)
    record = JobRecord(spec.job_dir, spec.name)
    record.path.write_text(record.path.read_text()[:40])
    controller, group = fakes.running(spec)
    assert group.launches[W0].restore.step == 10 and controller.outcome().attempt == 1
    assert len(list(spec.job_dir.glob("job.json.torn-*"))) == 1


def test_a_pss_servers_notice_goes_to_the_coordinator_once(tmp_path):
    """Once a run of the cluster: the Running state's payload says it was told (no flag on the side); the
    coordinator saves and stops, and the restart, from a fresh Running, tells the new coordinator of a new
    notice, not of the old run's (seen in CI: an old heartbeat's notice stopped the new coordinator)."""
    clock, wall = fakes.FakeClock(), fakes.FakeClock()
    controller, group = fakes.running(fakes.pss_spec(tmp_path, failure={"backoff_s": 0}), clock=clock,
                                      wall_clock=wall)
    group.reports = [HeartbeatReport(TaskKey("ps", 0), pid=1, notice=wall.now)]
    assert controller.step().coordinator_told_at == clock.now
    group.draining = {"node000000000001": 0}  # worker-0's node is drained too
    assert isinstance(controller.step(), Recovering)  # the chief saved on its notice and stopped
    assert group.notices == [CHIEF]
    via = [(e.task, e.via) for e in controller.outcome().events if isinstance(e, PreemptionNotice)]
    assert via == [("ps-0", None), ("chief-0", "ps-0")]
    group.draining = {}  # the drain took capacity: asked for again
    assert fakes.states(controller, 3) == [JobState.PROVISIONING, JobState.STARTING, JobState.RUNNING]
    assert controller.state.coordinator_told_at is None
    # The old ps's last heartbeat, still in the inbox after the restart: its notice was the last run's.
    group.reports = [HeartbeatReport(TaskKey("ps", 0), pid=1, notice=wall.now - 5)]
    controller.step()
    assert group.notices == [CHIEF] and controller.state.coordinator_told_at is None
    wall.now += 30  # a new notice to the new ps
    group.reports = [HeartbeatReport(TaskKey("ps", 0), pid=2, notice=wall.now)]
    controller.step()
    assert group.notices == [CHIEF, CHIEF]


def test_the_summary_accounts_for_every_planned_fault(tmp_path):
    spec = fakes.make_spec(tmp_path, faults=[{"task": "worker-1", "action": "kill", "at_step": 5},
                                             {"task": "worker-0", "action": "hang", "after_s": 9, "restart": 1}])
    fired = TaskReported(task="worker-1", what="fault_fired", details={"fault": spec.faults[0].model_dump(mode="json")})
    lines = fault_lines(spec.faults, [fired])
    assert lines == ["fault kill worker-1 at step 5 (run 0 of the cluster): fired",
                     "fault hang worker-0 at 9s after start (run 1 of the cluster): never fired (its moment did "
                     "not come)"]


def test_the_restored_checkpoint_is_pruned_once_the_tasks_save_past_it(tmp_path):
    """Kept from pruning while a restart restores it; an ordinary old checkpoint once the tasks save past it."""
    spec = with_checkpoints(tmp_path, 10, 20, checkpoint={"keep": 2})
    controller, group = fakes.running(spec)
    assert group.launches[CHIEF].restore.step == 20
    assert controller.store.manifest.protected == {20}
    for step in (30, 40):
        group.reports.append(fakes.checkpoint_report(spec, step))
        controller.step()
    assert [r.step for r in controller.store.manifest.records] == [30, 40]
    assert not checkpoint_dir(spec.job_dir, 20).exists()


def test_a_checkpoint_on_a_tasks_node_is_brought_to_the_head_then_registered(tmp_path):
    """Storage not shared: the chief's checkpoint stays on its node until the group streamed it here (the
    node's copy removed); one that cannot be brought is not registered and the job goes on."""
    spec = fakes.make_spec(tmp_path)
    controller, group = fakes.running(spec)
    node = tmp_path / "node" / "ckpt-000000010"
    node.mkdir(parents=True)
    (node / "ckpt.data-00000-of-00001").write_bytes(b"w" * 1000)
    seal(node, 10, 1, {})
    group.reports.append(CheckpointReport(CHIEF, 10, str(node), node_copy=True))
    group.reports.append(CheckpointReport(CHIEF, 20, str(tmp_path / "node" / "gone"), node_copy=True))  # nothing there
    controller.step()
    assert group.fetched == [(CHIEF, str(node)), (CHIEF, str(tmp_path / "node" / "gone"))]
    assert controller.store.latest().step == 10 and not node.exists()
    assert controller.store.latest().path == str(checkpoint_dir(spec.job_dir, 10))
    assert controller.state.name is JobState.RUNNING


def test_a_folder_a_task_could_not_bring_leaves_the_job_running(tmp_path, caplog):
    from controller.states.task_group import FolderFetchError

    spec = fakes.make_spec(tmp_path)
    controller, group = fakes.running(spec, fakes.FakeTaskGroup(gather_error=FolderFetchError("the stream broke")))
    group.reports.append(FolderReport(CHIEF, "model", "/nowhere"))
    group.reports.append(CheckpointReport(CHIEF, 10, "/x", node_copy=True))
    fakes.states(controller, 2)  # one gather at a time from a task: the checkpoint's starts once the model's failed
    assert controller.state.name is JobState.RUNNING and controller.store.latest() is None
    assert len(controller.store.gathers) == 0
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == ["model on chief-0's node was not gathered: the stream broke",
                    "the checkpoint of step 10 on chief-0's node was not gathered: the stream broke; the job goes on "
                    "from its newest checkpoint, none yet"]
