"""Jobs that cannot run or that fail: clear errors, bounded waits, nothing left behind. No TF needed."""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray

from controller.api import run_job
from controller.spec import load_spec
from controller.states.events import DriverLost
from controller.states.state import JobState
from controller.status.gather import job_view
from controller.status.view import render_status
from controller.store.checkpoints import CheckpointManifest
from protocol.layout import driver_log

from .conftest import REPO, assert_nothing_left, job_spec, sigint_as_in_a_terminal

pytestmark = pytest.mark.integration
NO_TF = {"TFRAY_PREIMPORT_TF": "0"}  # no TensorFlow in the entrypoints: nor in the launchers


def test_a_task_error_fails_the_job_with_role_index_node_and_error(local_ray, tmp_path):
    spec = job_spec(tmp_path, "fails", {"function": "tests.integration.entrypoints:fail_on",
                                        "args": {"role": "worker", "index": 1}}, env=NO_TF)
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.FAILED
    assert result.message.startswith("worker-1 on node ")
    assert "ValueError: boom from worker-1" in result.message
    assert len(result.failures) == 1
    assert_nothing_left()


def test_resources_the_cluster_lacks_fail_within_the_scheduling_timeout(local_ray, tmp_path):
    spec = job_spec(tmp_path, "too-big", {"function": "tests.integration.entrypoints:count_steps"},
                    roles={"worker": {"count": 2, "resources": {"cpu": 64}}},
                    timeouts={"scheduling_s": 2})
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.FAILED
    assert "within timeouts.scheduling_s=2s" in result.message
    assert "needing CPU=128" in result.message and "the cluster has CPU=4" in result.message
    assert_nothing_left()


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def start_cli(job, *extra) -> tuple[subprocess.Popen, queue.Queue, list]:
    """`python -m controller run JOB` in a subprocess joined to this module's Ray; its output in a queue."""
    address = ray.get_runtime_context().gcs_address
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "run", str(job), "--address", address, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
        preexec_fn=sigint_as_in_a_terminal,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    return proc, lines, []


def wait_for_line(lines: queue.Queue, seen: list, prefix: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:  # bounded: by the deadline, and each wait for a line by what is left of it
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        assert line is not None, f"the job ended before '{prefix}':\n" + "".join(seen)
        seen.append(line)
        if line.startswith(prefix):
            return


def test_ctrl_c_stops_the_job_and_releases_everything(local_ray, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: interrupted\nstrategy: multi_worker_mirrored\n"
        "roles: {chief: {count: 1, resources: {cpu: 1}}, worker: {count: 1, resources: {cpu: 1}}}\n"
        "entrypoint: {function: 'tests.integration.entrypoints:count_steps'}\n"
        f"storage_path: {tmp_path / 'runs'}\nenv: {NO_TF}\n"
    )
    proc, lines, seen = start_cli(job)
    try:
        wait_for_line(lines, seen, "progress [chief-0] step 3")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    assert "job interrupted STOPPED" in "".join(seen)
    # What the terminal showed is kept in the job folder, the summary included, each line stamped.
    kept = driver_log(tmp_path / "runs" / "interrupted", 1).read_text()
    assert "job interrupted STOPPED (attempt 1, 0 cluster restart(s))" in kept
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d progress \[chief-0\] step 3", kept, re.MULTILINE), kept
    assert_nothing_left()


def test_a_job_whose_driver_died_resumes_with_its_counters(local_ray, tmp_path):
    job = tmp_path / "job.yaml"
    spec_text = (
        "name: orphaned\nstrategy: multi_worker_mirrored\n"
        "roles: {chief: {count: 1, resources: {cpu: 1}}, worker: {count: 1, resources: {cpu: 1}}}\n"
        "entrypoint: {function: 'tests.integration.entrypoints:checkpointed_steps', "
        "args: {steps: STEPS, every: 5, interval_s: 0.05}}\n"
        f"storage_path: {tmp_path / 'runs'}\nfailure: {{backoff_s: 0}}\nenv: {NO_TF}\n"
    )
    job.write_text(spec_text.replace("STEPS", "2000"))
    proc, lines, seen = start_cli(job, "--fault", "worker-0:kill@step=4")
    try:
        wait_for_line(lines, seen, "progress [chief-0] step 2")  # before the fault
        wait_for_line(lines, seen, "progress [chief-0] step 20")  # after the restart
        proc.kill()  # the driver dies: no end is written, Ray reaps its actors
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_nothing_left()
    job.write_text(spec_text.replace("STEPS", "40"))
    spec = load_spec(job)
    newest = CheckpointManifest(spec.job_dir, keep=3).latest().step
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    assert result.attempt == 2 and result.restarts == 1  # the counters of the lost attempt carry on
    assert result.result["start"] >= newest  # from the newest checkpoint (or one sealed after it was read)
    assert any(isinstance(e, DriverLost) for e in result.events)
    assert "attempt 1: DRIVER_LOST" in render_status(job_view(spec), verbose=True)
    assert_nothing_left()
