"""The plan and TF_CONFIG: pure functions, and the dry-run text pinned by golden files."""

import json
import os
from pathlib import Path

import pytest

from controller.plan.dry_run import render_plan
from controller.plan.tasks import TaskKey, chief_of, plan
from controller.plan.tf_config import cluster_spec, tf_config, tf_configs
from controller.spec import Strategy, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"


def spec_of(roles, strategy="multi_worker_mirrored"):
    return parse_spec({"name": "j", "strategy": strategy, "roles": roles, "entrypoint": {"function": "m:f"}})


def test_plan_orders_tasks_and_names_the_chief():
    tasks = plan(spec_of({"worker": {"count": 2}, "chief": {"count": 1}, "evaluator": {"count": 1}}))
    assert [str(t.key) for t in tasks] == ["chief-0", "worker-0", "worker-1", "evaluator-0"]
    assert chief_of(tasks).key == TaskKey("chief", 0)
    assert [t.in_cluster for t in tasks] == [True, True, True, False]


def test_without_a_chief_worker_0_is_chief():
    tasks = plan(spec_of({"worker": {"count": 3}}))
    assert [t.is_chief for t in tasks] == [True, False, False]


def test_tf_config_for_each_task():
    tasks = plan(spec_of({"chief": {"count": 1}, "worker": {"count": 2}, "evaluator": {"count": 1}}))
    addresses = {t.key: f"10.0.0.{i}:2222" for i, t in enumerate(tasks)}
    configs = tf_configs(Strategy.MULTI_WORKER_MIRRORED, tasks, addresses)
    cluster = {"chief": ["10.0.0.0:2222"], "worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    assert configs[TaskKey("worker", 1)] == {"cluster": cluster, "task": {"type": "worker", "index": 1}}
    # The evaluator is never in the cluster map (it would hang a PSS coordinator).
    assert configs[TaskKey("evaluator", 0)] == {"cluster": {"evaluator": ["10.0.0.3:2222"]},
                                                "task": {"type": "evaluator", "index": 0}}
    assert cluster_spec(tasks, addresses) == cluster
    assert tf_config(cluster, TaskKey("chief", 0))["task"] == {"type": "chief", "index": 0}


def test_parameter_server_plan():
    tasks = plan(spec_of({"chief": {"count": 1}, "ps": {"count": 2}, "worker": {"count": 2},
                          "evaluator": {"count": 1}}, strategy="parameter_server"))
    by_name = {str(t.key): t for t in tasks}
    assert list(by_name) == ["chief-0", "worker-0", "worker-1", "ps-0", "ps-1", "evaluator-0"]
    assert [t.tracked for t in tasks] == [True, False, False, False, False, False]
    assert [t.runs_server for t in tasks] == [False, True, True, True, True, False]
    assert by_name["evaluator-0"].sidecar and not by_name["ps-0"].sidecar
    addresses = {t.key: f"h:{i}" for i, t in enumerate(tasks)}
    configs = tf_configs(Strategy.PARAMETER_SERVER, tasks, addresses)
    assert configs[TaskKey("ps", 1)]["cluster"] == {"chief": ["h:0"], "worker": ["h:1", "h:2"], "ps": ["h:3", "h:4"]}
    assert configs[TaskKey("evaluator", 0)]["cluster"] == {"evaluator": ["h:5"]}


def test_single_process_strategies_get_no_tf_config():
    tasks = plan(spec_of({"chief": {"count": 1}}, strategy="one_device"))
    assert tf_configs(Strategy.ONE_DEVICE, tasks, {tasks[0].key: "h:1"}) == {tasks[0].key: None}


def test_tf_config_is_json_serialisable():
    tasks = plan(spec_of({"worker": {"count": 2}}))
    configs = tf_configs(Strategy.MULTI_WORKER_MIRRORED, tasks, {t.key: "h:1" for t in tasks})
    assert json.loads(json.dumps(configs[TaskKey("worker", 0)]))["task"]["index"] == 0


SPECS = sorted((REPO / "cluster_configs" / "jobs").glob("*.yaml")) + sorted(GOLDEN.glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_dry_run_matches_golden_file(path):
    """Set UPDATE_GOLDEN=1 to rewrite the golden files after an intended change."""
    text = render_plan(load_spec(path))
    golden = GOLDEN / (path.stem + ".dry-run.txt")
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with UPDATE_GOLDEN=1 once"
    assert text == golden.read_text()
