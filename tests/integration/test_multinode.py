"""Three Ray nodes on one machine (same IP): one task per node, and no two tasks share a port."""

import pytest

from controller.api import run_job
from controller.report.metrics import read_metrics
from controller.states.events import Restart
from controller.states.state import JobState
from controller.store.checkpoints import CheckpointManifest
from protocol.seal import read_seal, sealed_checkpoints

from .conftest import REPO, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration


def node_folders(root) -> dict[str, list[str]]:
    """What tasks left in their per-node folders: node -> checkpoint folders still there."""
    return {node.name: sorted(p.name for p in node.glob("*/checkpoints/ckpt-*")) for node in root.iterdir()}


def test_one_task_per_node_and_checkpoints_gathered_to_the_head_without_shared_storage(three_nodes, tmp_path):
    """One task per node, told apart by their ports alone (one IP here). Tasks write on their own node
    (storage_mode: gather, one folder per node); the chief's checkpoints reach the head's storage path
    through Ray, and a restart gets them back the same way."""
    nodes = tmp_path / "nodes"
    spec = job_spec(
        tmp_path, "digits-gather", {"function": "examples.digits:train", "args": {"epochs": 4}},
        placement="strict_spread", storage_mode="gather", env={"TFRAY_NODE_STORAGE": str(nodes)},
        faults=[{"task": "worker-1", "action": "kill", "at_step": 28}],  # at the end of epoch 2
        failure={"backoff_s": 0},
    )
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.restarts == 1
    restart = next(e for e in result.events if isinstance(e, Restart))
    assert restart.from_step in (14, 28) and restart.from_checkpoint.startswith(str(spec.job_dir))
    # Restored from the gathered checkpoint, sent back to every node through Ray.
    assert result.result["initial_epoch"] == restart.from_step // 14
    manifest = CheckpointManifest(spec.job_dir, keep=spec.checkpoint.keep)
    # The chief's save of step 28 races the kill (saves are asynchronous: one not sealed when its process is
    # torn down is lost), so the restart resumes from 14 or 28; either is pruned once the tasks save past it.
    assert [r.step for r in manifest.records] == [28, 42, 56]
    assert all(read_seal(r.path) for r in manifest.records)
    assert not (spec.job_dir / "checkpoints" / "workertemp").exists()  # no task wrote into the head's folder
    folders = node_folders(nodes)
    assert len(folders) == 3 and not any(folders.values()), folders  # gathered copies are not kept on nodes
    assert {r["task"] for r in read_metrics(spec.job_dir)} == {"chief-0", "worker-0", "worker-1"}
    infos = result.tasks
    assert len({i.node_id for i in infos.values()}) == 3, infos
    hosts = {i.address.rsplit(":", 1)[0] for i in infos.values()}
    ports = {i.address.rsplit(":", 1)[1] for i in infos.values()}
    assert len(hosts) == 1 and len(ports) == 3  # one IP for all nodes: only the ports tell tasks apart
    assert result.result["val_accuracy"] >= 0.8
    assert_nothing_left()


def test_storage_at_a_uri_is_mirrored_and_resumed_on_a_new_head(three_nodes, tmp_path, monkeypatch):
    """storage_path as a URI (file:// here; gs:// and s3:// take the same pyarrow path): the head
    uploads checkpoints, metrics and job state; a head with an empty mirror resumes from the URI."""
    monkeypatch.setenv("TFRAY_CACHE_DIR", str(tmp_path / "head-1"))
    bucket = tmp_path / "bucket"
    args = {"function": "examples.digits:train", "args": {"epochs": 2}}
    two = {"chief": {"count": 1, "resources": {"cpu": 1}}, "worker": {"count": 1, "resources": {"cpu": 1}}}
    spec = job_spec(tmp_path, "digits-uri", args, roles=two, storage_path=f"file://{bucket}")
    first = run_job(spec, [str(REPO)])
    assert first.state is JobState.SUCCEEDED, first.message
    stored = bucket / "digits-uri"
    assert {"manifest.json", "metrics.jsonl", "job.json"} <= {p.name for p in stored.iterdir()}
    assert [s for s, _ in sealed_checkpoints(stored)] == [22, 44]  # 1,437 images a global batch of 64 at a time

    monkeypatch.setenv("TFRAY_CACHE_DIR", str(tmp_path / "head-2"))  # a new head: nothing local
    spec = job_spec(tmp_path, "digits-uri", {**args, "args": {"epochs": 3}}, roles=two,
                    storage_path=f"file://{bucket}")
    second = run_job(spec, [str(REPO)])
    assert second.state is JobState.SUCCEEDED, second.message
    assert second.attempt == 2 and second.result["initial_epoch"] == 2
    assert [s for s, _ in sealed_checkpoints(stored)] == [22, 44, 66]
    assert {r["attempt"] for r in read_metrics(stored)} == {1, 2}
    assert_nothing_left()
