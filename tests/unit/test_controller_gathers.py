"""Checkpoints and folders gathered from tasks' nodes while the controller steps on: each gather runs on its
own with its own deadline, a restart and the job's end wait for them (bounded), and one that runs out of time
is given up, the job keeping its newest checkpoint. Stepped with the fake task group on a fake clock; the
files are real."""

from controller import settings
from controller.machine.observer import Observation
from controller.states.state import JobState, Recovering
from protocol.layout import checkpoint_dir
from protocol.seal import seal
from protocol.wire import CheckpointReport, FolderReport, TaskEnd, TaskKey
from tests.unit import fakes
from tests.unit.fakes import CHIEF, W0, W1

DEADLINE_S = settings.GATHER_TIMEOUT_S + settings.GATHER_SLACK_S  # the driver's, from a gather's start


def on_node(tmp_path, step: int, key: TaskKey = CHIEF) -> CheckpointReport:
    """A sealed checkpoint of ``step`` in a task's folder on its node (not the job folder), and its report."""
    folder = tmp_path / "node" / str(key) / f"ckpt-{step}"
    folder.mkdir(parents=True)
    (folder / "ckpt.data-00000-of-00001").write_bytes(b"w" * 100)
    seal(folder, step, step // 10, {})
    return CheckpointReport(key, step, str(folder), node_copy=True)


def gathering(tmp_path, gather_s: float | None, **changes):
    """A running job whose tasks' gathers take ``gather_s`` on a fake clock (None: they hang)."""
    clock = fakes.FakeClock()
    group = fakes.FakeTaskGroup(gather_s=gather_s, clock=clock)
    timeouts = {"finish_grace_s": 10, "job_s": 10_000, "heartbeat_s": 1000, **changes.pop("timeouts", {})}
    spec = fakes.make_spec(tmp_path, failure={"backoff_s": 0}, timeouts=timeouts, **changes)
    controller, _ = fakes.running(spec, group, clock=clock)
    return controller, group, clock


def never_waited(group) -> bool:
    return all(wait_s == 0 for _, wait_s in group.gather_looks)


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_a_gather_that_completes_registers_its_checkpoint_at_the_step_it_comes_in(tmp_path):
    controller, group, clock = gathering(tmp_path, gather_s=30)
    report = on_node(tmp_path, 10)
    group.reports.append(report)
    assert controller.watch.take(controller.watch.observer.collect()) is False  # started, not in yet
    assert controller.store.latest() is None and len(controller.store.gathers) == 1
    clock.now += 29
    assert controller.step().name is JobState.RUNNING and controller.store.latest() is None
    clock.now += 1
    assert controller.watch.take(Observation()) is True  # what the scaling policy reads: a checkpoint came
    latest = controller.store.latest()
    assert latest.step == 10 and latest.path == str(checkpoint_dir(controller.spec.job_dir, 10))
    assert not (tmp_path / "node" / "chief-0" / "ckpt-10").exists()  # the node's copy goes once read
    assert never_waited(group)


def test_one_gather_at_a_time_per_task_so_its_checkpoints_come_in_the_order_saved(tmp_path):
    controller, group, clock = gathering(tmp_path, gather_s=5)
    group.reports += [on_node(tmp_path, 10), on_node(tmp_path, 20)]
    controller.step()
    assert [path.rsplit("/", 1)[1] for _, path in group.fetched] == ["ckpt-10"]
    clock.now += 5
    controller.step()
    assert controller.store.latest().step == 10 and len(group.fetched) == 2
    clock.now += 5
    controller.step()
    assert [r.step for r in controller.store.manifest.records] == [10, 20]


def test_an_older_checkpoint_that_comes_in_after_a_newer_one_does_not_become_the_newest(tmp_path):
    controller, group, clock = gathering(tmp_path, gather_s=None, checkpoint={"keep": 1})
    group.reports += [on_node(tmp_path, 100, W0), on_node(tmp_path, 200)]  # two tasks: two gathers at once
    controller.step()
    group.gathers[1].over_at = clock.now  # step 200's first
    controller.step()
    group.gathers[0].over_at = clock.now
    assert controller.watch.take(Observation()) is False  # no newer checkpoint came
    assert [r.step for r in controller.store.manifest.records] == [200]
    assert not checkpoint_dir(controller.spec.job_dir, 100).exists()  # older than the one kept


def test_while_a_gather_hangs_the_controller_still_finds_a_silent_task_and_restarts(tmp_path):
    """A gather from a host that went silent: the steps go on at their pace, the heartbeats are watched, and a
    task that fell silent is acted on while the gather is still in flight."""
    controller, group, clock = gathering(tmp_path, gather_s=None, timeouts={"heartbeat_s": 5})
    group.reports = [on_node(tmp_path, 10), *fakes.heartbeats("chief-0", "worker-0", "worker-1")]
    assert controller.step().name is JobState.RUNNING
    clock.now += 4
    group.reports = fakes.heartbeats("chief-0", "worker-0")
    assert controller.step().name is JobState.RUNNING
    clock.now += 2  # worker-1 silent for 6 s
    assert isinstance(controller.step(), Recovering)
    assert len(controller.store.gathers) == 1 and never_waited(group) and clock.now == 1006  # nothing waited


def test_while_a_gather_hangs_a_task_that_dies_is_acted_on_at_once(tmp_path):
    controller, group, clock = gathering(tmp_path, gather_s=None)
    group.reports.append(on_node(tmp_path, 10))
    for _ in range(3):
        assert controller.step().name is JobState.RUNNING
    group.ends = [fakes.died(W1)]
    assert isinstance(controller.step(), Recovering)
    assert len(controller.store.gathers) == 1 and never_waited(group) and clock.now == 1000


def test_a_gather_past_its_deadline_is_given_up_and_the_job_keeps_its_newest_checkpoint(tmp_path, caplog):
    controller, group, clock = gathering(tmp_path, gather_s=0)
    group.reports.append(on_node(tmp_path, 10))
    controller.step()
    assert controller.store.latest().step == 10
    group.gather_s = None  # the chief's host goes silent
    group.reports += [on_node(tmp_path, 20), on_node(tmp_path, 30)]  # 30 waits behind 20
    controller.step()
    clock.now += DEADLINE_S - 1
    controller.step()
    assert len(controller.store.gathers) == 2 and not warnings(caplog)
    clock.now += 1
    controller.step()
    assert len(controller.store.gathers) == 0 and controller.store.latest().step == 10
    assert warnings(caplog) == [
        f"the checkpoint of step 20 on chief-0's node was not gathered: no answer within its deadline of "
        f"{DEADLINE_S:g}s (TFRAY_GATHER_TIMEOUT_S plus TFRAY_GATHER_SLACK_S): the task's host may be gone or "
        "silent; raise TFRAY_GATHER_TIMEOUT_S if its storage is only slow; the job goes on from its newest "
        "checkpoint, step 10",
        "the checkpoint of step 30 on chief-0's node was not gathered: not started: the checkpoint of step 20, "
        "queued before it, got no answer from chief-0's node; the job goes on from its newest checkpoint, step 10"]
    # The host answers late: nothing looks at that gather any more, and nothing is registered.
    late = len(group.gathers) - 1
    group.gathers[late].over_at = clock.now
    looks = len(group.gather_looks)
    fakes.states(controller, 2)
    assert all(late not in handles for handles, _ in group.gather_looks[looks:])
    assert controller.store.latest().step == 10 and not checkpoint_dir(controller.spec.job_dir, 20).exists()
    group.ends = [fakes.died(W1)]  # a restart restores the newest checkpoint held
    assert fakes.states(controller, 3) == [JobState.RECOVERING, JobState.STARTING, JobState.RUNNING]
    assert group.launches[CHIEF].restore.step == 10


def test_a_restart_waits_for_a_gather_in_flight_and_reconciles_after_it(tmp_path):
    controller, group, clock = gathering(tmp_path, gather_s=30)
    group.reports.append(on_node(tmp_path, 20))
    controller.step()
    group.ends = [fakes.died(W1)]
    assert isinstance(controller.step(), Recovering) and len(controller.store.gathers) == 1
    reconcile, in_flight_then = controller.store.reconcile, []
    controller.store.reconcile = lambda: (in_flight_then.append(len(controller.store.gathers)), reconcile())
    assert fakes.states(controller, 2) == [JobState.STARTING, JobState.RUNNING]
    assert in_flight_then == [0]  # nothing wrote into the job folder while the manifest was reconciled
    assert 1030 <= clock.now <= 1030 + settings.POLL_INTERVAL_S  # waited for it, and no longer
    assert group.launches[CHIEF].restore.step == 20  # the checkpoint that came in is the one restored


def test_a_restart_waits_for_a_hung_gather_only_until_its_deadline(tmp_path, caplog):
    caplog.set_level("INFO", logger="tfray")
    controller, group, clock = gathering(tmp_path, gather_s=0)
    group.reports.append(on_node(tmp_path, 10))
    controller.step()
    group.gather_s = None
    group.reports.append(on_node(tmp_path, 20))
    controller.step()
    group.ends = [fakes.died(W1)]
    assert fakes.states(controller, 3) == [JobState.RECOVERING, JobState.STARTING, JobState.RUNNING]
    assert 1000 + DEADLINE_S <= clock.now <= 1000 + DEADLINE_S + settings.POLL_INTERVAL_S
    assert group.launches[CHIEF].restore.step == 10
    said = [r.getMessage() for r in caplog.records if "chief-0" in r.getMessage()]
    assert said[0] == ("waiting for 1 folder(s) on their way from the tasks' nodes before the restart (the "
                       f"checkpoint of step 20 from chief-0); at most {DEADLINE_S:g}s each")
    assert said[1].startswith("the checkpoint of step 20 on chief-0's node was not gathered: no answer within")


def test_a_ctrl_c_while_a_restart_waits_for_a_gather_stops_the_job_at_once(tmp_path, caplog):
    controller, group, clock = gathering(tmp_path, gather_s=None)
    group.reports.append(on_node(tmp_path, 10))
    controller.step()
    look = group.finished_gathers

    def interrupted(handles, wait_s=0.0):
        if wait_s > 0:
            raise KeyboardInterrupt
        return look(handles, wait_s)

    group.finished_gathers = interrupted
    group.ends = [fakes.died(W1)]
    result = controller.run()
    assert result.state is JobState.STOPPED and group.shutdowns == 1 and clock.now == 1000
    assert ("the checkpoint of step 10 on chief-0's node was not gathered: given up: stopped waiting for it "
            "(Ctrl-C); the job goes on from its newest checkpoint, none yet") in warnings(caplog)


def test_the_job_ends_once_its_gathers_are_in_and_before_its_actors_go(tmp_path):
    """The chief's last checkpoint and its folders, reported as the tasks finish, are in the job folder and the
    manifest when the job ends; the actors that serve them are released after."""
    controller, group, clock = gathering(tmp_path, gather_s=10)
    model = tmp_path / "node" / "chief-0" / "model"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"m")
    shutdown, told_at_shutdown = group.shutdown, []
    group.shutdown = lambda: (told_at_shutdown.append(all(g.told for g in group.gathers)), shutdown())
    group.reports += [on_node(tmp_path, 30), FolderReport(CHIEF, "model", str(model))]
    group.ends = [TaskEnd.done(key) for key in (CHIEF, W0, W1)]
    result = controller.run()
    assert result.state is JobState.SUCCEEDED and result.latest_checkpoint.step == 30
    assert (controller.spec.job_dir / "model" / "saved_model.pb").read_bytes() == b"m"
    assert told_at_shutdown == [True] and group.shutdowns == 1
    assert 1020 <= clock.now <= 1020 + 2 * settings.POLL_INTERVAL_S  # one after the other, from one task
