"""`tfray run` and ``controller.run`` are one run sequence: the same checks and warnings in the same order,
then Ray started and the job run the same way; the CLI only adds a terminal's hooks. (They were two copies,
and the warning about what a local run exposes was the CLI's alone.)"""

import ast
import signal
from pathlib import Path

import pytest
import yaml

from controller import api
from controller.cli.app import main
from controller.cli.exit_codes import EXIT_FAILED
from controller.machine.record import AttemptRecord, JobRecord
from controller.machine.resume import fingerprint
from controller.spec import exposure_warning, load_spec
from controller.states.result import JobResult
from controller.states.state import JobState

REPO = Path(__file__).resolve().parents[2]
SPEC = {"name": "same", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 2}},
        "entrypoint": {"script": "train.py"}, "storage_path": "runs"}
FAULTS = ["worker-1:kill@step=5"]  # train.py never reports a step: a warning that it will not fire


@pytest.fixture
def job(tmp_path, monkeypatch) -> str:
    """A spec that earns every kind of warning: a fault that cannot fire, a spec changed since the attempt
    before (which failed, so there is something to run), and a local run's exposure."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "train.py").write_text("print('hi')\n")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "roles": {"worker": {"count": 3}}}))
    before = load_spec(path)
    before.job_dir.mkdir(parents=True)
    JobRecord(before.job_dir, before.name).write_attempt(
        AttemptRecord(attempt=1, state="FAILED", spec=fingerprint(before), started_at=1.0))
    path.write_text(yaml.safe_dump(SPEC))
    return str(path)


@pytest.fixture
def asked(monkeypatch):
    """Ray and the controller stood in for: what each path asked of them, in order."""
    calls = []
    monkeypatch.setattr(api, "init_ray", lambda *a, **k: calls.append(("init_ray", a, k)))

    def run_job(spec, sys_path, on_progress=None, on_output=None, on_attempt=None, network=None):
        calls.append(("run_job", spec.name, tuple(sys_path)))
        return JobResult(state=JobState.FAILED, message="it failed", job_dir=str(spec.job_dir), attempt=2)

    monkeypatch.setattr(api, "run_job", run_job)
    monkeypatch.setenv("RAY_COLOR_PREFIX", "1")  # the terminal's hooks change these; put back afterwards
    previous = signal.getsignal(signal.SIGTERM)
    yield calls
    signal.signal(signal.SIGTERM, previous)


def test_the_cli_and_the_api_warn_alike_and_run_alike(job, asked, capsys, caplog):
    assert main(["run", job, "--fault", *FAULTS]) == EXIT_FAILED
    out, err = capsys.readouterr()
    cli_warnings = [line.removeprefix("warning: ") for line in err.splitlines() if line.startswith("warning: ")]
    cli_asked = list(asked)
    assert "job same FAILED (attempt 2" in out  # the terminal's summary

    asked.clear()
    caplog.clear()
    caplog.set_level("WARNING", logger="tfray")
    assert api.run(job, faults=FAULTS).state is JobState.FAILED
    api_warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    api_asked = list(asked)

    assert cli_warnings == api_warnings
    assert [any(words in w for w in api_warnings) for words in ("will not fire", "resumes from")] == [True, True]
    assert exposure_warning(load_spec(job), joining_cluster=False) == api_warnings[-1]
    assert cli_asked == api_asked and [name for name, *_ in api_asked] == ["init_ray", "run_job"]


def test_joining_a_cluster_warns_about_exposure_on_neither_path(job, asked, capsys, caplog, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    caplog.set_level("WARNING", logger="tfray")
    main(["run", job])
    api.run(job)
    assert "0.0.0.0" not in capsys.readouterr().err and not any("0.0.0.0" in r.getMessage() for r in caplog.records)


def test_the_cli_runs_a_job_only_through_the_api_sequence():
    """A CLI that composes the steps itself again is how the two drift; it may only call ``api.run``."""
    steps = {"checked", "ready_to_run", "exposure_warning", "init_ray", "run_job", "finished_result"}
    for path in sorted((REPO / "controller" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        named = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        named |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        named |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        allowed = {"checked"} if path.name == "app.py" else set()  # validate and dry-run check, and stop there
        itself = sorted(named & (steps - allowed))
        assert not itself, f"{path.relative_to(REPO)} runs steps of the run sequence itself: {itself}"


def test_tfray_run_shows_the_chiefs_progress_bar_and_no_other_tasks(job, asked, capsys, monkeypatch):
    """The job has no chief task: worker-0's bar is the job's, and worker-1's stays in its log file."""
    bar = ["Epoch 1/1", "2/2 [==============================] - 1s 9ms/step - loss: 0.5000"]

    def run_job(spec, sys_path, on_progress=None, on_output=None, on_attempt=None, network=None):
        for task in ("worker-0", "worker-1"):
            on_output(task, bar)
        return JobResult(state=JobState.SUCCEEDED, message="done", job_dir=str(spec.job_dir), attempt=2)

    monkeypatch.setattr(api, "run_job", run_job)
    main(["run", job])
    out = capsys.readouterr().out
    assert [f"(worker-0) {line}" for line in bar] == [line for line in out.splitlines() if "Epoch" in line
                                                      or "step - loss" in line]
