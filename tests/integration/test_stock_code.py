"""Stock TensorFlow code, run unmodified: a Keras fit script with BackupAndRestore, ModelCheckpoint and
TensorBoard, a custom loop with a CheckpointManager, a parameter-server script. Each is killed mid-run
(a real SIGKILL) and must resume from its own files in the AIP_* folders, leave its event files and its
model in the job folder, and leave nothing in /tmp. A Keras fit that saves nothing resumes from the
backup tfray gives it (workers/keras_backup.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from controller.states.events import Decision
from controller.states.state import JobState
from controller.status.summary import summary_lines
from protocol.layout import task_log
from tests.integration.conftest import BackgroundJob, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration

TWO = {"chief": {"count": 1, "resources": {"cpu": 0.5}}, "worker": {"count": 1, "resources": {"cpu": 0.5}}}
PSS = {"chief": {"count": 1, "resources": {"cpu": 0.5}}, "worker": {"count": 2, "resources": {"cpu": 0.5}},
       "ps": {"count": 1, "resources": {"cpu": 0.5}}}


def temporaries() -> set[str]:
    """What training code could leave in /tmp: tempfile's and multiprocessing's folders."""
    return {name for name in os.listdir("/tmp") if name.startswith(("tmp", "pymp-"))}


def after_restart(spec, task: str) -> str:
    """What ``task`` printed in the run after the first restart (its log in the job folder)."""
    text = task_log(spec.job_dir, 1, task).read_text()
    return text.split("run 1 of the cluster", 1)[1]


def run_killed(spec, victim: str, when: Path, timeout_s: float = 400):
    """Run ``spec``, SIGKILL ``victim``'s training process once ``when`` exists, and wait for the end."""
    before = temporaries()
    job = BackgroundJob(spec)
    job.wait_until(when.exists, 240, f"{when.name} written")
    job.kill(victim)
    result = job.wait(timeout_s)
    assert result.state is JobState.SUCCEEDED, result.message
    assert temporaries() <= before, f"left in /tmp: {sorted(temporaries() - before)}"
    assert_nothing_left()
    return result


def test_a_keras_fit_script_resumes_from_its_own_backup(local_ray, tmp_path):
    spec = job_spec(tmp_path, "stock-fit", {"script": "examples/stock/keras_fit.py",
                                            "args": {"epochs": 8, "seconds_per_epoch": 0.5}},
                    roles=TWO, failure={"backoff_s": 0})
    result = run_killed(spec, "worker-0", spec.job_dir / "backups" / "backup" / "chief" / "checkpoint")
    assert result.restarts == 1
    assert [(d.task, d.cause) for d in result.events if isinstance(d, Decision)] == [("worker-0", "process_died")]
    epochs = [int(n) for n in re.findall(r"^Epoch (\d+)/8", after_restart(spec, "chief-0"), re.M)]
    assert epochs and epochs[0] > 1 and epochs[-1] == 8  # resumed from the backup, not from the first epoch
    assert list((spec.job_dir / "tensorboard" / "code" / "train").glob("events.out.tfevents.*"))
    assert (spec.job_dir / "model" / "saved_model.pb").exists()
    assert list((spec.job_dir / "backups").glob("weights-*.index"))  # ModelCheckpoint's, the chief's only
    assert f"model: {spec.job_dir / 'model'}" in summary_lines(spec, result)


def test_a_keras_fit_that_saves_nothing_resumes_from_the_automatic_backup(local_ray, tmp_path):
    spec = job_spec(tmp_path, "stock-plain", {"script": "examples/stock/keras_fit_plain.py",
                                              "args": {"epochs": 6, "seconds_per_epoch": 0.5}},
                    roles=TWO, failure={"backoff_s": 0})
    result = run_killed(spec, "worker-0", spec.job_dir / "backups" / "auto" / "fit-1" / "chief" / "checkpoint")
    assert result.restarts == 1
    epochs = [int(n) for n in re.findall(r"^Epoch (\d+)/6", after_restart(spec, "chief-0"), re.MULTILINE)]
    assert epochs and epochs[0] > 1 and epochs[-1] == 6  # the epochs before the kill were not run again
    assert not list((spec.job_dir / "backups" / "auto").rglob("*.index"))  # a fit that ended deletes its backup


def test_a_custom_loop_resumes_from_its_checkpoint_manager(local_ray, tmp_path):
    spec = job_spec(tmp_path, "stock-loop", {"script": "examples/stock/custom_loop.py",
                                             "args": {"epochs": 6, "seconds_per_epoch": 0.5}},
                    roles=TWO, failure={"backoff_s": 0})
    result = run_killed(spec, "chief-0", spec.job_dir / "backups" / "checkpoint")
    assert result.restarts == 1
    restored = re.search(r"restored \S+: epoch (\d+), step (\d+)", after_restart(spec, "chief-0"))
    assert restored and int(restored.group(1)) >= 1 and int(restored.group(2)) > 0  # its own checkpoint
    assert "Epoch: 6," in after_restart(spec, "chief-0")
    assert not list((spec.job_dir / "backups").glob("workertemp_*"))  # the worker's copies are gone


def test_a_parameter_server_script_goes_on_when_a_worker_dies(local_ray, tmp_path):
    spec = job_spec(tmp_path, "stock-pss", {"script": "examples/stock/parameter_server.py",
                                            "args": {"epochs": 12, "steps_per_epoch": 60}},
                    roles=PSS, strategy="parameter_server")
    result = run_killed(spec, "worker-1", spec.job_dir / "backups" / "checkpoint")
    assert result.restarts == 0
    assert [(d.task, d.action) for d in result.events if isinstance(d, Decision)] == [("worker-1", "replace_task")]
    assert "Epoch 12:" in task_log(spec.job_dir, 1, "chief-0").read_text()
    assert (spec.job_dir / "model" / "saved_model.pb").exists()
