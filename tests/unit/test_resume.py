"""A re-run says what it will do before Ray starts: a finished job trains nothing, a changed spec is named,
``--fresh`` moves the old job folder aside; the API does the same as the CLI."""

import pytest
import yaml

from controller import api
from controller.cli.app import main
from controller.cli.exit_codes import EXIT_OK
from controller.machine.record import AttemptRecord, JobRecord
from controller.machine.resume import already_succeeded, drift, fingerprint, move_aside
from controller.ray.actors import actor_name
from controller.spec import load_spec
from protocol.wire import TaskKey

SPEC = {"name": "again", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 2}},
        "entrypoint": {"script": "train.py", "args": {"epochs": 3}}}


def write(tmp_path, **changes) -> str:
    (tmp_path / "train.py").write_text("print('hi')\n")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return str(path)


def ended(tmp_path, state: str, spec_path: str) -> None:
    spec = load_spec(spec_path)
    spec.job_dir.mkdir(parents=True, exist_ok=True)
    JobRecord(spec.job_dir, spec.name).write_attempt(
        AttemptRecord(attempt=1, state=state, spec=fingerprint(spec), started_at=1.0))


@pytest.fixture
def no_ray(monkeypatch):
    monkeypatch.setattr("controller.api.init_ray", lambda *a, **k: pytest.fail("Ray would have started"))


def test_a_succeeded_job_trains_nothing_and_says_so(tmp_path, monkeypatch, capsys, no_ray):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path)
    ended(tmp_path, "SUCCEEDED", path)
    assert main(["run", path]) == EXIT_OK
    out = capsys.readouterr().out
    assert "job again already SUCCEEDED (attempt 1" in out and "--fresh" in out


def test_the_api_returns_the_finished_result_without_ray(tmp_path, monkeypatch, no_ray):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path)
    ended(tmp_path, "SUCCEEDED", path)
    result = api.run(path)
    assert result.state == "SUCCEEDED" and result.attempt == 0 and "nothing to train" in result.message


def test_fresh_moves_the_old_folder_aside_and_keeps_it(tmp_path):
    path = write(tmp_path)
    ended(tmp_path, "SUCCEEDED", path)
    spec = load_spec(path)
    aside = move_aside(spec)
    assert not spec.job_dir.exists() and (aside / "job.json").exists() and aside.name.startswith("again.old-")
    assert move_aside(spec) is None  # nothing to move the second time
    done, notes = api.ready_to_run(spec, fresh=True)
    assert done is None and notes == []


def test_a_failed_job_resumes_without_a_note(tmp_path):
    path = write(tmp_path)
    ended(tmp_path, "FAILED", path)
    spec = load_spec(path)
    assert already_succeeded(spec) is None and drift(spec) is None
    assert api.ready_to_run(spec, fresh=False) == (None, [])


def test_a_changed_spec_is_named_before_it_resumes(tmp_path):
    ended(tmp_path, "FAILED", write(tmp_path))
    spec = load_spec(write(tmp_path, roles={"worker": {"count": 3}}, entrypoint={"script": "train.py"}))
    note = drift(spec)
    assert "roles {'worker': 2} -> {'worker': 3}" in note and "args {'epochs': 3} -> {}" in note
    assert "resumes from that attempt's checkpoints" in note


def test_the_fingerprint_survives_the_record(tmp_path):
    path = write(tmp_path)
    ended(tmp_path, "FAILED", path)
    spec = load_spec(path)
    (read,) = JobRecord(spec.job_dir, spec.name).attempts()
    assert read.spec == fingerprint(spec) and read.started_at == 1.0


def test_actor_names_say_whose_task_they_run():
    key = TaskKey("worker", 1)
    assert actor_name("digits", key, 1) == "tfray:digits:worker-1"
    assert actor_name("digits", key, 3) == "tfray:digits:worker-1#3"
