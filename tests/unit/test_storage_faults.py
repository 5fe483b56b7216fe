"""What the job's storage survives, without Ray: the driver lease, checkpoints checked against their seal,
quarantine, and torn manifest and job.json files. Real files, really cut short and altered."""

import json
import os
import subprocess
import sys

import pytest

from controller.machine.record import AttemptRecord, JobRecord, TornRecordError
from controller.states.events import Restart
from controller.states.text import compact, plain
from controller.store.checkpoints import CheckpointManifest
from controller.store.lease import FileLease, JobRunningError
from protocol.layout import checkpoint_dir
from protocol.seal import read_seal, seal, verify_checkpoint


def checkpoint(job_dir, step: int, data: bytes = b"weights" * 1000):
    folder = checkpoint_dir(job_dir, step)
    folder.mkdir(parents=True)
    (folder / "ckpt.index").write_bytes(b"index")
    (folder / "ckpt.data-00000-of-00001").write_bytes(data)
    seal(folder, step, step // 10, {})
    return folder


def test_a_sealed_checkpoint_lists_its_files_and_verifies(tmp_path):
    folder = checkpoint(tmp_path, 10)
    assert set(read_seal(folder)["files"]) == {"ckpt.index", "ckpt.data-00000-of-00001"}
    assert verify_checkpoint(folder) is None


def test_a_truncated_altered_or_missing_file_is_named(tmp_path):
    data = checkpoint(tmp_path, 10) / "ckpt.data-00000-of-00001"
    os.truncate(data, data.stat().st_size // 2)
    assert "has 3500 bytes, 7000 when sealed" in verify_checkpoint(data.parent)
    altered = checkpoint(tmp_path, 20) / "ckpt.data-00000-of-00001"
    raw = bytearray(altered.read_bytes())
    raw[100] ^= 0xFF  # same size, one byte flipped
    altered.write_bytes(bytes(raw))
    assert "has changed since it was sealed" in verify_checkpoint(altered.parent)
    (checkpoint(tmp_path, 30) / "ckpt.index").unlink()
    assert verify_checkpoint(checkpoint_dir(tmp_path, 30)) == "ckpt.index is missing"


def test_a_quarantined_checkpoint_is_kept_aside_and_out_of_the_manifest(tmp_path):
    manifest = CheckpointManifest(tmp_path, keep=3)
    for step in (10, 20):
        manifest.register(checkpoint(tmp_path, step))
    aside = manifest.quarantine(manifest.latest(), "ckpt.data cut short")
    assert aside.parent == tmp_path / "quarantine" and (aside / "ckpt.index").exists()
    assert "cut short" in (aside / "QUARANTINED.txt").read_text()
    assert manifest.latest().step == 10
    assert [r.step for r in CheckpointManifest(tmp_path, keep=3).records] == [10]  # saved so


def test_pruning_never_takes_the_checkpoint_being_restored(tmp_path):
    manifest = CheckpointManifest(tmp_path, keep=1)
    manifest.register(checkpoint(tmp_path, 10))
    manifest.protected = {10}
    manifest.register(checkpoint(tmp_path, 20))
    assert [r.step for r in manifest.records] == [10, 20] and checkpoint_dir(tmp_path, 10).exists()
    manifest.protected = set()
    manifest.register(checkpoint(tmp_path, 30))
    assert [r.step for r in manifest.records] == [30]


@pytest.mark.parametrize("torn", [b'{"checkpoints": [{"step": 1', b"", b"[]", b"\x00\xff"])
def test_a_torn_manifest_is_rebuilt_from_the_sealed_folders(tmp_path, torn):
    for step in (10, 20):
        checkpoint(tmp_path, step)
    (tmp_path / "manifest.json").write_bytes(torn)
    manifest = CheckpointManifest(tmp_path, keep=3)
    assert manifest.torn and manifest.latest() is None
    manifest.reconcile()
    assert [r.step for r in manifest.records] == [10, 20]
    assert json.loads((tmp_path / "manifest.json").read_text())["checkpoints"][-1]["step"] == 20


def test_a_torn_record_is_named_and_set_aside(tmp_path):
    record = JobRecord(tmp_path, "j")
    record.write_attempt(AttemptRecord(attempt=1, state="FAILED", events=(Restart(restart=1, reason="grow"),)))
    record.path.write_text(record.path.read_text()[:30])
    with pytest.raises(TornRecordError, match="job.json is not a job record"):
        record.attempts()
    aside = record.set_aside()
    assert aside.exists() and not record.path.exists() and record.attempts() == []
    record.write_attempt(AttemptRecord(attempt=1, state="RUNNING"))
    assert record.attempts()[0].events == ()  # the torn record's attempt 1 events went aside with it


def test_one_driver_holds_the_lease_and_a_second_is_told_who(tmp_path):
    first, second = FileLease(tmp_path), FileLease(tmp_path)
    first.acquire("job")
    with pytest.raises(JobRunningError, match=rf"job job is running \(driver pid {os.getpid()} on "):
        second.acquire("job")
    assert second.holder().pid == os.getpid()
    first.release()
    assert second.holder() is None
    second.acquire("job")
    second.release()


def test_a_lease_is_free_again_when_its_holder_is_killed(tmp_path):
    """A driver that dies (here: SIGKILL) leaves no stale lease behind: the kernel drops its lock."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from controller.store.lease import FileLease; "
                               f"FileLease({str(tmp_path)!r}).acquire('job'); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert FileLease(tmp_path).holder().pid == holder.pid
        holder.kill()
        holder.wait(10)
        FileLease(tmp_path).acquire("job")
    finally:
        holder.kill()


def test_records_keep_plain_text_cut_at_line_boundaries():
    trace = "\x1b[31mTraceback (most recent call last):\x1b[0m\n" + "".join(
        f'  File "train.py", line {i}, in step\n    x = compute({i})\n' for i in range(400)) + "ValueError: bad"
    text = compact(trace, 2000)
    assert "\x1b" not in text and text.startswith("Traceback (most recent call last):")
    assert text.endswith("ValueError: bad") and "line(s) left out" in text and len(text) <= 2000
    assert all(line == "" or not line.startswith("ne ") for line in text.splitlines())  # no line cut in half
    assert plain("\x1b[1;32mok\x1b[0m") == "ok" and compact("short") == "short"


def test_a_local_run_that_serves_tensorflows_grpc_warns_once_what_it_exposes(tmp_path):
    from controller.spec import exposure_warning
    from tests.unit.fakes import make_spec

    assert "0.0.0.0" in exposure_warning(make_spec(tmp_path), joining_cluster=False)
    assert exposure_warning(make_spec(tmp_path), joining_cluster=True) is None
    single = make_spec(tmp_path, strategy="one_device", roles={"chief": {"count": 1}})
    assert exposure_warning(single, joining_cluster=False) is None


def test_records_keep_a_line_a_progress_bar_redrew_as_a_terminal_ended_up_showing_it():
    error = ("killed; last 2 lines of its output:\n1/4 [>...] - ETA: 3s" + "\b" * 20
             + "\r2/4 [==>.] - ETA: 1s   \b\b\b\r\n")
    assert compact(error) == "killed; last 2 lines of its output:\n2/4 [==>.] - ETA: 1s"
    assert plain("a\rb\n") == "b\n" and plain("no redraws\r\n".removesuffix("\r\n")) == "no redraws"
