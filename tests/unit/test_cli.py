"""The command line: exit codes and messages for validate, dry-run and bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import EXIT_BAD_INPUT, EXIT_OK, main

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


def test_help_lists_examples():
    out = subprocess.run([sys.executable, "-m", "controller", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert "dry-run" in out.stdout and "resumes from its newest complete checkpoint" in out.stdout
