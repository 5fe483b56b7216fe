"""Storage without a shared file system: checkpoint files in chunks, and the URI mirror (file:// here)."""

from pathlib import Path

import pytest
import yaml

from controller.spec import StorageMode, parse_spec
from controller.store.storage import Mirror, is_uri, mirror_dir
from protocol.layout import COMPLETE_MARKER, checkpoint_dir, node_job_dir
from protocol.seal import read_seal, seal, verify_checkpoint
from protocol.streaming import read_chunks, write_chunks

SPEC = "name: j\nstrategy: multi_worker_mirrored\nroles: {worker: {count: 2}}\nentrypoint: {script: train.py}\n"


def sealed_checkpoint(job_dir: Path, step: int) -> Path:
    path = checkpoint_dir(job_dir, step)
    (path / "sub").mkdir(parents=True)
    (path / "ckpt.index").write_bytes(b"index")
    (path / "sub" / "ckpt.data").write_bytes(bytes(range(256)))
    seal(path, step, 1, {"loss": 0.5})
    return path


def test_a_checkpoint_travels_in_chunks_each_file_whole_and_the_seal_last(tmp_path, monkeypatch):
    source = sealed_checkpoint(tmp_path / "a", 10)
    (source / "empty").write_bytes(b"")
    pieces = list(read_chunks(source, chunk_bytes=100))
    names = [name for name, _ in pieces]
    assert list(dict.fromkeys(names)) == ["ckpt.index", "empty", "sub/ckpt.data", COMPLETE_MARKER]
    assert names.count("sub/ckpt.data") == 3  # 256 bytes in pieces of 100, one file's pieces together
    assert max(len(piece) for _, piece in pieces) == 100  # never more than a chunk at a time
    written: list[str] = []
    real_replace = __import__("os").replace
    monkeypatch.setattr("protocol.layout.os.replace", lambda src, dst: (written.append(Path(dst).name),
                                                                          real_replace(src, dst)))
    dest = write_chunks(tmp_path / "b" / "ckpt-10", iter(pieces))
    assert written[-1] == COMPLETE_MARKER  # a copy cut short is never sealed
    assert verify_checkpoint(dest) is None and read_seal(dest)["step"] == 10 and (dest / "empty").read_bytes() == b""


def test_a_stream_cut_short_leaves_no_half_file_and_no_seal(tmp_path):
    pieces = list(read_chunks(sealed_checkpoint(tmp_path / "a", 10), chunk_bytes=100))

    def cut():
        yield from pieces[:3]  # the index, then the data file's first piece
        raise ConnectionError("the node went away")

    with pytest.raises(ConnectionError):
        write_chunks(tmp_path / "b", cut())
    assert sorted(p.name for p in (tmp_path / "b").rglob("*") if p.is_file()) == ["ckpt.index"]


def test_read_chunks_can_remove_what_it_read_and_write_chunks_can_add_to_a_folder(tmp_path):
    source = sealed_checkpoint(tmp_path / "a", 10)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "kept.log").write_text("older")
    write_chunks(tmp_path / "b", read_chunks(source, remove_after=True), replace=False)
    assert not source.exists() and (tmp_path / "b" / "kept.log").exists() and (tmp_path / "b" / "ckpt.index").exists()


def test_write_chunks_refuses_paths_outside_its_folder(tmp_path):
    with pytest.raises(ValueError, match="outside"):
        write_chunks(tmp_path / "c", iter([("../evil", b"x")]))


def test_uri_storage_mirrors_the_job_folder_on_the_head(tmp_path, monkeypatch):
    monkeypatch.setenv("TFRAY_CACHE_DIR", str(tmp_path / "cache"))
    assert is_uri("gs://b/runs") and is_uri("s3://b/runs") and is_uri("file:///x") and not is_uri("/x/runs")
    spec = parse_spec(yaml.safe_load(SPEC + "storage_path: gs://bucket/runs/\n"), base_dir=tmp_path)
    assert spec.storage_uri == "gs://bucket/runs/j"
    assert spec.job_dir == mirror_dir("gs://bucket/runs") / "j" and spec.job_dir.is_relative_to(tmp_path / "cache")
    assert spec.effective_storage_mode is StorageMode.GATHER  # tasks never write to a URI themselves
    local = parse_spec(yaml.safe_load(SPEC + "storage_path: out\n"), base_dir=tmp_path)
    assert local.storage_uri is None and local.effective_storage_mode is StorageMode.AUTO


def test_node_folders_differ_per_node(tmp_path, monkeypatch):
    monkeypatch.setenv("TFRAY_NODE_STORAGE", str(tmp_path))
    assert node_job_dir("a" * 40, "j") != node_job_dir("b" * 40, "j")
    assert node_job_dir("a" * 40, "j").is_relative_to(tmp_path)


def test_mirror_uploads_changes_prunes_and_downloads(tmp_path):
    local, bucket = tmp_path / "head" / "j", tmp_path / "bucket" / "j"
    local.mkdir(parents=True)
    mirror = Mirror(f"file://{bucket}", local)
    assert mirror.download() == 0  # nothing stored yet: a fresh job
    old = sealed_checkpoint(local, 10)
    (local / "metrics.jsonl").write_text('{"step": 10}\n')
    (local / ".tfray-storage-token").write_text("secret")
    assert mirror.sync() == 4
    assert read_seal(bucket / old.relative_to(local))["step"] == 10
    assert not (bucket / ".tfray-storage-token").exists()  # dot files stay on the head
    assert mirror.sync() == 0  # nothing changed
    sealed_checkpoint(local, 20)
    import shutil

    shutil.rmtree(old)  # pruned (checkpoint.keep) on the head: pruned at the URI too
    (local / "metrics.jsonl").write_text('{"step": 10}\n{"step": 20}\n')
    assert mirror.sync() == 4
    assert not (bucket / old.relative_to(local)).exists()
    assert mirror.sync(min_interval_s=60) == 0  # throttled

    fresh = tmp_path / "new-head" / "j"  # a new head resumes from what the URI holds
    assert Mirror(f"file://{bucket}", fresh).download() == 4
    assert read_seal(checkpoint_dir(fresh, 20))["step"] == 20
    assert (fresh / "metrics.jsonl").read_text().count("\n") == 2


def test_a_task_that_gathers_marks_its_checkpoints_as_on_its_node_and_nothing_else():
    from types import SimpleNamespace

    from protocol.wire import CheckpointReport, MetricsReport, TaskKey
    from workers.task_storage import TaskStorage

    sent: list = []
    storage = TaskStorage(None, SimpleNamespace(send=sent.append), gather_timeout_s=1.0)
    chief = TaskKey("chief", 0)
    storage.forward(CheckpointReport(chief, 10, "/c"))
    storage.gather = True
    storage.forward(CheckpointReport(chief, 20, "/node/c"))
    storage.forward(MetricsReport(chief, 20, {}))
    assert [getattr(r, "node_copy", None) for r in sent] == [False, True, None]
    assert sent[1] == CheckpointReport(chief, 20, "/node/c", node_copy=True)
