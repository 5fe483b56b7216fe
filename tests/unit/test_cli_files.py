"""`tfray logs` reads the task logs in the job folder: every task or one, rotated parts in order, any attempt,
and the driver's console by name; `tfray tensorboard` stops its server however it ends."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from controller.cli.app import main
from controller.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from controller.report.driver_log import DriverLog
from protocol.layout import task_log

SPEC = {"name": "logged", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 2}},
        "entrypoint": {"script": "train.py"}}


def job(tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    for attempt in (1, 2):
        for task in ("worker-0", "worker-1"):
            log = task_log(tmp_path / "runs" / "logged", attempt, task)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"attempt {attempt} {task} last\n")
    rotated = task_log(tmp_path / "runs" / "logged", 2, "worker-1")
    rotated.with_name("worker-1.log.1").write_text("attempt 2 worker-1 first\n")
    return str(spec)


def test_logs_of_the_newest_attempt_every_task_prefixed(tmp_path, capsys):
    assert main(["logs", job(tmp_path)]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == [
        "(worker-0) attempt 2 worker-0 last", "(worker-1) attempt 2 worker-1 first",
        "(worker-1) attempt 2 worker-1 last"]


def test_logs_of_one_task_and_attempt(tmp_path, capsys):
    assert main(["logs", job(tmp_path), "worker-0", "--attempt", "1"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["attempt 1 worker-0 last"]


def test_logs_name_what_is_not_there(tmp_path, capsys):
    spec = job(tmp_path)
    assert main(["logs", spec, "ps-0"]) == EXIT_BAD_INPUT
    assert "has no log of ps-0; it has worker-0, worker-1" in capsys.readouterr().err
    assert main(["logs", spec, "--attempt", "9"]) == EXIT_BAD_INPUT
    assert "no logs of attempt 9" in capsys.readouterr().err


def lease_held_once(asked: list, says_more) -> type:
    """A job lease whose driver, asked the first time, says one more thing (``says_more``) and holds the job;
    asked again, it is gone. Each ask is counted in ``asked``."""
    class Lease:
        def __init__(self, job_dir):
            pass

        def holder(self):
            asked.append(1)
            if len(asked) == 1:
                says_more()
                return "the driver"
            return None

    return Lease


def test_follow_prints_new_lines_until_the_driver_is_gone_and_the_logs_stay_quiet(tmp_path, monkeypatch, capsys):
    from controller import settings
    from controller.cli import files

    spec = job(tmp_path)
    log = task_log(tmp_path / "runs" / "logged", 2, "worker-0")
    monkeypatch.setattr(settings, "LOGS_FOLLOW_POLL_S", 0.01)
    monkeypatch.setattr(settings, "LOGS_FOLLOW_QUIET_S", 0.05)
    asked = []

    def one_more_line():
        with open(log, "a") as f:
            f.write("attempt 2 worker-0 later\n")

    monkeypatch.setattr(files, "FileLease", lease_held_once(asked, one_more_line))
    assert main(["logs", spec, "--follow"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[-1] == "(worker-0) attempt 2 worker-0 later"
    assert len(asked) >= 3  # it went on asking while the new line was recent


def driver_said(tmp_path, attempt: int, *lines: str) -> DriverLog:
    """The driver's console of an attempt, written as a run writes it; left open, as a running driver's is."""
    log = DriverLog()
    log.open(tmp_path / "runs" / "logged", attempt)
    for line in lines:
        log.line(line)
    return log


def test_the_drivers_console_is_asked_for_by_name_and_kept_out_of_every_tasks(tmp_path, capsys):
    spec = job(tmp_path)
    driver_said(tmp_path, 2, "tfray: job logged attempt 2: 2 tasks; starting fresh", "progress [worker-0] step 4")
    assert main(["logs", spec, "driver"]) == EXIT_OK
    printed = capsys.readouterr().out.splitlines()
    assert [line[20:] for line in printed] == ["tfray: job logged attempt 2: 2 tasks; starting fresh",
                                               "progress [worker-0] step 4"]
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in printed)
    assert main(["logs", spec]) == EXIT_OK
    assert "driver" not in capsys.readouterr().out
    assert main(["logs", spec, "ps-0"]) == EXIT_BAD_INPUT
    assert "it has driver, worker-0, worker-1" in capsys.readouterr().err
    assert main(["logs", spec, "driver", "--attempt", "1"]) == EXIT_BAD_INPUT  # attempt 1 kept no console


def test_an_attempt_whose_tasks_never_wrote_points_at_the_drivers_console(tmp_path, capsys):
    spec = job(tmp_path)
    driver_said(tmp_path, 3, "tfray: job logged FAILED: no room")
    assert main(["logs", spec]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out == "" and f"`tfray logs {spec} driver` shows what the driver printed" in err


def test_follow_prints_the_drivers_new_lines_as_it_says_them(tmp_path, monkeypatch, capsys):
    from controller import settings
    from controller.cli import files

    spec = job(tmp_path)
    log = driver_said(tmp_path, 2, "progress [worker-0] step 4")
    monkeypatch.setattr(settings, "LOGS_FOLLOW_POLL_S", 0.01)
    monkeypatch.setattr(settings, "LOGS_FOLLOW_QUIET_S", 0.05)
    asked = []
    monkeypatch.setattr(files, "FileLease", lease_held_once(asked, lambda: log.line("progress [worker-0] step 5")))
    assert main(["logs", spec, "driver", "--follow"]) == EXIT_OK
    assert [line[20:] for line in capsys.readouterr().out.splitlines()] == [
        "progress [worker-0] step 4", "progress [worker-0] step 5"]


def tensorboards_of(job_dir) -> list[int]:
    """The TensorBoard servers (by pid) serving ``job_dir``, found in /proc by their command line; a zombie
    (ended, not yet reaped) is not serving."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError, ValueError):
            continue
        if b"tensorboard.main" in argv and str(job_dir).encode() in argv and state != "Z":
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_tensorboard_stops_its_server_however_it_is_stopped(tmp_path, signum):
    """Not only Ctrl-C: a SIGTERM to `tfray tensorboard` (a supervisor, `timeout`, `kill`), a SIGHUP (its terminal
    closed), even a SIGKILL, stops the server too."""
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("finds the server through /proc")
    spec, job_dir = job(tmp_path), tmp_path / "runs" / "logged"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(tmp_path / "out.txt", "wb") as out:  # a file, not a pipe: an orphaned server would hold a pipe open
        tfray = subprocess.Popen([sys.executable, "-m", "controller", "tensorboard", spec, "--port", str(port)],
                                 cwd=Path(__file__).resolve().parents[2], stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # the signal goes to tfray alone, as from `kill`
    try:
        deadline = time.monotonic() + 10
        while not tensorboards_of(job_dir):
            assert tfray.poll() is None, (tmp_path / "out.txt").read_text()
            assert time.monotonic() < deadline, "no TensorBoard server started within 10 s"
            time.sleep(0.05)
        tfray.send_signal(signum)
        tfray.wait(10)
        deadline = time.monotonic() + 10
        while tensorboards_of(job_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not tensorboards_of(job_dir), "the TensorBoard server outlived `tfray tensorboard`"
        assert "Traceback" not in (tmp_path / "out.txt").read_text()
    finally:
        if tfray.poll() is None:
            tfray.kill()
        for pid in tensorboards_of(job_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
