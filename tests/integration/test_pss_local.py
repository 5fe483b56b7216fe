"""ParameterServerStrategy on a local Ray: both training styles, the side-car evaluator, and lost tasks."""

import os
import tempfile
from pathlib import Path

import pytest

from controller.api import run_job
from controller.report.metrics import read_metrics
from controller.states.events import Decision, TaskReported
from controller.states.state import JobState

from .conftest import REPO, BackgroundJob, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration

ACCURACY_THRESHOLD = 0.85
PSS_ROLES = {
    "chief": {"count": 1, "resources": {"cpu": 0.5}},
    "worker": {"count": 2, "resources": {"cpu": 0.5}},
    "ps": {"count": 1, "resources": {"cpu": 0.5}},
    "evaluator": {"count": 1, "resources": {"cpu": 0.5}},
}


def pss_spec(tmp_path, name, style, roles=PSS_ROLES, **args):
    entrypoint = {"function": f"examples.digits_pss:train_{style}",
                  "args": {"epochs": 10, "steps_per_epoch": 30, **args}}
    return job_spec(tmp_path, name, entrypoint, roles=roles, strategy="parameter_server")


@pytest.mark.parametrize("style", ["fit", "ctl"])
def test_both_styles_train_with_eval_metrics_from_the_evaluator(local_ray, tmp_path, style):
    spec = pss_spec(tmp_path, f"pss-{style}", style)
    scratch_before = set(Path(tempfile.gettempdir()).glob("tfray-run-*"))
    result = run_job(spec, [str(REPO)])
    # The servers' runs are ended, not only their actors killed: no run's scratch folder is left behind.
    assert set(Path(tempfile.gettempdir()).glob("tfray-run-*")) <= scratch_before
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.result["val_accuracy"] >= ACCURACY_THRESHOLD and result.result["step"] == 300
    rows = read_metrics(spec.job_dir)
    assert any(r["task"] == "chief-0" and "loss" in r["values"] for r in rows)
    evals = [r for r in rows if r["task"] == "evaluator-0"]
    assert evals and "val_accuracy" in evals[-1]["values"]
    assert evals[-1]["step"] == 300  # the final checkpoint is evaluated before the evaluator stops
    assert result.statuses["evaluator-0"] == "FINISHED" and result.restarts == 0
    assert_nothing_left()  # no ps, worker or evaluator is left serving
    assert_the_export_loads(spec.job_dir / "model")


def assert_the_export_loads(path: Path) -> None:
    """The coordinator's export loads with tf.saved_model.load (in a process of its own: none of TensorFlow here)
    and answers a batch: what `tfray predict` needs of it."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, tensorflow as tf; f = tf.saved_model.load(sys.argv[1]).signatures"
            "['serving_default']; name = list(f.structured_input_signature[1])[0]; "
            "out = f(**{name: tf.constant(np.zeros((3, 64), 'float32'))}); print(list(out.values())[0].shape)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0 and "(3, 10)" in done.stdout, done.stderr[-2000:]


def test_a_killed_worker_is_absorbed_and_replaced_at_the_same_address(local_ray, tmp_path):
    spec = pss_spec(tmp_path, "pss-worker-kill", "ctl", roles={k: v for k, v in PSS_ROLES.items() if k != "evaluator"},
                    epochs=12, steps_per_epoch=150)  # long enough for worker-1's replacement to serve again
    job = BackgroundJob(spec)
    job.wait_until(lambda: job.chief_step() >= 300, 180, "chief step 300")
    victim = job.kill("worker-1")
    result = job.wait(300)
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.restarts == 0
    # Every scheduled step ran. A closure that was in flight on the killed
    # worker may have updated the ps before the worker died and then been
    # re-run elsewhere (PSS closures run at least once), hence a few extra.
    assert 12 * 150 <= result.result["step"] <= 12 * 150 + 5
    replaced = [e for e in result.events if isinstance(e, Decision) and e.action == "replace_task"]
    assert [e.task for e in replaced] == ["worker-1"]
    new = result.tasks["worker-1"]
    assert new.address == victim.address and new.pid != victim.pid
    serving = [e for e in result.events if isinstance(e, TaskReported) and e.what == "serving"
               and e.task == "worker-1"]
    assert serving and serving[-1].details["pid"] == new.pid  # the replacement served again
    assert_nothing_left()


def test_a_killed_ps_restarts_the_cluster_from_the_newest_checkpoint(local_ray, tmp_path):
    spec = pss_spec(tmp_path, "pss-ps-kill", "fit", roles={k: v for k, v in PSS_ROLES.items() if k != "evaluator"},
                    epochs=8, steps_per_epoch=100)
    job = BackgroundJob(spec)
    job.wait_until(lambda: job.controller.store.latest() is not None and job.chief_step() >= 300, 180,
                   "a checkpoint and chief step 300")
    job.kill("ps-0")
    result = job.wait(300)
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.restarts == 1
    assert [e.task for e in result.events if isinstance(e, Decision) and e.action == "restart_cluster"][0] == "ps-0"
    assert result.result["step"] == 8 * 100
    restored_epoch = result.result["initial_epoch"]
    assert restored_epoch >= 1  # resumed from a checkpoint, not from zero
    after = [r["step"] for r in read_metrics(spec.job_dir) if r["task"] == "chief-0" and r["restart"] == 1]
    assert after and min(after) > restored_epoch * 100 - 1  # steps continue from the checkpoint
    assert_nothing_left()


def test_a_notice_to_a_ps_makes_the_coordinator_save_and_no_completed_step_is_lost(local_ray, tmp_path):
    """SIGTERM to the ps (a cloud's notice): the ps serves on, the coordinator is told, saves the steps it
    has completed and stops; the restart resumes from exactly there."""
    import signal

    from controller.states.events import PreemptionNotice, Restart

    spec = pss_spec(tmp_path, "pss-ps-notice", "ctl", roles={k: v for k, v in PSS_ROLES.items() if k != "evaluator"},
                    epochs=12, steps_per_epoch=100)
    job = BackgroundJob(spec)
    # The notice takes seconds to reach the coordinator (the ps's beat, the driver's poll, the coordinator's check
    # every 10 steps): the job must still train then. 600 steps after it took 4 s on a fast machine; now 1,100.
    job.wait_until(lambda: job.chief_step() >= 100, 180, "chief step 100")
    job.kill("ps-0", signal.SIGTERM)
    result = job.wait(300)
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.restarts == 1
    noticed = [(e.task, e.via) for e in result.events if isinstance(e, PreemptionNotice)]
    assert ("chief-0", "ps-0") in noticed
    decided = [(e.task, e.cause) for e in result.events if isinstance(e, Decision)]
    assert decided == [("chief-0", "stopped_on_notice")]
    restart = next(e for e in result.events if isinstance(e, Restart))
    before = [r["step"] for r in read_metrics(spec.job_dir) if r["task"] == "chief-0" and r["restart"] == 0]
    assert restart.from_step >= max(before)  # saved at the notice: every step completed before it is kept
    assert result.result["step"] >= 12 * 100
    assert_nothing_left()
