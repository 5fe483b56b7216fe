"""The driver's console is kept in the attempt's ``driver.log``: every line `tfray run` prints about the run
(warnings, ``tfray:`` lines, progress, the console's task lines, the summary), stamped, on disk as it is said;
a run through the API keeps the ``tfray`` logger's lines. (The console was kept nowhere: once the terminal
closed, the run's story was gone.)"""

import io
import logging
import re
import signal

import pytest
import yaml

from controller import api
from controller.cli.app import main
from controller.cli.exit_codes import EXIT_OK
from controller.report.driver_log import DriverLog
from controller.spec import load_spec
from controller.states.result import JobResult
from controller.states.state import JobState
from protocol.layout import driver_log

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
SPEC = {"name": "kept", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 2}},
        "entrypoint": {"script": "train.py"}, "storage_path": "runs", "faults": [
            {"task": "worker-1", "action": "kill", "at_step": 5}]}  # train.py reports no step: a warning


def unstamped(path) -> list[str]:
    lines = path.read_text().splitlines()
    assert all(re.match(STAMP + "( |$)", line) for line in lines), lines
    return [line[20:] for line in lines]


def test_lines_said_before_the_attempt_is_known_come_first_and_each_is_on_disk_as_it_is_said(tmp_path):
    times = iter([0.0, 60.0, 120.0])
    log = DriverLog(clock=lambda: next(times))
    log.line("warning: before the lease")
    log.open(tmp_path, 3)
    log.line("progress [chief-0] step 1\n  two lines")
    path = driver_log(tmp_path, 3)
    assert path == tmp_path / "logs" / "attempt-3" / "driver.log"
    # Read while the log is still open: what a killed driver leaves behind.
    stamps = [line[:19] for line in path.read_text().splitlines()]
    assert unstamped(path) == ["warning: before the lease", "progress [chief-0] step 1", "  two lines"]
    assert stamps[0] != stamps[1] == stamps[2]  # each line keeps the time it was said, held or not
    log.close()
    log.line("after the end")
    assert unstamped(path)[-1] == "  two lines"


def test_a_run_that_never_gets_an_attempt_writes_nothing(tmp_path):
    log = DriverLog()
    log.line("job kept already SUCCEEDED; nothing to train")
    log.close()
    log.open(tmp_path, 1)
    assert not (tmp_path / "logs").exists()


def test_a_log_that_cannot_be_written_is_said_once_and_the_run_goes_on(tmp_path, capsys):
    not_a_folder = tmp_path / "job"
    not_a_folder.write_text("")  # the job folder's place is a file: its logs/ cannot be made
    log = DriverLog()
    log.line("held")
    log.open(not_a_folder, 1)
    log.line("after")
    log.close()
    assert capsys.readouterr().err.count("warning: the driver's console is no longer kept in ") == 1


def test_the_tee_prints_at_once_and_keeps_whole_lines(tmp_path):
    log = DriverLog()
    log.open(tmp_path, 1)
    terminal = io.StringIO()
    out = log.tee(terminal)
    print("(worker-0) half", end="", file=out)
    assert terminal.getvalue() == "(worker-0) half" and unstamped(log.path) == []
    print(" and the rest", file=out)
    print("\nsummary", file=out)
    assert terminal.getvalue() == "(worker-0) half and the rest\n\nsummary\n"
    assert unstamped(log.path) == ["(worker-0) half and the rest", "", "summary"]


def test_keeping_a_logger_leaves_its_output_alone_and_ends_with_the_run(tmp_path, capsys, monkeypatch):
    logger = logging.getLogger("tfray.test-driver-log")
    monkeypatch.setattr(logger, "propagate", False)  # a logger nobody configured (pytest's handlers are above)
    log = DriverLog()
    with log.keeping(logger):
        log.open(tmp_path, 1)
        logger.warning("restarting the cluster (restart %d)", 1)
    logger.warning("after the run")
    assert unstamped(log.path) == ["tfray: restarting the cluster (restart 1)"]
    # Not a handler: a caller that configured no logging still sees warnings on stderr (the last resort).
    assert "restarting the cluster (restart 1)" in capsys.readouterr().err


@pytest.fixture
def job(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "train.py").write_text("print('hi')\n")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    monkeypatch.setattr(api, "init_ray", lambda *a, **k: None)
    monkeypatch.setenv("RAY_COLOR_PREFIX", "1")  # the terminal's hooks change these; put back afterwards
    previous = signal.getsignal(signal.SIGTERM)
    yield str(path)
    signal.signal(signal.SIGTERM, previous)


class Progress:
    def line(self) -> str:
        return "[worker-0] step 4  elapsed 2s"


def fake_run_job(spec, sys_path, on_progress=None, on_output=None, on_attempt=None, network=None):
    """What the controller does with the callbacks it is given: the attempt, a line, progress, output."""
    on_attempt(1)
    logging.getLogger("tfray").warning("restarting the cluster (restart 1) from the beginning")
    if on_progress:
        on_progress(Progress())
    if on_output:
        on_output("worker-0", ["epoch 1/2 - loss 0.41"])
    return JobResult(state=JobState.SUCCEEDED, message="done", job_dir=str(spec.job_dir), attempt=1)


def test_tfray_run_keeps_everything_it_prints_in_the_attempts_driver_log(job, monkeypatch, capsys):
    monkeypatch.setattr(api, "run_job", fake_run_job)
    assert main(["run", job]) == EXIT_OK
    out, err = capsys.readouterr()
    kept = unstamped(driver_log(load_spec(job).job_dir, 1))
    assert "job kept SUCCEEDED (attempt 1, 0 cluster restart(s)): done" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings  # said before the attempt was known: kept first
    assert kept == [*warnings, "tfray: restarting the cluster (restart 1) from the beginning", *out.splitlines()]
    assert out.splitlines()[:2] == ["progress [worker-0] step 4  elapsed 2s", "(worker-0) epoch 1/2 - loss 0.41"]


def test_a_run_through_the_api_keeps_the_tfray_loggers_lines(job, monkeypatch, caplog):
    monkeypatch.setattr(api, "run_job", fake_run_job)
    caplog.set_level("WARNING", logger="tfray")
    assert api.run(job).state is JobState.SUCCEEDED
    kept = unstamped(driver_log(load_spec(job).job_dir, 1))
    assert kept == [f"tfray: {r.getMessage()}" for r in caplog.records]
    assert kept[-1] == "tfray: restarting the cluster (restart 1) from the beginning"


def test_the_controller_opens_the_attempts_driver_log_once_it_holds_the_job(tmp_path, caplog):
    """A second attempt of the job: its lines go to attempt-2's driver.log, the first attempt's stays as it was."""
    from tests.unit import fakes

    caplog.set_level("INFO", logger="tfray")
    spec = fakes.make_spec(tmp_path)
    for attempt in (1, 2):
        log = DriverLog()
        with log.keeping(logging.getLogger("tfray")):
            controller = fakes.controller_for(spec, on_attempt=lambda number, log=log: log.open(spec.job_dir, number))
            fakes.start_running(controller)
            controller.stop("the test is done")
        assert log.path == driver_log(spec.job_dir, attempt)
        kept = unstamped(log.path)
        assert kept[0] == f"tfray: job job attempt {attempt}: 3 tasks; starting fresh"
        assert kept[-1] == "tfray: job job STOPPED: the test is done"
    assert unstamped(driver_log(spec.job_dir, 1))[0] == "tfray: job job attempt 1: 3 tasks; starting fresh"
