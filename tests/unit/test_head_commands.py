"""`tfray jobs --address` and `tfray status --address` against a fake Jobs API client: the short job each submits to
the cluster's head, how its printed answer is read back and shown, and what is refused before anything is sent.

The real Jobs API (token auth on, a real job) is tests/integration/test_cluster_jobs.py.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from ray.job_submission import JobStatus

from controller import settings
from controller.cli.app import main
from controller.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from controller.remote import jobs_api as remote

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SPEC = "cluster_configs/jobs/digits_mwms_cluster.yaml"  # storage_path: ~/tfray-runs, on the head
HEAD_RUNS = "/home/ray/tfray-runs"
ROW = {"job": "digits-mwms-cluster", "state": "SUCCEEDED", "attempt": 1, "driver": None, "step": 210, "epoch": 15,
       "total_epochs": 15, "updated_s_ago": 65.0, "job_dir": f"{HEAD_RUNS}/digits-mwms-cluster",
       "checkpoint": {"step": 210, "epoch": 15, "path": f"{HEAD_RUNS}/digits-mwms-cluster/checkpoints/ckpt-000000210",
                      "age_s": 70.0}}
LISTING = {"storage_path": HEAD_RUNS, "jobs": [ROW]}
# Ray's own lines come around what the command printed in a job's log.
RAY_SAYS = "2026-01-01 10:00:00,000\tINFO job_manager.py:530 -- Runtime env is setting up.\n"


class FakeHead:
    """The JobSubmissionClient calls a command on the head makes: the job ends at once with ``output``."""

    _address = "http://fake:8265"

    def __init__(self, output: str, status: JobStatus = JobStatus.SUCCEEDED):
        self.output, self.status = output, status
        self.submitted: dict = {}

    def submit_job(self, **kwargs):
        self.submitted = kwargs
        return "raysubmit_head"

    def get_job_status(self, submission_id):
        return self.status

    def get_job_logs(self, submission_id):
        return self.output


@pytest.fixture
def head(monkeypatch):
    client = FakeHead(RAY_SAYS + json.dumps(LISTING, indent=2) + "\n")
    monkeypatch.setattr(remote, "connect", lambda address: client)
    monkeypatch.setattr(settings, "STATUS_POLL_S", 0.01)
    monkeypatch.chdir(REPO)
    return client


def command_of(client: FakeHead) -> list[str]:
    return shlex.split(client.submitted["entrypoint"])


def test_jobs_lists_the_heads_folder_through_a_short_job(head, capsys):
    assert main(["jobs", "~/tfray-runs", "--address", "http://fake:8265"]) == EXIT_OK
    # `~` reaches the head unexpanded: the head user's home, not this one's
    assert command_of(head) == ["python", "-m", "controller", "jobs", "~/tfray-runs", "--json"]
    assert head.submitted["runtime_env"]["working_dir"] == str(REPO)  # shipped as `tfray submit` ships it
    assert head.submitted["metadata"] == {"tfray": "jobs"}
    assert capsys.readouterr().out.splitlines() == [  # as `tfray jobs` shows a folder here
        "JOB                  STATE      ATTEMPT  STEP  EPOCH  UPDATED    CHECKPOINT",
        "digits-mwms-cluster  SUCCEEDED  1        210   15/15  1m05s ago  step 210, 1m10s old",
    ]


def test_jobs_json_is_the_heads_answer(head, capsys):
    assert main(["jobs", HEAD_RUNS, "--address", "http://fake:8265", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == LISTING
    assert command_of(head)[3:] == ["jobs", HEAD_RUNS, "--json"]


def test_a_spec_here_lists_its_storage_path_on_the_head(head, capsys):
    assert main(["jobs", CLUSTER_SPEC, "--address", "http://fake:8265"]) == EXIT_OK
    assert command_of(head)[3:] == ["jobs", "~/tfray-runs", "--json"]


def test_an_empty_folder_on_the_head_says_so(head, capsys):
    head.output = json.dumps({"storage_path": HEAD_RUNS, "jobs": []}) + "\n"
    assert main(["jobs", HEAD_RUNS, "--address", "http://fake:8265"]) == EXIT_OK
    assert capsys.readouterr().out == f"no jobs in {HEAD_RUNS} on the head\n"


@pytest.mark.parametrize("given, said", [
    ("runs", "runs is relative: with --address the storage folder is read on the head"),
    ("cluster_configs/jobs/digits_mwms.yaml", "digits_mwms.yaml: storage_path ../../runs is relative"),
    ("gs://bucket/runs", "gs://bucket/runs is a URI"),
])
def test_what_the_head_cannot_list_is_refused_before_anything_is_sent(head, capsys, given, said):
    assert main(["jobs", given, "--address", "http://fake:8265"]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and said in captured.err and "Traceback" not in captured.err
    assert not head.submitted and captured.out == ""


def test_a_bad_spec_here_names_its_field_before_anything_is_sent(head, tmp_path, capsys):
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({"name": "x", "strategy": "mirrored", "roles": {},
                                                       "entrypoint": {"function": "m:f"}, "storage_path": "/r"}))
    assert main(["jobs", str(tmp_path / "job.yaml"), "--address", "http://fake:8265"]) == EXIT_BAD_INPUT
    assert "job.yaml" in capsys.readouterr().err and not head.submitted


def test_a_listing_the_head_refuses_exits_2_with_what_it_said(head, capsys):
    head.output, head.status = "error: /nowhere does not exist: give a storage folder or a job spec file\n", \
        JobStatus.FAILED
    assert main(["jobs", "/nowhere", "--address", "http://fake:8265"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "the jobs job raysubmit_head on http://fake:8265 ended FAILED without an answer" in err
    assert "/nowhere does not exist" in err and "Traceback" not in err


def test_status_reads_the_view_the_head_printed(head, capsys):
    view = {"job": "digits-mwms-cluster", "state": "RUNNING", "attempt": 1}
    head.output = RAY_SAYS + json.dumps(view) + "\n"
    assert main(["status", CLUSTER_SPEC, "--address", "http://fake:8265", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == view
    assert command_of(head)[3:] == ["status", CLUSTER_SPEC, "--json"]
    assert head.submitted["metadata"] == {"tfray": "status"}
