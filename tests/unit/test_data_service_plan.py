"""The tf.data service's roles in the spec, the plan and each task's launch (docs/design.md §15). Pure."""

import pytest

from controller.plan.dry_run import render_plan
from controller.plan.launch import build_launches
from controller.plan.tasks import plan
from controller.plan.tf_config import tf_configs
from controller.spec import SpecError, Strategy, parse_spec
from protocol.data_service import DATA_SERVICE_ENV, dispatcher_address, service_url
from protocol.task_key import TaskKey

SERVICE = {"data_dispatcher": {"count": 1, "resources": {"cpu": 0.25}},
           "data_worker": {"count": 2, "resources": {"cpu": 0.5}, "cpu_affinity": [1]}}


def spec_with(strategy: str = "multi_worker_mirrored", **roles):
    one = strategy in ("one_device", "mirrored")
    base = {"chief": {"count": 1}} if one else {"chief": {"count": 1}, "worker": {"count": 1}}
    if strategy == "parameter_server":
        base = {"chief": {"count": 1}, "worker": {"count": 2}, "ps": {"count": 1}}
    return parse_spec({"name": "ds", "strategy": strategy, "roles": {**base, **roles},
                       "entrypoint": {"function": "examples.digits_input:train"}})


def launches_of(spec):
    tasks = plan(spec)
    addresses = {t.key: f"10.0.0.{i}:{5000 + i}" for i, t in enumerate(tasks)}
    return tasks, addresses, build_launches(spec, tasks, addresses, {}, attempt=1, restarts=0, restore=None,
                                            sys_path=["/code"])


@pytest.mark.parametrize("roles, words", [
    ({"data_dispatcher": {"count": 1}}, "add roles.data_worker"),
    ({"data_worker": {"count": 2}}, "add roles.data_dispatcher with count: 1"),
    ({"data_dispatcher": {"count": 2}, "data_worker": {"count": 1}}, "at most one data_dispatcher"),
    ({**SERVICE, "data_worker": {"count": 1, "cpu_affinity": [0, 0]}}, "names a CPU twice"),
    ({**SERVICE, "data_worker": {"count": 1, "cpu_affinity": []}}, "cpu_affinity"),
])
def test_the_service_needs_both_roles_and_one_dispatcher(roles, words):
    with pytest.raises(SpecError, match=words):
        spec_with(**roles)


@pytest.mark.parametrize("strategy", ["multi_worker_mirrored", "parameter_server", "one_device", "mirrored"])
def test_the_data_servers_serve_outside_tf_config_under_any_strategy(strategy):
    spec = spec_with(strategy, **SERVICE)
    tasks, addresses, launches = launches_of(spec)
    data = [t for t in tasks if t.serves_data]
    assert [str(t.key) for t in data] == ["data_dispatcher-0", "data_worker-0", "data_worker-1"]
    assert all(t.runs_server and not t.in_cluster and not t.sidecar and not t.tracked for t in data)
    assert not any(t.serves_training for t in data)
    configs = tf_configs(Strategy(strategy), tasks, addresses)
    assert all(configs[t.key] is None for t in data)  # they run no strategy
    for config in filter(None, configs.values()):
        assert not set(config["cluster"]) & {"data_dispatcher", "data_worker"}
    url = service_url(addresses[TaskKey("data_dispatcher", 0)])
    assert {launch.data_service for launch in launches.values()} == {url}
    assert all(launch.address == addresses[key] for key, launch in launches.items())
    assert launches[TaskKey("data_worker", 1)].cpu_affinity == (1,)
    assert launches[TaskKey("chief", 0)].cpu_affinity == ()


def test_trainers_wait_for_the_service_and_data_workers_for_the_dispatcher():
    _, addresses, launches = launches_of(spec_with("parameter_server", **SERVICE))
    data = {("data_dispatcher-0", addresses[TaskKey("data_dispatcher", 0)]),
            ("data_worker-0", addresses[TaskKey("data_worker", 0)]),
            ("data_worker-1", addresses[TaskKey("data_worker", 1)])}
    chief = set(launches[TaskKey("chief", 0)].servers)
    assert data < chief and ("ps-0", addresses[TaskKey("ps", 0)]) in chief  # the coordinator: PSS servers too
    assert launches[TaskKey("data_worker", 0)].servers == (("data_dispatcher-0",
                                                            addresses[TaskKey("data_dispatcher", 0)]),)
    assert launches[TaskKey("data_dispatcher", 0)].servers == ()
    assert launches[TaskKey("worker", 0)].servers == ()  # a PSS worker serves; its closures read the service
    _, _, mwms = launches_of(spec_with(**SERVICE))
    assert {name for name, _ in mwms[TaskKey("worker", 0)].servers} == {name for name, _ in data}


def test_without_the_service_nothing_changes():
    _, _, launches = launches_of(spec_with())
    assert all(launch.data_service is None and launch.servers == () for launch in launches.values())
    assert "tf.data service" not in render_plan(spec_with())


def test_the_dry_run_names_the_service_and_the_pinned_cpus():
    text = render_plan(spec_with("one_device", **SERVICE))
    assert f"tf.data service: grpc://<data_dispatcher-0-host>:<port> (every task's ctx.data_service and " \
           f"{DATA_SERVICE_ENV}" in text
    assert "data_worker-1 (serves the tf.data service's worker)" in text and "pinned to CPUs 1" in text
    assert "TF_CONFIG: (none: it runs no strategy)" in text


def test_addresses_with_and_without_the_scheme():
    assert dispatcher_address(service_url("h:5050")) == "h:5050" == dispatcher_address("h:5050")


def test_task_names_of_the_data_roles_parse():
    assert TaskKey.parse("data_worker-3") == TaskKey("data_worker", 3)
    assert TaskKey.parse("data_dispatcher-0") == TaskKey("data_dispatcher", 0)
    assert TaskKey.parse("worker-3") == TaskKey("worker", 3)
