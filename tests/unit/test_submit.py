"""`tfray submit` / `tfray stop` against a fake Jobs API client: what is sent, exit codes, messages.

The real Jobs API (token auth on, a real job) is tests/integration/test_cluster_jobs.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
from pathlib import Path

import pytest
from ray.exceptions import AuthenticationError
from ray.job_submission import JobStatus

from controller import settings
from controller.cli import exit_codes as codes
from controller.cli.app import main
from controller.remote import jobs_api as remote
from controller.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
SPEC = "cluster_configs/jobs/digits_mwms_cluster.yaml"


class FakeClient:
    """The JobSubmissionClient calls `tfray submit` makes, with scripted statuses and log chunks."""

    _address = "http://fake:8265"

    def __init__(self, statuses=(JobStatus.SUCCEEDED,), logs=("training\n",), stall_s: float = 0.0):
        self.statuses = list(statuses)
        self.logs = list(logs)  # signal.SIGINT among them: Ctrl-C at that point
        self.stall_s = stall_s
        self.submitted: dict = {}
        self.stopped: list[str] = []

    def submit_job(self, **kwargs):
        self.submitted = kwargs
        return kwargs.get("submission_id") or "raysubmit_fake"

    async def tail_job_logs(self, submission_id):
        for chunk in self.logs:
            if chunk is signal.SIGINT:  # Ctrl-C in the middle of the stream, as the terminal sends it
                os.kill(os.getpid(), signal.SIGINT)
                await asyncio.sleep(5)
            yield chunk
        await asyncio.sleep(self.stall_s)

    def get_job_status(self, submission_id):
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def stop_job(self, submission_id):
        self.stopped.append(submission_id)
        return True


@pytest.fixture
def fake(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(remote, "connect", lambda address: client)
    monkeypatch.setattr(settings, "STATUS_POLL_S", 0.01)
    monkeypatch.chdir(REPO)
    return client


def test_submit_ships_the_working_folder_and_runs_the_controller_on_the_spec(fake, capsys):
    assert main(["submit", SPEC]) == codes.EXIT_OK
    assert shlex.split(fake.submitted["entrypoint"]) == ["python", "-m", "controller", "run", SPEC]
    runtime_env = fake.submitted["runtime_env"]
    assert runtime_env["working_dir"] == str(REPO) and ".venv" in runtime_env["excludes"]
    assert fake.submitted["metadata"] == {"tfray_job": "digits-mwms-cluster"}
    out = capsys.readouterr().out
    assert "as raysubmit_fake to http://fake:8265" in out and "tfray stop raysubmit_fake" in out


@pytest.mark.parametrize("status, code", [(JobStatus.SUCCEEDED, codes.EXIT_OK), (JobStatus.FAILED, codes.EXIT_FAILED),
                                          (JobStatus.STOPPED, codes.EXIT_STOPPED)])
def test_follow_streams_the_logs_and_exits_with_the_jobs_status(fake, capsys, status, code):
    fake.statuses = [JobStatus.RUNNING, status]
    assert main(["submit", SPEC, "--follow", "--submission-id", "mine"]) == code
    out = capsys.readouterr().out
    assert "training\n" in out and f"job mine {status.value}" in out
    assert fake.submitted["submission_id"] == "mine"


def test_follow_gives_up_after_the_timeout_and_leaves_the_job_running(fake, capsys):
    fake.stall_s, fake.statuses = 30.0, [JobStatus.RUNNING]
    assert main(["submit", SPEC, "--follow", "--timeout", "0.3"]) == codes.EXIT_STILL_RUNNING
    assert "still running after --timeout 0.3s" in capsys.readouterr().out
    assert not fake.stopped


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt here, as in a terminal, even where the suite runs in the background (a
    shell starts it with SIGINT ignored): the Ctrl-C the fake sends must arrive, or the follow waits forever."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_on_follow_lets_go_of_the_job_with_its_own_exit_code(fake, capsys, ctrl_c_raises):
    fake.logs, fake.statuses = ["epoch 1\n", signal.SIGINT, "never shown\n"], [JobStatus.RUNNING]
    code = main(["submit", SPEC, "--follow"])
    assert code == codes.EXIT_DETACHED and code != codes.EXIT_STOPPED  # "I let go" is not "the job was stopped"
    out = capsys.readouterr().out
    assert "epoch 1" in out and "never shown" not in out
    assert "stopped following" in out and "tfray stop raysubmit_fake" in out
    assert not fake.stopped  # the job goes on


def test_every_exit_code_is_distinct_and_in_the_help(capsys):
    meaning = {"succeeded": codes.EXIT_OK, "failed": codes.EXIT_FAILED, "invalid": codes.EXIT_BAD_INPUT,
             "you stopped following": codes.EXIT_DETACHED, "after --timeout": codes.EXIT_STILL_RUNNING,
             "the job was stopped": codes.EXIT_STOPPED}
    assert len(set(meaning.values())) == len(meaning)
    with pytest.raises(SystemExit):
        main(["submit", "--help"])
    lines = capsys.readouterr().out.splitlines()
    for words, code in meaning.items():
        assert any(line.split()[:1] == [str(code)] and words in line for line in lines), (words, code)
    readme = (REPO / "README.md").read_text()
    for code in meaning.values():
        assert f"| {code} |" in readme, f"README's exit-code table lacks {code}"


def test_follow_leaves_out_rays_autoscaler_events_and_keeps_the_jobs_own_lines(fake, capsys):
    # As Ray's driver prints them: coloured on a terminal, plain in a file; a line may be cut between chunks.
    fake.logs = ["\x1b[36m(autoscaler +2s)\x1b[0m Tip: use `ray status` to view detailed cluster status.\n"
                 "(autoscaler +3s) Error: No available node types can fulfill resource request {'on_demand': 1.0}\n",
                 "job digits attempt 1: 3 tasks; starting fresh\n(autosc",
                 "aler +9s) Adding 2 node(s) of type cpu_spot.\n"
                 "progress epoch 1/15 (autoscaler +1s) is only text here\nlast line without newline"]
    fake.statuses = [JobStatus.SUCCEEDED]
    assert main(["submit", SPEC, "--follow"]) == codes.EXIT_OK
    captured = capsys.readouterr()
    assert "autoscaler +2s" not in captured.out and "on_demand" not in captured.out and "Adding" not in captured.out
    assert ("job digits attempt 1: 3 tasks; starting fresh\nprogress epoch 1/15 (autoscaler +1s) is only text here\n"
            "last line without newline") in captured.out
    assert captured.err.count("autoscaler events are left out") == 1 and "ray job logs raysubmit_fake" in captured.err


def test_a_spec_outside_the_working_folder_is_refused_before_anything_is_sent(fake, tmp_path, capsys):
    (tmp_path / "job.yaml").write_text((REPO / SPEC).read_text())
    assert main(["submit", str(tmp_path / "job.yaml"), "--working-dir", str(REPO)]) == codes.EXIT_BAD_INPUT
    assert "outside the working folder" in capsys.readouterr().err and not fake.submitted


def test_a_bad_spec_fails_on_the_client(fake, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("name: x\nstrategy: multi_worker_mirrored\nroles: {chief: {count: 2}}\n"
                                       "entrypoint: {function: 'm:f'}\n")
    assert main(["submit", str(tmp_path / "bad.yaml"), "--working-dir", str(tmp_path)]) == codes.EXIT_BAD_INPUT
    assert "at most one chief" in capsys.readouterr().err and not fake.submitted


def test_a_runtime_env_ray_would_refuse_fails_on_the_client(fake, tmp_path, capsys):
    (tmp_path / "m.py").write_text("def f(ctx):\n    pass\n")
    (tmp_path / "job.yaml").write_text("name: x\nstrategy: one_device\nroles: {chief: {count: 1}}\n"
                                       "entrypoint: {function: 'm:f'}\nruntime_env: {working_dir: gone}\n")
    assert main(["submit", str(tmp_path / "job.yaml"), "--working-dir", str(tmp_path)]) == codes.EXIT_BAD_INPUT
    assert "runtime_env.working_dir: 'gone' does not exist" in capsys.readouterr().err and not fake.submitted


def test_a_relative_storage_path_is_warned_about(fake, capsys):
    assert main(["submit", "cluster_configs/jobs/digits_mwms.yaml"]) == codes.EXIT_OK
    assert "storage_path '../../runs' is relative" in capsys.readouterr().err


def test_stop_asks_ray_to_stop_and_reports_the_end(fake, capsys):
    fake.statuses = [JobStatus.RUNNING, JobStatus.STOPPED]
    assert main(["stop", "raysubmit_x", "--wait", "5"]) == codes.EXIT_OK
    assert fake.stopped == ["raysubmit_x"] and "job raysubmit_x STOPPED" in capsys.readouterr().out


@pytest.mark.parametrize("body, expected", [("Authentication required: Unauthorized", "sent no token"),
                                            ("Authentication failed: Forbidden", "rejected this client's token")])
def test_auth_failures_say_what_to_set(monkeypatch, capsys, body, expected):
    def refuse(address):
        raise remote.SubmitError(remote.auth_message("http://h:8265", AuthenticationError(body)))

    monkeypatch.setattr(remote, "connect", refuse)
    monkeypatch.chdir(REPO)
    assert main(["submit", SPEC]) == codes.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert expected in err and "RAY_AUTH_MODE=token" in err and "~/.ray/auth_token" in err


def test_an_unreachable_address_names_the_ssh_tunnel(monkeypatch, capsys):
    with socket.socket() as s:  # a port nothing listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.chdir(REPO)
    assert main(["stop", "raysubmit_x", "--address", f"http://127.0.0.1:{port}"]) == codes.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"cannot reach the Ray Jobs API at http://127.0.0.1:{port}" in err and "ray dashboard" in err


def test_the_address_flag_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://from-env:8265")
    assert remote.resolve_address("http://flag:8265") == "http://flag:8265"
    assert remote.resolve_address(None) == "http://from-env:8265"
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    assert remote.resolve_address(None) == "http://127.0.0.1:8265"  # where `ray dashboard` forwards it


def test_submit_help_teaches_the_path_from_ray_up(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["submit", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for text in ("ray up cluster_configs/aws.yaml", "ray dashboard", "RAY_AUTH_MODE=token", "ray job submit",
                 "124  still running"):
        assert text in out


def test_a_head_whose_job_agent_is_not_up_yet_is_tried_again(fake, monkeypatch, capsys):
    monkeypatch.setattr(settings, "AGENT_RETRY_S", 0.01)
    submit_job, calls = fake.submit_job, []

    def not_yet(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("Request failed with status code 500: No available agent to submit job, "
                               "please try again later..")
        return submit_job(**kwargs)

    fake.submit_job = not_yet
    assert main(["submit", SPEC]) == codes.EXIT_OK
    assert len(calls) == 2 and "job agent is not up yet" in capsys.readouterr().err


def test_a_head_whose_job_agent_never_comes_up_is_given_up_on_with_its_answer(fake, monkeypatch, capsys):
    monkeypatch.setattr(settings, "AGENT_RETRY_S", 0.01)
    monkeypatch.setattr(settings, "AGENT_WAIT_S", 0.05)
    calls = []

    def never(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("Request failed with status code 500: No available agent to submit job")

    fake.submit_job = never
    assert main(["submit", SPEC]) == codes.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("job agent is not up yet") == 1 and "error: cannot submit: Request failed" in err
    assert len(calls) >= 3


def test_stop_waits_only_as_long_as_it_was_told_and_says_the_job_still_runs(fake, capsys):
    fake.statuses = [JobStatus.RUNNING]
    assert main(["stop", "raysubmit_fake", "--wait", "0.05"]) == codes.EXIT_STILL_RUNNING
    assert "job raysubmit_fake RUNNING" in capsys.readouterr().out and fake.stopped == ["raysubmit_fake"]


def test_every_spec_the_docs_submit_keeps_its_results():
    """A spec that a doc, a config's comment or `tfray submit --help` submits to a cluster keeps its results past
    the job: its storage_path is absolute or a URI, not relative (inside the shipped working folder, which Ray
    deletes), so `tfray submit` has no warning to give about it."""
    places = [REPO / "README.md", *REPO.glob("docs/*.md"), *(REPO / "cluster_configs").glob("*.yaml"),
              REPO / "controller" / "cli" / "cluster.py"]
    submitted = [(path.relative_to(REPO).as_posix(), spec) for path in places
                 for line in path.read_text().splitlines() if "submit" in line
                 for spec in re.findall(r"cluster_configs/jobs/[\w.-]+\.yaml", line)]
    assert submitted  # the docs do submit shipped specs: this test looks at something
    for where, spec in submitted:
        assert remote.relative_storage_note(load_spec(REPO / spec)) is None, f"{where} submits {spec}"
