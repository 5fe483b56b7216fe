"""`tfray jobs`: every job under a storage path, one line each, read the way `tfray status` reads one. The job
folders are written by the controller's own writers (the attempt's record, the metrics collector, the checkpoint
seal and manifest, the driver's lease); a torn record, a folder that is no job and a stray file are in the way."""

import dataclasses
import json
import time

import pytest
import yaml

from controller.cli.app import main
from controller.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from controller.machine.attempt import Attempt
from controller.machine.record import JobRecord
from controller.machine.resume import fingerprint
from controller.plan.tasks import plan
from controller.report.metrics import MetricsCollector
from controller.spec import parse_spec
from controller.states.state import JobState
from controller.states.task_table import TaskTable
from controller.status.jobs import job_rows, render_jobs
from controller.store.checkpoints import CheckpointManifest
from controller.store.lease import FileLease
from protocol.layout import checkpoint_dir
from protocol.seal import seal
from protocol.wire import MetricsReport, TaskKey

CHIEF, W0, W1 = TaskKey("chief", 0), TaskKey("worker", 0), TaskKey("worker", 1)
MWMS = {"chief": {"count": 1}, "worker": {"count": 2}}


def spec_of(storage, name: str, roles: dict, args: dict | None = None):
    return parse_spec({"name": name, "strategy": "multi_worker_mirrored", "roles": roles, "storage_path": str(storage),
                       "entrypoint": {"function": "m:f", "args": args or {}}})


def record(spec, attempts: int, state: JobState, started_at: float, updated_at: float) -> None:
    """The job's record as its drivers wrote it: earlier attempts FAILED, the last one in ``state``."""
    for number in range(1, attempts + 1):
        attempt = Attempt(spec.failure.limits(), fingerprint(spec))
        attempt.begin(JobRecord(spec.job_dir, spec.name))
        entry = attempt.snapshot(state if number == attempts else JobState.FAILED, "", TaskTable(plan(spec)))
        JobRecord(spec.job_dir, spec.name).write_attempt(
            dataclasses.replace(entry, started_at=started_at, updated_at=updated_at))


def report(spec, attempt: int, at: float, chief, reports: list) -> None:
    collector = MetricsCollector(spec.job_dir, spec.name, attempt, chief=str(chief), clock=lambda: at)
    collector.handle(reports)
    collector.close()


def checkpoint(spec, step: int, epoch: int) -> None:
    folder = checkpoint_dir(spec.job_dir, step)
    folder.mkdir(parents=True)
    (folder / "ckpt.index").write_text("x")
    seal(folder, step, epoch, {})
    CheckpointManifest(spec.job_dir, keep=3).register(folder)


@pytest.fixture
def storage(tmp_path):
    """runs/: a job that succeeded, one running (its driver holds the lease), one whose driver is gone (workers
    only, so worker-0 is its chief, and a custom loop that does not say its total: the spec's args do), a torn
    record, a folder that is no job and a stray file. Yields (storage, now): the moment the table is read at."""
    runs = tmp_path / "runs"
    now = time.time() + 7510  # every checkpoint (sealed just now) is 2h05m old then
    done = spec_of(runs, "digits-mwms", MWMS, {"epochs": 15})
    record(done, 1, JobState.SUCCEEDED, now - 7700, now - 7500)
    report(done, 1, now - 7500, CHIEF, [MetricsReport(W0, 510, {"epoch": 15}, total_epochs=15),
                                        MetricsReport(CHIEF, 510, {"epoch": 15, "loss": 0.1}, total_epochs=15),
                                        # what the digits example reports after fit: no epoch in it
                                        MetricsReport(CHIEF, 510, {"final_val_accuracy": 0.98})])
    checkpoint(done, 510, 15)
    running = spec_of(runs, "resnet", MWMS)
    record(running, 2, JobState.RUNNING, now - 600, now - 40)
    report(running, 2, now - 3, CHIEF, [MetricsReport(CHIEF, 140, {"epoch": 7, "loss": 0.4}, total_epochs=10)])
    checkpoint(running, 140, 7)
    lost = spec_of(runs, "workers-only", {"worker": {"count": 2}}, {"epochs": 5})
    record(lost, 1, JobState.RUNNING, now - 900, now - 100)
    report(lost, 1, now - 100, W0, [MetricsReport(W0, 30, {"epoch": 3}), MetricsReport(W1, 31, {"epoch": 3})])
    (runs / "torn").mkdir()
    (runs / "torn" / "job.json").write_text('{"name": "torn", "attem')
    (runs / "scratch").mkdir()
    (runs / "notes.txt").write_text("not a job")
    lease = FileLease(running.job_dir)
    lease.acquire("resnet")
    yield runs, now
    lease.release()


def test_the_table_lists_every_job_under_the_storage_path(storage):
    runs, now = storage
    lines = render_jobs(job_rows(runs, now=now)).splitlines()
    assert lines[:5] == [
        "JOB           STATE       ATTEMPT  STEP  EPOCH  UPDATED    CHECKPOINT",
        "digits-mwms   SUCCEEDED   1        510   15/15  2h05m ago  step 510, 2h05m old",
        "resnet        RUNNING     2        140   7/10   3s ago     step 140, 2h05m old",
        "torn          UNREADABLE  -        -     -      -          -",
        "workers-only  RUNNING*    1        30    3/5    1m40s ago  -",
    ]
    assert lines[5].startswith("* no driver holds the job's lease here: ")
    assert lines[6].startswith(f"torn: {runs / 'torn' / 'job.json'} is not a job record (")
    assert len(lines) == 7


def test_json_says_the_same_for_scripts(storage, capsys):
    runs, _ = storage
    assert main(["jobs", str(runs), "--json"]) == EXIT_OK
    answer = json.loads(capsys.readouterr().out)
    assert answer["storage_path"] == str(runs)
    jobs = {row["job"]: row for row in answer["jobs"]}
    assert list(jobs) == ["digits-mwms", "resnet", "torn", "workers-only"]
    assert {name: row["state"] for name, row in jobs.items()} == {
        "digits-mwms": "SUCCEEDED", "resnet": "RUNNING", "torn": "UNREADABLE", "workers-only": "RUNNING"}
    resnet = jobs["resnet"]
    assert (resnet["attempt"], resnet["step"], resnet["epoch"], resnet["total_epochs"]) == (2, 140, 7, 10)
    assert resnet["driver"].startswith("driver pid ") and jobs["workers-only"]["driver"] is None
    assert resnet["checkpoint"]["step"] == 140 and resnet["checkpoint"]["path"].endswith("ckpt-000000140")
    assert resnet["job_dir"] == str(runs / "resnet") and "is not a job record" in jobs["torn"]["error"]
    assert jobs["workers-only"]["checkpoint"] is None


def test_a_spec_file_lists_its_storage_path_and_status_agrees(storage, capsys):
    runs, _ = storage
    spec_path = runs.parent / "resnet.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "resnet", "strategy": "multi_worker_mirrored", "roles": MWMS,
                                         "entrypoint": {"function": "m:f"}, "storage_path": "runs"}))
    assert main(["jobs", str(spec_path)]) == EXIT_OK
    listed = capsys.readouterr().out
    assert listed.startswith("JOB ") and "\nresnet        RUNNING     2        140   7/10   " in listed
    assert main(["status", str(spec_path)]) == EXIT_OK
    assert "step 140, epoch 7/10;" in capsys.readouterr().out


def test_a_folder_with_no_jobs_says_so(tmp_path, capsys):
    (tmp_path / "scratch").mkdir()
    assert main(["jobs", str(tmp_path)]) == EXIT_OK
    assert capsys.readouterr().out == f"no jobs in {tmp_path}\n"
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "new", "strategy": "multi_worker_mirrored", "roles": MWMS,
                                         "entrypoint": {"function": "m:f"}, "storage_path": "not-yet"}))
    assert main(["jobs", str(spec_path)]) == EXIT_OK
    assert capsys.readouterr().out.startswith(f"no jobs in {tmp_path / 'not-yet'} (the folder is not made yet")


def test_a_job_folder_given_lists_that_job(storage, capsys):
    runs, _ = storage
    assert main(["jobs", str(runs / "resnet"), "--json"]) == EXIT_OK
    assert [row["job"] for row in json.loads(capsys.readouterr().out)["jobs"]] == ["resnet"]


@pytest.mark.parametrize("given, said", [
    ("missing", "missing does not exist: give a storage folder or a job spec file"),
    ("gs://bucket/runs", "gs://bucket/runs is a URI: `tfray jobs` lists a folder on this machine"),
    ("list.yaml", "list.yaml"),
])
def test_what_cannot_be_listed_exits_2_naming_it(tmp_path, monkeypatch, capsys, given, said):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.yaml").write_text("- not\n- a mapping\n")
    assert main(["jobs", given]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and said in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
