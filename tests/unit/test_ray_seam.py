"""The Ray seam's pure logic: first fit of bundles, the cause of an actor's death, the scheduling-timeout
message, and what a replacement is launched with. No Ray is started."""

import pytest

from controller.plan.launch import actor_config, replacement_launch
from controller.plan.tasks import plan
from controller.ray.group import scheduling_timeout_message
from controller.ray.nodes import cause_of_death, first_fit
from controller.spec import parse_spec
from protocol.wire import Entrypoint, FailureCause, StoragePlan, TaskKey, TaskLaunch


@pytest.mark.parametrize("bundles, free, fits", [
    ([{"CPU": 1}], [{"CPU": 0.5}, {"CPU": 1}], True),
    ([{"CPU": 1}, {"CPU": 1}], [{"CPU": 1.5}], False),  # each bundle on one node
    ([{"CPU": 1}, {"CPU": 1}], [{"CPU": 1}, {"CPU": 1}], True),
    ([{"CPU": 1, "spot": 1}], [{"CPU": 4}], False),
    ([], [], True),
])
def test_first_fit(bundles, free, fits):
    assert first_fit(bundles, free) is fits


def test_first_fit_does_not_change_what_it_was_given():
    free = [{"CPU": 1}]
    first_fit([{"CPU": 1}], free)
    assert free == [{"CPU": 1}]


@pytest.mark.parametrize("text, alive, cause", [
    ("The actor died because its node has died.", True, FailureCause.NODE_LOST),
    ("The actor died unexpectedly", False, FailureCause.NODE_LOST),
    ("The actor died unexpectedly", True, FailureCause.PROCESS_DIED),
])
def test_cause_of_death(text, alive, cause):
    assert cause_of_death(text, alive) is cause


def test_the_scheduling_timeout_names_what_was_asked_and_what_there_is():
    spec = parse_spec({"name": "j", "strategy": "multi_worker_mirrored", "entrypoint": {"function": "m:f"},
                       "roles": {"worker": {"count": 2, "resources": {"cpu": 3, "custom": {"spot": 1}}}}})
    message = scheduling_timeout_message(plan(spec), "pack", 7, {"CPU": 2.0, "memory": 2 ** 31}, {"CPU": 1.0})
    assert "timeouts.scheduling_s=7s" in message and "CPU=6, spot=2" in message
    assert "worker-1: CPU=3, spot=1" in message and "the cluster has CPU=2, memory=2048MiB" in message


def test_a_replacement_keeps_its_launch_but_not_its_faults():
    launch = TaskLaunch(job_name="j", attempt=1, strategy="parameter_server", role="worker", index=1,
                        is_chief=False, num_workers=2, tf_config=None, entrypoint=Entrypoint("function", "m:f"),
                        storage=StoragePlan("/j"), faults=({"action": "kill", "at_step": 3},))
    again = replacement_launch(launch)
    assert again.faults == () and again.key == TaskKey("worker", 1) and again.tf_config == launch.tf_config


def test_an_actor_is_built_with_the_job_environment_and_the_settings_intervals():
    from controller import settings

    config = actor_config(TaskKey("ps", 0), {"A": "1"})
    assert config.key == TaskKey("ps", 0) and config.env == {"A": "1"}
    assert config.heartbeat_interval_s == settings.HEARTBEAT_INTERVAL_S
    assert config.stop_run_timeout_s == settings.STOP_RUN_TIMEOUT_S
