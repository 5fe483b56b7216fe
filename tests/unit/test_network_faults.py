"""Network faults (silence, partition, silence_head): their spec and CLI forms, and the controller carrying
them out through a host network at the job's step or second, never through the task itself."""

import threading

import pytest

from controller.machine.network_faults import NetworkFaults
from controller.spec import FaultSpec, SpecError
from controller.states.events import NetworkFault
from controller.states.state import JobState
from controller.status.summary import fault_lines
from protocol.wire import MetricsReport
from tests.unit import fakes
from tests.unit.fakes import CHIEF, W0, W1


class FakeNetwork:
    """Records what it was asked; ``refuse`` makes every change raise."""

    def __init__(self, refuse: bool = False):
        self.asked: list[tuple[str, str]] = []
        self.refuse = refuse
        self.healed = threading.Event()

    def _do(self, what: str, host: str) -> None:
        if self.refuse:
            raise RuntimeError("the harness is gone")
        self.asked.append((what, host))

    def silence(self, host):
        self._do("silence", host)

    def silence_from_head(self, host):
        self._do("silence_from_head", host)

    def heal(self, host):
        self._do("heal", host)
        self.healed.set()

    def describe(self):
        return "fake network"


def test_the_cli_form_takes_a_partitions_duration():
    fault = FaultSpec.parse("worker-0:partition@step=100@for=20")
    assert (fault.action.value, fault.at_step, fault.duration_s) == ("partition", 100, 20)
    assert fault.action.on_network
    assert fault.when() == "step 100 for 20s"
    assert not FaultSpec.parse("worker-0:kill@step=1").action.on_network


@pytest.mark.parametrize("text, expected", [
    ("worker-0:partition@step=5", "duration_s: a partition needs one"),
    ("worker-0:silence@step=5@for=3", "duration_s: only a partition heals"),
    ("worker-0:silence@save=5", "at_save: a silence fault acts on the network"),
    ("worker-0:partition@step=5@for=x", "@for=x must be a number of seconds"),
])
def test_a_network_fault_that_cannot_be_carried_out_is_refused(text, expected):
    with pytest.raises(ValueError, match=expected):
        FaultSpec.parse(text)


def test_network_faults_go_to_the_controller_not_to_the_task_and_need_a_network(tmp_path):
    spec = fakes.make_spec(tmp_path, faults=[{"task": "worker-0", "action": "silence", "at_step": 5}])
    with pytest.raises(SpecError, match="faults.0.action: 'silence' acts on the network of worker-0's host, which "
                                        "needs a multi-host harness"):
        fakes.controller_for(spec)
    controller, group = fakes.running(spec, network=FakeNetwork())
    assert group.launches[W0].faults == ()  # a process does not cut its own host off


def report(step: int) -> MetricsReport:
    return MetricsReport(CHIEF, step, {"loss": 1.0})


def test_a_silence_fires_at_the_jobs_step_on_the_tasks_host_and_is_recorded(tmp_path):
    spec = fakes.pss_spec(tmp_path, faults=[{"task": "worker-1", "action": "silence", "at_step": 5}])
    network = FakeNetwork()
    controller, group = fakes.running(spec, network=network)
    group.reports = [report(4)]
    controller.step()
    assert network.asked == []
    group.reports = [report(5)]  # the chief's step: a PSS worker reports none of its own
    controller.step()
    controller.step()
    host = controller.tasks.infos[W1].address.split(":")[0]
    assert network.asked == [("silence", host)]  # once
    fired = [e for e in controller.attempt.events if isinstance(e, NetworkFault)]
    assert [(e.task, e.host, e.what) for e in fired] == [("worker-1", host, "silenced")]
    assert fault_lines(spec.faults, controller.attempt.events) == [
        "fault silence worker-1 at step 5 (run 0 of the cluster): fired"]


def test_after_s_counts_from_its_run_of_the_cluster_and_silence_head_cuts_the_head_only(tmp_path):
    clock = fakes.FakeClock()
    spec = fakes.make_spec(tmp_path, faults=[{"task": "worker-0", "action": "silence_head", "after_s": 10,
                                              "restart": 1}], failure={"backoff_s": 0})
    network = FakeNetwork()
    controller, group = fakes.running(spec, network=network, clock=clock)
    clock.now += 20
    controller.step()
    assert network.asked == []  # it belongs to the run after the first restart
    group.ends = [fakes.died(W1)]
    assert fakes.states(controller, 3) == [JobState.RECOVERING, JobState.STARTING, JobState.RUNNING]
    clock.now += 9
    controller.step()
    assert network.asked == []
    clock.now += 1
    controller.step()
    assert network.asked == [("silence_from_head", controller.tasks.infos[W0].address.split(":")[0])]


def test_a_partition_heals_on_its_own_timer_and_the_jobs_end_heals_one_still_open(tmp_path):
    spec = fakes.make_spec(tmp_path, faults=[{"task": "worker-0", "action": "partition", "at_step": 1,
                                              "duration_s": 0.05},
                                             {"task": "worker-1", "action": "partition", "at_step": 1,
                                              "duration_s": 3600}])
    network = FakeNetwork()
    faults = NetworkFaults.of(spec, network, clock=fakes.FakeClock())
    hosts = {W0: "10.0.0.1", W1: "10.0.0.2"}
    assert [e.what for e in faults.due(1, hosts)] == ["partitioned", "partitioned"]
    assert network.healed.wait(10), "the 0.05 s partition did not heal within 10 s"
    assert [(e.host, e.what) for e in faults.due(2, hosts)] == [("10.0.0.1", "healed")]
    assert [(e.host, e.what) for e in faults.close()] == [("10.0.0.2", "healed")]
    assert network.asked == [("silence", "10.0.0.1"), ("silence", "10.0.0.2"), ("heal", "10.0.0.1"),
                             ("heal", "10.0.0.2")]


def test_a_fault_the_network_refuses_is_recorded_and_the_job_goes_on(tmp_path):
    spec = fakes.make_spec(tmp_path, faults=[{"task": "worker-0", "action": "silence", "at_step": 1}])
    faults = NetworkFaults.of(spec, FakeNetwork(refuse=True), clock=fakes.FakeClock())
    (event,) = faults.due(1, {W0: "10.0.0.1"})
    assert (event.what, event.error) == ("not_carried_out", "RuntimeError: the harness is gone")
    assert fault_lines(spec.faults, [event]) == [
        "fault silence worker-0 at step 1 (run 0 of the cluster): never fired (its moment did not come)"]


def test_validate_takes_a_network_fault_once_a_host_network_is_named(tmp_path, monkeypatch, capsys):
    from controller.cli.app import main
    from tests.unit.test_bad_input import GOOD, write_spec

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFRAY_HOST_NETWORK", "tests.unit.test_network_faults:FakeNetwork")
    assert main(["validate", str(write_spec(tmp_path, GOOD)), "--fault", "worker-1:partition@step=5@for=20"]) == 0
    assert main(["dry-run", str(write_spec(tmp_path, GOOD)), "--fault", "worker-1:silence_head@after=3"]) == 0
    assert "fault: silence_head worker-1's host at 3s after start (run 0 of the cluster)" in capsys.readouterr().out
