"""The checkpoint registry: only sealed checkpoints count, the newest N are kept, writes are atomic."""

import json
import os
import stat

import pytest

from controller.store.checkpoints import CheckpointManifest
from protocol.atomic_files import write_json_atomic, write_tf_state
from protocol.layout import COMPLETE_MARKER, TF_STATE_FILE, checkpoint_dir, workertemp_dir
from protocol.seal import read_seal, seal


def make_checkpoint(job_dir, step, sealed=True):
    path = checkpoint_dir(job_dir, step)
    path.mkdir(parents=True)
    (path / "ckpt.index").write_text("data")
    if sealed:
        seal(path, step, epoch=step // 10, metrics={"loss": 1.0 / step})
    return path


def test_only_sealed_checkpoints_register(tmp_path):
    manifest = CheckpointManifest(tmp_path, keep=3)
    assert manifest.register(make_checkpoint(tmp_path, 10, sealed=False)) is None
    record = manifest.register(make_checkpoint(tmp_path, 20))
    assert (record.step, record.epoch) == (20, 2)
    assert manifest.latest().step == 20


def test_keeps_the_newest_n_and_deletes_the_rest(tmp_path):
    manifest = CheckpointManifest(tmp_path, keep=2)
    paths = [make_checkpoint(tmp_path, s) for s in (10, 20, 30)]
    for p in paths:
        manifest.register(p)
    assert [r.step for r in manifest.records] == [20, 30]
    assert not paths[0].exists() and paths[1].exists() and paths[2].exists()
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert [r["step"] for r in on_disk["checkpoints"]] == [20, 30]


def test_manifest_survives_a_restart(tmp_path):
    CheckpointManifest(tmp_path, keep=3).register(make_checkpoint(tmp_path, 10))
    assert CheckpointManifest(tmp_path, keep=3).latest().step == 10


def test_latest_skips_a_checkpoint_whose_seal_is_gone(tmp_path):
    manifest = CheckpointManifest(tmp_path, keep=3)
    manifest.register(make_checkpoint(tmp_path, 10))
    newest = make_checkpoint(tmp_path, 20)
    manifest.register(newest)
    (newest / COMPLETE_MARKER).unlink()
    assert manifest.latest().step == 10


def test_reconcile_removes_half_written_and_adopts_unregistered(tmp_path):
    make_checkpoint(tmp_path, 10)  # sealed but never registered (driver died)
    half = make_checkpoint(tmp_path, 20, sealed=False)  # the task died while saving
    temp = workertemp_dir(tmp_path, "worker-1", 20)
    temp.mkdir(parents=True)
    manifest = CheckpointManifest(tmp_path, keep=3)
    manifest.reconcile()
    assert [r.step for r in manifest.records] == [10]
    assert not half.exists() and not temp.exists()


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "x.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077], ids=oct)
def test_atomic_writes_get_the_mode_a_plain_open_would(tmp_path, umask):
    """job.json, manifest.json and TF's state file are as readable as the job folder's other files: 0666 less the
    process's umask, as open() gives (mkstemp's 0600 made them unreadable to the group a shared folder is for)."""
    previous = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "job.json", {"a": 1})
        write_json_atomic(tmp_path / "job.json", {"a": 2})  # replaced: the new file's mode, not the old one's
        write_tf_state(tmp_path, ["ckpt-10"])
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "job.json").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / TF_STATE_FILE).stat().st_mode) == expected


def test_unreadable_seal_means_incomplete(tmp_path):
    path = make_checkpoint(tmp_path, 10, sealed=False)
    (path / COMPLETE_MARKER).write_text("{trunc")
    assert read_seal(path) is None
