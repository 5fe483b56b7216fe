"""The command line: exit codes and messages for validate, dry-run and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli.app import main
from controller.cli.exit_codes import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_OK

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "cluster_configs" / "jobs" / "digits_mwms.yaml")


def test_validate_ok(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["validate", DEMO]) == EXIT_OK
    assert "valid (multi_worker_mirrored: 1 chief, 2 worker)" in capsys.readouterr().out


def test_dry_run_prints_every_task(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["dry-run", DEMO]) == EXIT_OK
    out = capsys.readouterr().out
    for task in ("chief-0", "worker-0", "worker-1"):
        assert task in out
    assert out.count("TF_CONFIG:") == 3


def test_bad_spec_exits_2_with_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstrategy: multi_worker_mirrored\nroles: {chief: {count: 2}}\n"
                   "entrypoint: {function: 'm:f'}\n")
    assert main(["validate", str(bad)]) == EXIT_BAD_INPUT
    assert "at most one chief" in capsys.readouterr().err


def test_missing_entrypoint_exits_2(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text("name: x\nstrategy: multi_worker_mirrored\nroles: {worker: {count: 2}}\n"
                   "entrypoint: {script: nowhere.py}\n")
    assert main(["dry-run", str(job)]) == EXIT_BAD_INPUT
    assert "entrypoint.script: 'nowhere.py' does not exist" in capsys.readouterr().err


def test_schema_is_json(capsys):
    assert main(["schema"]) == EXIT_OK
    schema = json.loads(capsys.readouterr().out)
    assert "strategy" in schema["properties"]


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help_teaches(args):
    out = subprocess.run([sys.executable, "-m", "controller", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    assert "tfray" in out.stdout


def test_the_import_commands_are_in_help_and_in_the_readme():
    out = subprocess.run([sys.executable, "-m", "controller", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    readme = (REPO / "README.md").read_text()
    for command in ("import-tfjob", "import-vertex"):
        assert command in out.stdout and f"tfray {command}" in readme


def test_help_lists_examples():
    out = subprocess.run([sys.executable, "-m", "controller", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert "dry-run" in out.stdout and "resumes from its newest complete checkpoint" in out.stdout


def test_status_groups_identical_failures(tmp_path, capsys):
    from protocol.atomic_files import write_json_atomic

    job = tmp_path / "job.yaml"
    job.write_text("name: s\nstrategy: multi_worker_mirrored\nroles: {worker: {count: 3}}\n"
                   "entrypoint: {function: 'm:f'}\n")
    assert main(["status", str(job)]) == EXIT_OK
    assert "has not run yet" in capsys.readouterr().out
    event = {"time": 0, "cause": "process_died", "action": "restart_cluster", "reason": "restart", "node": "n1",
             "error": "Traceback\n  ...\nOOMError: out of memory"}
    write_json_atomic(tmp_path / "runs" / "s" / "job.json", {"name": "s", "attempts": [{
        "attempt": 1, "state": "FAILED", "message": "budget spent", "restarts": 2,
        "spent": {"max_task_failures": 3}, "limits": {"max_task_failures": 3},
        "statuses": {"worker-0": "FAILED"},
        "events": [{**event, "task": "worker-1"}, {**event, "task": "worker-2"}, {"event": "serving", "time": 0}],
    }]})
    assert main(["status", str(job)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "job s: FAILED, attempt 1" in out and "restarts: 2; budgets spent: max_task_failures 3/3" in out
    assert "last failure: " in out and "worker-1, worker-2 on node n1: process_died -> restart_cluster (x2)" in out
    assert "OOMError" not in out  # one line at a glance; --verbose has the error
    assert main(["status", str(job), "--verbose"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "attempt 1: FAILED, 2 restart(s)" in out and out.count("OOMError: out of memory") == 1


@pytest.mark.parametrize("command", [["status", "SPEC", "--json"], ["dry-run", "SPEC"], ["schema"]],
                         ids=lambda c: c[0])
def test_a_command_whose_reader_went_away_ends_quietly(tmp_path, command):
    """`tfray status JOB --json | head -c 1500`: once the reader is gone, the command ends as Unix tools do, with
    exit 141 (128 + SIGPIPE) and no traceback. The pipe's read end is closed before the command writes, so the
    first write meets it, whatever the output's size."""
    (tmp_path / "train.py").write_text("print('hi')\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(json.dumps({"name": "piped", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 2}},
                                "entrypoint": {"script": "train.py"}, "storage_path": str(tmp_path / "runs")}))
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "controller", *(str(spec) if a == "SPEC" else a for a in command)],
                              cwd=REPO, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(write)
    assert done.returncode == EXIT_BROKEN_PIPE == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr  # nor at the interpreter's last flush
