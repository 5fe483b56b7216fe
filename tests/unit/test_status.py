"""`tfray status` at a glance: what a job folder says, read the way the driver leaves it mid-run; --json for
scripts; a job stored at a URI read there; the Jobs API answer parsed out of Ray's output."""

import json
import time

import yaml

from controller.cli.app import main
from controller.cli.exit_codes import EXIT_OK
from controller.machine.record import AttemptRecord, JobRecord
from controller.remote.status import parse_view
from controller.report.metrics import METRICS_FILE, last_rows
from controller.spec import load_spec
from controller.states.text import duration
from controller.store.checkpoints import CheckpointManifest
from controller.store.lease import FileLease
from controller.store.storage import CACHE_DIR_ENV
from protocol.layout import checkpoint_dir
from protocol.seal import seal

SPEC = {"name": "glance", "strategy": "multi_worker_mirrored", "roles": {"chief": {"count": 1},
                                                                         "worker": {"count": 1}},
        "entrypoint": {"function": "m:f"}}


def write_job(folder, storage="runs") -> str:
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "storage_path": storage}))
    return str(path)


def mid_run(job_dir, now: float) -> None:
    """A job folder as a driver leaves it while training: running attempt 2, reports, a checkpoint."""
    job_dir.mkdir(parents=True, exist_ok=True)
    decision = {"event": "decision", "time": now - 300, "task": "worker-0", "cause": "preempted",
                "action": "restart_cluster", "reason": "the node was preempted", "node": "node-abc",
                "error": "Traceback\nNodeDiedError: node-abc"}
    JobRecord(job_dir, "glance").write_attempt(AttemptRecord(attempt=1, state="FAILED", message="old"))
    JobRecord(job_dir, "glance").write_attempt(AttemptRecord.from_json({
        "attempt": 2, "state": "RUNNING", "started_at": now - 3725, "updated_at": now, "restarts": 1,
        "spent": {"max_preemptions": 1}, "limits": {"max_preemptions": 10, "max_task_failures": 3},
        "statuses": {"chief-0": "ALIVE", "worker-0": "ALIVE"},
        "tasks": {"chief-0": {"node": "0123456789abcdef", "address": "10.0.0.1:1", "pid": 5}},
        "events": [decision]}))
    rows = [{"task": task, "step": step, "time": now - 2, "values": {"epoch": 7, "examples_per_s": 351.9,
                                                                    "loss": 0.2512345, "accuracy": 0.93}}
            for step in (60, 70) for task in ("worker-0", "chief-0")]
    (job_dir / METRICS_FILE).write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"task\": \"chief-0\", \"st")
    folder = checkpoint_dir(job_dir, 70)
    folder.mkdir(parents=True)
    (folder / "ckpt.index").write_text("x")
    seal(folder, 70, 7, {})
    CheckpointManifest(job_dir, keep=3).register(folder)


def test_status_answers_at_a_glance(tmp_path, capsys):
    spec_path = write_job(tmp_path)
    mid_run(load_spec(spec_path).job_dir, time.time())
    assert main(["status", spec_path]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "job glance: RUNNING, attempt 2, ran for 1h02m"
    assert lines[1].startswith("  step 70, epoch 7, 352 examples/s;  loss 0.2512  accuracy 0.93  (reported ")
    assert lines[1].endswith(" ago by chief-0)")
    assert lines[2].startswith("  checkpoint: step 70, ") and "ckpt-000000070" in lines[2]
    assert lines[3] == "  tasks: chief-0 ALIVE on 0123456789ab, worker-0 ALIVE"
    assert lines[4] == "  restarts: 1; budgets spent: max_preemptions 1/10, max_task_failures 0/3"
    assert lines[5].startswith("  last failure: ") and "worker-0 on node node-abc: preempted -> restart_cluster" \
        in lines[5] and "NodeDiedError" not in lines[5]


def test_a_running_driver_is_named(tmp_path, capsys):
    spec_path = write_job(tmp_path)
    job_dir = load_spec(spec_path).job_dir
    mid_run(job_dir, time.time())
    lease = FileLease(job_dir)
    lease.acquire("glance")
    try:
        assert main(["status", spec_path]) == EXIT_OK
        out = capsys.readouterr().out
    finally:
        lease.release()
    assert "RUNNING, attempt 2, running for 1h02m" in out and "driver: driver pid " in out


def test_json_says_the_same_for_scripts(tmp_path, capsys):
    spec_path = write_job(tmp_path)
    mid_run(load_spec(spec_path).job_dir, time.time())
    assert main(["status", spec_path, "--json"]) == EXIT_OK
    view = json.loads(capsys.readouterr().out)
    assert view["state"] == "RUNNING" and view["attempt"] == 2 and view["restarts"] == 1
    assert view["training"]["step"] == 70 and view["training"]["epoch"] == 7
    assert view["training"]["metrics"] == {"loss": 0.2512345, "accuracy": 0.93}
    assert view["checkpoint"]["step"] == 70 and view["checkpoint"]["age_s"] < 60
    assert view["budgets"]["max_preemptions"] == {"spent": 1, "limit": 10}
    assert [a["state"] for a in view["attempts"]] == ["FAILED", "RUNNING"]
    assert parse_view("Ray says hello\n" + json.dumps(view, indent=2) + "\nbye\n") == view


def test_a_job_that_has_not_run(tmp_path, capsys):
    assert main(["status", write_job(tmp_path), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["state"] == "NOT_STARTED"


def test_a_job_stored_at_a_uri_is_read_there(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))  # this machine has no mirror of it
    bucket = tmp_path / "bucket"
    mid_run(bucket / "glance", time.time())
    spec_path = write_job(tmp_path, storage=f"file://{bucket}")
    assert main(["status", spec_path, "--json"]) == EXIT_OK
    view = json.loads(capsys.readouterr().out)
    assert view["state"] == "RUNNING" and view["training"]["step"] == 70
    assert view["job_dir"] == f"file://{bucket}/glance"
    assert view["checkpoint"]["path"] == f"file://{bucket}/glance/checkpoints/ckpt-000000070"


def test_only_the_tail_of_a_long_metrics_file_is_read(tmp_path):
    rows = [json.dumps({"task": "chief-0", "step": i, "values": {}}) for i in range(20000)]
    (tmp_path / METRICS_FILE).write_text("\n".join(rows) + "\n")
    tail = last_rows(tmp_path, max_bytes=4096)
    assert tail[-1]["step"] == 19999 and 40 < len(tail) < 100
    assert [r["step"] for r in tail] == list(range(20000 - len(tail), 20000))  # the cut first line skipped


def test_durations_read_like_people_write_them():
    assert [duration(s) for s in (None, -1, 9, 72, 3725, 90061)] == ["?", "0s", "9s", "1m12s", "1h02m", "25h01m"]


def test_a_failure_names_its_task_and_shows_a_progress_bar_as_it_ended_up(tmp_path, capsys):
    """A killed task's output ends in a Keras bar redrawn with backspaces and carriage returns; a record
    written before they were cleaned on the way in still reads clean, and a task's name is said as it is."""
    spec_path = write_job(tmp_path)
    job_dir = load_spec(spec_path).job_dir
    job_dir.mkdir(parents=True)
    bar = "3/10 [========>.....................] - ETA: 2s - loss: 0.7000"
    drawn = "2/10 [=====>........................] - ETA: 3s - loss: 0.8000" + "\b" * 61 + "\r" + bar + "\b" * 61
    now = time.time()
    events = [{"event": "decision", "time": now, "task": "worker-0", "cause": "process_died",
               "action": "restart_cluster", "reason": "retried", "error": "worker-0's process was killed by "
               f"signal 9; last 2 lines of its output:\nEpoch 1/3\n{drawn}"},
              {"event": "decision", "time": now, "task": "chief-0", "cause": "user_error", "action": "fail",
               "reason": "a bug", "error": "Traceback (most recent call last):\nValueError: bad batch on chief-0"}]
    JobRecord(job_dir, "glance").write_attempt(AttemptRecord.from_json({
        "attempt": 1, "state": "FAILED", "started_at": now - 60, "updated_at": now, "events": events}))
    assert main(["status", spec_path, "--verbose"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"\n      {bar}\n" in out
    assert "\n      ValueError: bad batch on chief-0\n" in out
    assert "<task>" not in out and "\b" not in out and "\r" not in out
