"""What the job's storage and driver survive, done for real: checkpoints cut short and altered on disk, a
restore TensorFlow cannot read, torn manifest and record files, a second driver, and faults injected into
an unmodified script. Real Ray, real TensorFlow (a one-device digits job), real files and signals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.api import run_job
from controller.machine.controller import Controller
from controller.machine.record import JobRecord
from controller.ray.group import RayTaskGroup
from controller.states.events import CheckpointQuarantined, Decision, TaskReported
from controller.states.state import JobState
from controller.status.summary import fault_lines
from protocol.layout import COMPLETE_MARKER, checkpoint_dir
from tests.integration.conftest import REPO, BackgroundJob, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration


def digits(tmp_path, epochs: int):
    return job_spec(tmp_path, "digits-storage", {"function": "examples.digits:train", "args": {"epochs": epochs}},
                    roles={"chief": {"count": 1, "resources": {"cpu": 1}}}, strategy="one_device",
                    checkpoint={"keep": 5}, failure={"backoff_s": 0})


TRAINED_EPOCHS = 3


@pytest.fixture(scope="module")
def trained_once(local_ray, tmp_path_factory):
    """The digits job run to the end once for the module: (where it ran, a copy of its folder as it ended).
    The job folder records absolute paths, so each test gets the copy back at the same place (``trained``)."""
    root = tmp_path_factory.mktemp("storage")
    result = run_job(digits(root, TRAINED_EPOCHS), [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    pristine = tmp_path_factory.mktemp("pristine") / "runs"
    shutil.copytree(root / "runs", pristine)
    return root, pristine


def trained(trained_once) -> tuple[Path, list[int]]:
    """The trained job folder, as it ended, in place of whatever an earlier test did to it: (the root to build
    the spec on, the steps of its checkpoints, oldest first)."""
    root, pristine = trained_once
    shutil.rmtree(root / "runs", ignore_errors=True)
    shutil.copytree(pristine, root / "runs")
    folder = root / "runs" / "digits-storage" / "checkpoints"
    return root, sorted(json.loads((f / COMPLETE_MARKER).read_text())["step"] for f in folder.glob("ckpt-*"))


def data_file(spec, step: int):
    return next(checkpoint_dir(spec.job_dir, step).glob("ckpt.data-*"))


def quarantined(result) -> list[int]:
    return [e.step for e in result.events if isinstance(e, CheckpointQuarantined)]


def test_corrupt_newest_checkpoints_are_set_aside_and_the_job_resumes_before_them(trained_once):
    root, steps = trained(trained_once)
    spec = digits(root, TRAINED_EPOCHS + 2)
    newest, before = data_file(spec, steps[-1]), data_file(spec, steps[-2])
    os.truncate(newest, newest.stat().st_size // 2)  # cut short, as a full disk or a killed copy leaves it
    raw = bytearray(before.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # the same size, one byte altered
    before.write_bytes(bytes(raw))
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    assert quarantined(result) == [steps[-1], steps[-2]] and result.result["initial_epoch"] == 1
    assert len(list((spec.job_dir / "quarantine").glob("ckpt-*"))) == 2
    assert_nothing_left()


def test_a_checkpoint_tensorflow_cannot_read_is_set_aside_and_the_job_restarts(trained_once):
    """A seal from before seals listed their files cannot be checked: TensorFlow's own restore finds it."""
    root, steps = trained(trained_once)
    spec = digits(root, TRAINED_EPOCHS + 2)
    seal = checkpoint_dir(spec.job_dir, steps[-1]) / COMPLETE_MARKER
    old = json.loads(seal.read_text())
    del old["files"]
    seal.write_text(json.dumps(old))
    data = data_file(spec, steps[-1])
    os.truncate(data, data.stat().st_size // 2)
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    decided = [e for e in result.events if isinstance(e, Decision)]
    assert [(d.cause, d.action) for d in decided] == [("checkpoint_unreadable", "restart_cluster")]
    assert quarantined(result) == [steps[-1]] and result.restarts == 1 and result.result["initial_epoch"] == 2
    assert_nothing_left()


def test_torn_manifest_and_record_do_not_stop_a_rerun(trained_once):
    root, steps = trained(trained_once)
    spec = digits(root, TRAINED_EPOCHS + 1)
    for name in ("manifest.json", "job.json"):
        path = spec.job_dir / name
        path.write_text(path.read_text()[: len(path.read_text()) // 2])
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.result["initial_epoch"] == TRAINED_EPOCHS and result.attempt == 1  # a new record, old checkpoints
    assert len(list(spec.job_dir.glob("job.json.torn-*"))) == 1 and steps
    assert_nothing_left()


def count_steps_spec(tmp_path, storage: str = "runs"):
    return job_spec(tmp_path, "two-drivers", {"function": "tests.integration.entrypoints:count_steps",
                                              "args": {"steps": 600, "interval_s": 0.1}},
                    storage_path=str(tmp_path / storage), env={"TFRAY_PREIMPORT_TF": "0"})


def test_a_second_driver_is_refused_and_the_first_runs_on(local_ray, tmp_path):
    spec = count_steps_spec(tmp_path)
    first = BackgroundJob(spec)
    first.wait_until(lambda: first.chief_step() >= 3, 120, "the first driver's job training")
    # A second `tfray run` of the same spec: refused before it starts Ray, naming the running driver.
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    out = subprocess.run([sys.executable, "-m", "controller", "run", str(path)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and f"job two-drivers is running (driver pid {os.getpid()} on" in out.stderr
    assert "Traceback" not in out.stderr
    # The same job name stored elsewhere, on the same cluster: the cluster's lease refuses it.
    other = count_steps_spec(tmp_path, storage="elsewhere")
    second = Controller(other, RayTaskGroup(other.name), sys_path=[str(REPO)]).run()
    assert second.state is JobState.FAILED and "job two-drivers is running" in second.message
    assert first.thread.is_alive() and first.chief_step() >= 3
    first.controller.stop("the test is done")
    result = first.wait(60)
    assert result.state is JobState.STOPPED
    assert [a.state for a in JobRecord(spec.job_dir, spec.name).attempts()] == ["STOPPED"]
    assert not (tmp_path / "elsewhere" / "two-drivers" / "job.json").exists()
    assert_nothing_left()


def test_timed_faults_reach_an_unmodified_script_and_a_frozen_one_is_found_hung(local_ray, tmp_path):
    faults = [{"task": "worker-1", "action": "kill", "after_s": 2},
              {"task": "worker-0", "action": "hang", "after_s": 2, "restart": 1}]
    spec = job_spec(tmp_path, "script-faults", {"script": "tests/integration/scripts/steps.py",
                                                "args": {"steps": 60, "interval": 0.1}},
                    roles={"worker": {"count": 2, "resources": {"cpu": 1}}}, faults=faults,
                    failure={"backoff_s": 0}, env={"TFRAY_PREIMPORT_TF": "0"},
                    timeouts={"heartbeat_s": 5, "startup_s": 120, "job_s": 300})
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    decided = [(e.task, e.cause) for e in result.events if isinstance(e, Decision)]
    assert decided == [("worker-1", "process_died"), ("worker-0", "hung")] and result.restarts == 2
    fired = [e for e in result.events if isinstance(e, TaskReported) and e.what == "fault_fired"]
    assert [e.task for e in fired] == ["worker-1", "worker-0"]
    assert all(line.endswith(": fired") for line in fault_lines(spec.faults, result.events))
    assert_nothing_left()
