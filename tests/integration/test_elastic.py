"""A drained node (a spot VM about to be reclaimed) and an elastic MWMS job, on three real Ray nodes.

The drain is Ray's own (``GcsClient.drain_node`` with reason PREEMPTION, what
``ray drain-node`` and the autoscaler send); the job gets it as a preemption
notice, saves, runs smaller while the capacity is gone and grows back at a
checkpoint once a new node joins.
"""

import time

import pytest
import ray
from ray.core.generated import autoscaler_pb2

from controller.report.metrics import read_metrics
from controller.states.events import Decision, DrainNotice, Grow, Resize, Restart
from controller.states.state import JobState

from .conftest import BackgroundJob, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration


def drain(cluster, node_id: str, deadline_s: float) -> None:
    gcs = ray._raylet.GcsClient(address=cluster.address)
    accepted, why = gcs.drain_node(node_id, autoscaler_pb2.DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"),
                                   "spot reclaim (test)", int((time.time() + deadline_s) * 1000))
    assert accepted, why


def test_drained_node_notice_then_smaller_then_grow_back(three_nodes, tmp_path):
    cluster = three_nodes
    # 10 epochs of 14 steps: the notice's save comes in epoch 4 or 5, and the smaller run's first checkpoint
    # about 10 s after its start (a new TF cluster), by when the new node has joined: it grows back there (step
    # 64 when checked, with more than 5 of the 10 epochs still to go), so a join one checkpoint late still
    # leaves the full size some. A restart waits 2 s for the full size: the drained node's resources never come back.
    spec = job_spec(
        tmp_path, "digits-elastic", {"function": "examples.digits:train", "args": {"epochs": 10}},
        placement="strict_spread", elastic={"min_workers": 1, "capacity_wait_s": 2}, failure={"backoff_s": 0},
    )
    job = BackgroundJob(spec)
    job.wait_until(lambda: job.controller.store.latest() is not None and job.chief_step() >= 42, 120,
                   "a checkpoint and chief step 42")
    head = cluster.head_node.node_id
    victim = next(t for t in ("worker-0", "worker-1") if job.info(t).node_id != head)
    node = next(n for n in cluster.worker_nodes if n.node_id == job.info(victim).node_id)
    drain(cluster, node.node_id, deadline_s=120)
    job.wait_until(lambda: job.controller.tasks.count("worker") == 1 and job.controller.state.name is JobState.RUNNING,
                   120,
                   "the job running with 1 worker")
    cluster.remove_node(node)  # the cloud takes the VM back, and the autoscaler starts another
    cluster.add_node(num_cpus=1)
    result = job.wait(300)
    assert result.state is JobState.SUCCEEDED, result.message

    events = result.events
    assert [e.task for e in events if isinstance(e, DrainNotice)] == [victim]
    assert [(e.kind, e.workers) for e in events if isinstance(e, (Resize, Grow))] == [
        ("resize", 1), ("grow", 2), ("resize", 2)]
    decided = [e for e in events if isinstance(e, Decision)]
    assert decided and {e.cause for e in decided} == {"stopped_on_notice"}
    assert decided[-1].spent == {"max_preemptions": 1, "max_task_failures": 0, "max_infrastructure_failures": 0,
                                 "max_corrupt_checkpoints": 0}
    first = next(e for e in events if isinstance(e, Restart))
    before = [r["step"] for r in read_metrics(spec.job_dir) if r["restart"] == 0 and r["task"] == "chief-0"]
    assert max(before) <= first.from_step  # saved on the notice: no completed step lost
    assert result.restarts == 2 and result.result["replicas"] == 3  # it finished at full size
    assert_nothing_left()
