"""The controller carrying out the scaling policy and drains: shrink when capacity is short, grow back at a
checkpoint, a drained node as a preemption notice. Stepped with the fake task group."""

import pytest

from controller.spec import SpecError
from controller.states.events import Decision, DrainNotice, Grow, Resize, Restart
from controller.states.state import JobState, Provisioning, Recovering, RecoveryReason, Size
from controller.states.task_group import SchedulingTimeoutError
from protocol.wire import FailureCause
from tests.unit import fakes
from tests.unit.fakes import CHIEF, W0, W1


def test_elastic_job_shrinks_when_capacity_is_short_and_grows_back_at_a_checkpoint(tmp_path):
    spec = fakes.make_spec(tmp_path, elastic={"min_workers": 1, "capacity_wait_s": 42}, failure={"backoff_s": 0})
    fits = {"tasks": 3}
    group = fakes.FakeTaskGroup(provision_error=lambda tasks: SchedulingTimeoutError("no room")
                          if len(tasks) > fits["tasks"] else None)
    controller = fakes.controller_for(spec, group, clock=fakes.FakeClock())
    fakes.start_running(controller)
    group.reports = [fakes.checkpoint_report(spec, 10)]
    controller.step()
    fits["tasks"] = 2  # the node of worker-1 is gone and nothing replaces it
    group.ends = [fakes.died(W1, FailureCause.NODE_LOST, "node fakes.died")]
    assert controller.step() == Recovering(RecoveryReason.CAPACITY_LOST, 0.0)
    assert controller.step() == Provisioning((Size(2, 42), Size(1, 5.0)))  # capacity was lost: ask for it again
    assert controller.step() == Provisioning((Size(1, 5.0),), first_error="no room")
    assert fakes.states(controller, 2) == [JobState.STARTING, JobState.RUNNING]
    assert group.provisions[-2:] == [(3, 42), (2, 5.0)]  # full size for capacity_wait_s, then smaller
    assert sorted(map(str, group.launches)) == ["chief-0", "worker-0"]
    assert group.launches[CHIEF].tf_config["cluster"]["worker"] == ["10.0.0.1:2221"]
    assert group.launches[CHIEF].restore.step == 10 and group.launches[CHIEF].num_workers == 2

    group.capacity = True  # capacity is back; the job grows at its next checkpoint, not before
    assert controller.step().name is JobState.RUNNING
    fits["tasks"] = 3
    group.reports = [fakes.checkpoint_report(spec, 20)]
    assert controller.step() == Recovering(RecoveryReason.GROW)
    assert fakes.states(controller, 3) == [JobState.PROVISIONING, JobState.STARTING, JobState.RUNNING]
    assert group.launches[W1].restore.step == 20
    result = controller.outcome()
    assert result.restarts == 2
    assert [d.spent for d in result.events if isinstance(d, Decision)] == [
        {"max_preemptions": 1, "max_task_failures": 0, "max_infrastructure_failures": 0,
        "max_corrupt_checkpoints": 0}]  # the grow spent nothing
    sized = [(type(e).__name__, e.workers) for e in result.events if isinstance(e, (Resize, Grow))]
    assert sized == [("Resize", 1), ("Grow", 2), ("Resize", 2)]
    assert [e.reason for e in result.events if isinstance(e, Restart)] == ["capacity_lost", "grow"]


def test_elastic_job_fails_with_the_minimum_in_the_message_when_not_even_it_fits(tmp_path):
    spec = fakes.make_spec(tmp_path, elastic={"min_workers": 2})
    group = fakes.FakeTaskGroup(provision_error=SchedulingTimeoutError("asked for CPU=3"))
    result = fakes.controller_for(spec, group).run()
    assert result.state is JobState.FAILED
    assert "CPU=3" in result.message and "elastic.min_workers=2" in result.message


@pytest.mark.parametrize("elastic, error", [
    ({"min_workers": 3}, "more than roles.worker.count"),
    ({"min_workers": 1, "max_workers": 4}, "must equal|match it"),
])
def test_elastic_spec_errors_say_what_to_change(tmp_path, elastic, error):
    with pytest.raises(SpecError, match=error):
        fakes.make_spec(tmp_path, elastic=elastic)


def test_a_drained_node_is_a_preemption_notice_for_its_training_tasks(tmp_path):
    controller, group = fakes.running(fakes.make_spec(tmp_path, failure={"backoff_s": 0}), clock=fakes.FakeClock())
    group.draining = {"node000000000002": 0}  # the node of worker-1 (see fakes.info)
    controller.step()
    controller.step()
    assert group.notices == [W1]  # once, however often the drain is seen
    notices = [e for e in controller.outcome().events if isinstance(e, DrainNotice)]
    assert [(e.task, e.node, e.deadline) for e in notices] == [("worker-1", "node000000000002", None)]
    # Every task saved the same step on the notice and stopped (they all-reduce it).
    group.ends = [fakes.died(key, FailureCause.STOPPED_ON_NOTICE, "saved at step 30") for key in (CHIEF, W0, W1)]
    assert controller.step() == Recovering(RecoveryReason.CAPACITY_LOST, 0.0)
    assert controller.step().name is JobState.PROVISIONING  # not onto the drained node's old bundle
    decided = [e for e in controller.outcome().events if isinstance(e, Decision)]
    assert {(d.cause, d.budget) for d in decided} == {("stopped_on_notice", "max_preemptions")}
    assert decided[-1].spent["max_preemptions"] == 1  # one restart for the three
