"""A stop keeps what the job saved: running tasks get a notice and save first (bounded), a checkpoint
sealed while the job stopped is in the manifest and the result, the tasks are recorded as stopped."""

import time

from controller.machine.record import JobRecord
from controller.states.state import JobState
from protocol.layout import checkpoint_dir
from protocol.seal import seal
from tests.unit import fakes
from tests.unit.fakes import CHIEF, W0, W1


def test_a_stop_gives_notice_and_registers_the_checkpoint_saved_on_it(tmp_path):
    spec = fakes.make_spec(tmp_path)
    controller, group = fakes.running(spec)
    group.reports = [fakes.checkpoint_report(spec, 42)]  # what the chief sends as it saves on the notice
    controller.stop("stopped by the user")
    result = controller.outcome()
    assert group.notices == [CHIEF, W0, W1] and group.shutdowns == 1
    assert result.state is JobState.STOPPED and result.latest_checkpoint.step == 42
    (attempt,) = JobRecord(spec.job_dir, spec.name).attempts()
    assert attempt.state == "STOPPED" and set(attempt.statuses.values()) == {"STOPPED"}


def test_code_that_ignores_the_notice_is_stopped_after_the_grace(tmp_path):
    spec = fakes.make_spec(tmp_path, timeouts={"preemption_grace_s": 1})
    controller, group = fakes.running(spec, fakes.FakeTaskGroup(saves_on_notice=False))
    started = time.monotonic()
    controller.stop("stopped by the user")
    assert 0.9 <= time.monotonic() - started < 5 and controller.state.name is JobState.STOPPED


def test_a_second_ctrl_c_stops_without_waiting(tmp_path):
    spec = fakes.make_spec(tmp_path)
    controller, group = fakes.running(spec, fakes.FakeTaskGroup(saves_on_notice=False))
    group.poll_error = KeyboardInterrupt()  # the first Ctrl-C, then the second while it waits for the save
    started = time.monotonic()
    result = controller.run()
    assert time.monotonic() - started < 5 and result.state is JobState.STOPPED and group.shutdowns == 1


def test_a_checkpoint_sealed_as_the_job_ended_joins_the_manifest(tmp_path):
    spec = fakes.make_spec(tmp_path)
    controller, group = fakes.running(spec)
    group.reports = [fakes.checkpoint_report(spec, 10)]
    controller.step()
    late = checkpoint_dir(spec.job_dir, 98)  # sealed on disk; its report never came
    late.mkdir(parents=True)
    seal(late, 98, 7, {})
    unsealed = checkpoint_dir(spec.job_dir, 99)
    unsealed.mkdir(parents=True)  # half-written: left alone (a task may still be writing), never registered
    controller.stop("stopped by the user")
    assert controller.outcome().latest_checkpoint.step == 98 and unsealed.exists()
    assert [r.step for r in controller.store.manifest.records] == [10, 98]
