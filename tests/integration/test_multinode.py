"""Three Ray nodes on one machine (same IP): one task per node, and no two tasks share a port."""

import pytest
import ray
from ray.cluster_utils import Cluster

from controller.cli import run_job
from controller.metrics import read_metrics
from controller.state import JobState

from .conftest import REPO, assert_nothing_left, job_spec, short_tmpdir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def three_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "temp_dir": short_tmpdir()})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_one_task_per_node_with_distinct_ports(three_nodes, tmp_path):
    spec = job_spec(
        tmp_path, "digits-3-nodes", {"function": "examples.digits:train", "args": {"epochs": 4}},
        placement="strict_spread",
    )
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    infos = result.tasks
    assert len({i.node_id for i in infos.values()}) == 3, infos
    hosts = {i.address.rsplit(":", 1)[0] for i in infos.values()}
    ports = {i.address.rsplit(":", 1)[1] for i in infos.values()}
    assert len(hosts) == 1 and len(ports) == 3  # one IP for all nodes: only the ports tell tasks apart
    assert {r["task"] for r in read_metrics(spec.job_dir)} == {"chief-0", "worker-0", "worker-1"}
    assert result.result["val_accuracy"] >= 0.8
    assert_nothing_left()
