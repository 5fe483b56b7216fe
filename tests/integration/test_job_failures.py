"""Jobs that cannot run or that fail: clear errors, bounded waits, nothing left behind. No TF needed."""

import os
import signal
import subprocess
import sys
import threading
import queue

import pytest
import ray

from controller.cli import run_job
from controller.state import JobState

from .conftest import REPO, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration


def test_a_task_error_fails_the_job_with_role_index_node_and_error(local_ray, tmp_path):
    spec = job_spec(tmp_path, "fails", {"function": "tests.integration.entrypoints:fail_on",
                                        "args": {"role": "worker", "index": 1}})
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


def test_ctrl_c_stops_the_job_and_releases_everything(local_ray, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: interrupted\nstrategy: multi_worker_mirrored\n"
        "roles: {chief: {count: 1, resources: {cpu: 1}}, worker: {count: 1, resources: {cpu: 1}}}\n"
        "entrypoint: {function: 'tests.integration.entrypoints:count_steps'}\n"
        f"storage_path: {tmp_path / 'runs'}\n"
    )
    address = ray.get_runtime_context().gcs_address
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "run", str(job), "--address", address],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    seen = []
    try:
        while True:  # bounded: each wait for a line is at most 90 s
            line = lines.get(timeout=90)
            assert line is not None, "the job ended before it was interrupted:\n" + "".join(seen)
            seen.append(line)
            if line.startswith("progress [chief-0] step 3"):
                break
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    assert "job interrupted STOPPED" in "".join(seen)
    assert_nothing_left()
