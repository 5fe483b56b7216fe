"""ParameterServerStrategy across Ray nodes: a worker's whole node is removed and training goes on."""

import pytest
import ray
from ray.cluster_utils import Cluster

from controller.states.events import Decision
from controller.states.state import JobState

from .conftest import NO_METRICS, SHARED_RAY, BackgroundJob, assert_nothing_left, job_spec, short_tmpdir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker_nodes():
    """A head for the chief and ps, and one node per worker (custom resource 'trainer_node')."""
    nodes = []

    def start():
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "resources": {"main_node": 4}, "include_dashboard": False, "temp_dir": short_tmpdir(),
            # Find a dead node in ~3 s instead of ~30 s (docs/design.md §6).
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3, **NO_METRICS},
        })
        nodes.extend(cluster.add_node(num_cpus=1, resources={"trainer_node": 1}) for _ in range(2))
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        return cluster

    SHARED_RAY.use("pss-nodes", start)
    yield SHARED_RAY.cluster, nodes
    SHARED_RAY.release()


def test_losing_a_workers_node_goes_on_with_fewer_workers(worker_nodes, tmp_path):
    cluster, nodes = worker_nodes
    roles = {
        "chief": {"count": 1, "resources": {"cpu": 0.5, "custom": {"main_node": 1}}},
        "ps": {"count": 1, "resources": {"cpu": 0.5, "custom": {"main_node": 1}}},
        "worker": {"count": 2, "resources": {"cpu": 0.5, "custom": {"trainer_node": 1}}},
    }
    spec = job_spec(tmp_path, "pss-node-loss", {"function": "examples.digits_pss:train_ctl",
                                                "args": {"epochs": 4, "steps_per_epoch": 500}},
                    roles=roles, strategy="parameter_server",
                    # Few epoch ends and no checkpoints keep the test short; steps/s with a worker
                    # gone and a checkpoint every epoch is measured by bench/pss_gone.py.
                    checkpoint={"every_n_epochs": 1000})
    job = BackgroundJob(spec)
    job.wait_until(lambda: job.chief_step() >= 200, 180, "chief step 200")
    victim = job.info("worker-1")
    node = next(n for n in nodes if n.node_id == victim.node_id)
    cluster.remove_node(node, allow_graceful=False)
    result = job.wait(300)
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.restarts == 0
    assert result.statuses["worker-1"] == "LOST" and result.statuses["chief-0"] == "FINISHED"
    # Ray may report the actor dead before its node: either way the end is "go on without it".
    lost = [e for e in result.events if isinstance(e, Decision) and e.task == "worker-1"]
    assert lost[-1].cause == "node_lost" and lost[-1].action == "continue_without", lost
    assert result.result["step"] >= 4 * 500
    assert_nothing_left()
