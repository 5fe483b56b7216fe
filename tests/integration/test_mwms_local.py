"""MultiWorkerMirroredStrategy on a local Ray: real actors, real TF, the digits example end to end."""

import os
import re
import urllib.request
from pathlib import Path

import pytest
import ray

from controller.api import run_job
from controller.report.metrics import read_metrics
from controller.settings import poll_until
from controller.states.events import Decision, PreemptionNotice, Restart
from controller.states.state import JobState
from controller.status.gather import job_view
from controller.status.summary import summary_lines
from controller.status.view import render_status
from controller.store.checkpoints import CheckpointManifest
from protocol.layout import COMPLETE_MARKER, WORKERTEMP_DIR, task_log

from .conftest import REPO, BackgroundJob, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration

# A chief and one worker: two TF processes on the machine's two cores. The multi-node tests (test_multinode.py,
# test_elastic.py) run MWMS with two workers.
ROLES = {"chief": {"count": 1, "resources": {"cpu": 1}}, "worker": {"count": 1, "resources": {"cpu": 1}}}
TASKS = {"chief-0", "worker-0"}
ACCURACY_THRESHOLD = 0.85  # digits' validation accuracy passes 0.9 after its second epoch
# An epoch of the digits job takes about 2 s here (2 processes on 2 cores, an all-reduce a step, validation
# and an asynchronous save): the jobs are as short as what each test must see allows.


def run(spec):
    return run_job(spec, [str(REPO)])


def scrape_tfray() -> str:
    """The tfray lines of this node's Ray metrics endpoint, the one Prometheus scrapes."""
    node = next(n for n in ray.nodes() if n["Alive"])
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return "\n".join(line for line in answer.read().decode().splitlines() if line.startswith("ray_tfray_"))


def checkpointed_epoch(job) -> int:
    latest = job.controller.store.latest()
    return (latest.epoch or 0) if latest else 0


def check_checkpoints(spec):
    manifest = CheckpointManifest(spec.job_dir, keep=spec.checkpoint.keep)
    assert 1 <= len(manifest.records) <= spec.checkpoint.keep
    for record in manifest.records:
        assert (Path(record.path) / COMPLETE_MARKER).exists()
        assert Path(record.path, "ckpt.index").exists()
    assert not (spec.job_dir / "checkpoints" / WORKERTEMP_DIR).exists()
    return manifest.latest()


def test_function_mode_trains_then_a_rerun_resumes(local_ray, tmp_path):
    spec = job_spec(tmp_path, "digits-fn", {"function": "examples.digits:train", "args": {"epochs": 3}},
                    roles=ROLES)
    result = run(spec)
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.result["val_accuracy"] >= ACCURACY_THRESHOLD
    assert result.result["replicas"] == 2
    rows = read_metrics(spec.job_dir)
    assert {r["task"] for r in rows} == TASKS
    # What each TensorFlow training process really ran with, as its task's log records it from /proc.
    for task in TASKS:
        got = re.search(r"\[tfray\] training process \d+: (.*)", task_log(spec.job_dir, 1, task).read_text())
        assert got and "OMP_NUM_THREADS=1, TF_NUM_INTRAOP_THREADS unset" in got[1], task
        assert os.geteuid() != 0 or got[1].startswith("nice 0,"), got[1]  # root may lower Ray's 15
    first = check_checkpoints(spec)
    assert first.step == result.result["step"] and first.epoch == 3
    # The example exports what it trained (ctx.save_model): the chief's SavedModel, named in the summary.
    assert (spec.job_dir / "model" / "saved_model.pb").exists()
    assert f"model: {spec.job_dir / 'model'}" in summary_lines(spec, result)
    assert_nothing_left()

    resumed_spec = job_spec(tmp_path, "digits-fn", {"function": "examples.digits:train", "args": {"epochs": 4}},
                            roles=ROLES)
    again = run(resumed_spec)
    assert again.state is JobState.SUCCEEDED, again.message
    assert again.attempt == 2 and again.result["initial_epoch"] == 3
    second_rows = [r for r in read_metrics(spec.job_dir) if r["attempt"] == 2]
    assert second_rows and min(r["step"] for r in second_rows) > first.step
    assert check_checkpoints(spec).step > first.step
    assert_nothing_left()


def test_script_mode_reads_tf_config_from_its_environment(local_ray, tmp_path):
    spec = job_spec(tmp_path, "digits-script", {"script": "examples/digits_script.py", "args": {"epochs": 4}},
                    roles=ROLES)
    result = run(spec)
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.result == {"exit_code": 0}
    rows = read_metrics(spec.job_dir)
    assert {r["task"] for r in rows} == TASKS
    final = [r["values"]["final_val_accuracy"] for r in rows if r["task"] == "chief-0"
             and "final_val_accuracy" in r["values"]]
    assert final and final[-1] >= ACCURACY_THRESHOLD
    check_checkpoints(spec)
    assert_nothing_left()


def test_a_killed_worker_restarts_the_group_from_the_newest_checkpoint(local_ray, tmp_path):
    epochs = 12  # the kill comes after epoch 3 is registered, which can be epochs after it trained on a fast machine
    spec = job_spec(tmp_path, "digits-kill", {"function": "examples.digits:train", "args": {"epochs": epochs}},
                    roles=ROLES)
    job = BackgroundJob(spec)
    # `tfray status` on the running job: a step that advances, the tasks alive, the driver named.
    seen = []

    def status_advanced() -> bool:
        view = job_view(spec)
        if view["state"] == "RUNNING" and view.get("training"):
            seen.append(view)
        return len({v["training"]["step"] for v in seen}) >= 2

    job.wait_until(status_advanced, 180, "`status` to show the chief's step advance")
    assert seen[-1]["training"]["step"] > seen[0]["training"]["step"] and seen[-1]["driver"]
    assert {t["state"] for t in seen[-1]["tasks"].values()} == {"ALIVE"} and set(seen[-1]["tasks"]) == TASKS
    text = render_status(seen[-1])
    assert text.startswith("job digits-kill: RUNNING, attempt 1, running for ") and "examples/s" in text
    job.wait_until(lambda: checkpointed_epoch(job) >= 3, 180, "the checkpoint of epoch 3")
    job.kill("worker-0")
    # Prometheus' view: Ray's metrics endpoint serves the job's gauges (this test process is the job's driver,
    # so they stay there while the job restarts and after it ends). Ray exports each gauge at its own export
    # interval, so one series may be there before another: wait for every one, bounded.
    series = ("ray_tfray_step{", "ray_tfray_examples_per_second{", "ray_tfray_task_alive{",
              "ray_tfray_job_state{", "ray_tfray_budget_limit{")
    scraped = []

    def every_series_scraped() -> bool:  # this job's: the earlier tests' jobs had the same driver, and series
        scraped.append(scrape_tfray())
        ours = [line for line in scraped[-1].splitlines() if 'tfray_job="digits-kill"' in line]
        return any('task="chief-0"' in line for line in ours) and all(any(s in line for line in ours) for s in series)

    poll_until(every_series_scraped, 60, 0.2, f"the job's gauges {series} on Ray's metrics endpoint")
    assert 'tfray_job="digits-kill"' in scraped[-1]
    result = job.wait(300)
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.restarts == 1
    assert [e.task for e in result.events if isinstance(e, Decision) and e.action == "restart_cluster"] == [
        "worker-0"]
    assert result.result["initial_epoch"] >= 3 and result.result["val_accuracy"] >= ACCURACY_THRESHOLD
    restored_step = result.result["initial_epoch"] * (result.result["step"] // epochs)
    after = [r["step"] for r in read_metrics(spec.job_dir) if r["restart"] == 1]
    assert after and min(after) > restored_step  # steps continue from the checkpoint, not from zero
    assert_nothing_left()


def test_a_preemption_notice_saves_the_last_step_and_resumes_from_it(local_ray, tmp_path):
    epochs = 10  # the notice comes at step 28, in epoch 2; the tasks agree on it about once a second
    # (workers/keras.py), so the job must still train a second later: 190 steps, not 80, on a fast machine
    spec = job_spec(tmp_path, "digits-notice", {"function": "examples.digits:train", "args": {"epochs": epochs}},
                    roles=ROLES, faults=[{"task": "worker-0", "action": "sigterm", "at_step": 28}])
    result = run(spec)
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.restarts == 1
    decided = [e for e in result.events if isinstance(e, Decision)]
    assert {e.cause for e in decided} == {"stopped_on_notice"} and decided[-1].spent["max_preemptions"] == 1
    # Who got the notice: its own failure says so, or its heartbeat did (on a loaded machine the
    # group may restart before the noticed task's own end is in).
    noticed = {e.task for e in decided if "on this task's preemption notice" in e.error}
    noticed |= {e.task for e in result.events if isinstance(e, PreemptionNotice)}
    assert noticed == {"worker-0"}
    restart = next(e for e in result.events if isinstance(e, Restart))
    # Every task saw the notice at the same check (about once a second) and saved that step, after
    # the notice's step and well within the grace period (the job was not killed by the deadline).
    assert restart.from_step > 28
    before = [r["step"] for r in read_metrics(spec.job_dir) if r["restart"] == 0]
    after = [r["step"] for r in read_metrics(spec.job_dir) if r["restart"] == 1]
    assert max(before) <= restart.from_step < min(after)  # no completed step lost
    # The save was mid-epoch: fit resumed after its batch, so the whole job took exactly its steps.
    from examples.digits import load_data

    steps_per_epoch = len(load_data()[0]) // (32 * 2)  # the global batch: 32 per replica, 2 replicas
    assert result.result["step"] == epochs * steps_per_epoch  # 0 steps repeated, 0 lost
    assert result.result["val_accuracy"] >= ACCURACY_THRESHOLD
    assert_nothing_left()
