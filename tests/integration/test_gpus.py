"""The GPU path on a CPU machine: what each task's processes are given, through real actors and launchers.

Ray started with ``num_gpus=2`` reserves and assigns GPU IDs as on a GPU
node, so the IDs, the environment the task actors build from them, and what
reaches each launcher and training process are all real; only a device to
use them on is missing (bench/gpu.py checks that part on a GPU machine).
"""

import json
import os
import threading

import pytest

from controller.api import run_job
from controller.states.state import JobState
from workers.context import CONTEXT_ENV, TaskContext
from workers.launcher_client import LauncherClient

from .conftest import REPO, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration


def test_each_task_and_its_launcher_see_the_gpus_ray_assigned_it_at_nice_0_with_its_threads(fake_gpu_ray, tmp_path):
    roles = {"chief": {"count": 1, "resources": {"cpu": 1.5, "gpu": 1, "gpu_memory": "growth"}},
             "worker": {"count": 2, "resources": {"cpu": 0.5, "gpu": 0.5}},
             "evaluator": {"count": 1, "resources": {"cpu": 0.5}}}
    # No TensorFlow anywhere: what is checked is the environment each process gets.
    spec = job_spec(tmp_path, "gpu-env", {"function": "tests.integration.entrypoints:devices_seen"}, roles,
                    env={"TFRAY_PREIMPORT_TF": "0"}, timeouts={"scheduling_s": 30, "startup_s": 60, "job_s": 60})
    result = run_job(spec, [str(REPO)])
    assert result.state is JobState.SUCCEEDED, result.message
    seen = {task: json.loads((spec.job_dir / f"devices-{task}.json").read_text())
            for task in ("chief-0", "worker-0", "worker-1", "evaluator-0")}
    for task, views in seen.items():
        assert views["launcher"]["CUDA_VISIBLE_DEVICES"] == views["process"]["CUDA_VISIBLE_DEVICES"], task
        assert views["process"]["TFRAY_COLLECTIVE"] == "auto"  # the workers share a GPU: no NCCL
    chief, w0, w1 = (seen[t]["process"] for t in ("chief-0", "worker-0", "worker-1"))
    assert chief["CUDA_VISIBLE_DEVICES"] in ("0", "1") and chief["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    # The two halves share the GPU the chief does not have; each grows its memory as it needs it.
    other = ({"0", "1"} - {chief["CUDA_VISIBLE_DEVICES"]}).pop()
    assert w0["CUDA_VISIBLE_DEVICES"] == w1["CUDA_VISIBLE_DEVICES"] == other
    assert w0["TF_FORCE_GPU_ALLOW_GROWTH"] == w1["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert not any(views["process"]["TFRAY_GPU_MEMORY_LIMIT_MB"] for views in seen.values())
    # Each process runs at nice 0, not the 15 Ray starts workers at (this Ray was started without
    # RAY_worker_niceness: the actor lowered it itself, which root may), with OpenMP sized to its CPUs rounded up.
    if os.geteuid() == 0:
        assert {task: views["nice"] for task, views in seen.items()} == dict.fromkeys(seen, 0)
    assert chief["OMP_NUM_THREADS"] == "2" and w0["OMP_NUM_THREADS"] == w1["OMP_NUM_THREADS"] == "1"
    assert not any(views["process"]["TF_NUM_INTRAOP_THREADS"] for views in seen.values())  # TensorFlow's own
    evaluator = seen["evaluator-0"]
    assert evaluator["process"]["CUDA_VISIBLE_DEVICES"] == evaluator["launcher"]["CUDA_VISIBLE_DEVICES"] == ""
    assert {t: i.gpus for t, i in result.tasks.items()} == {
        "chief-0": (chief["CUDA_VISIBLE_DEVICES"],), "worker-0": (w0["CUDA_VISIBLE_DEVICES"],),
        "worker-1": (w1["CUDA_VISIBLE_DEVICES"],), "evaluator-0": ()}
    assert_nothing_left()


def test_a_launcher_that_imported_tensorflow_forks_processes_whose_runtime_is_not_started(tmp_path):
    """Importing TF must not start its runtime (that would initialise CUDA, which no forked child can use)."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "TFRAY_PREIMPORT_TF": "1"}
    launcher = LauncherClient(env)
    try:
        ctx = TaskContext(job_name="j", job_dir=str(tmp_path), attempt=1, strategy="multi_worker_mirrored",
                          role="worker", index=0, is_chief=True, num_workers=1)
        request = tmp_path / "request.json"
        request.write_text(json.dumps({"env": {CONTEXT_ENV: ctx.to_env()}, "sys_path": [str(REPO)],
                                       "kind": "function", "cwd": None,
                                       "target": "tests.integration.entrypoints:runtime_state", "args": {},
                                       "argv": [], "alive_interval_s": 1.0, "exit_handlers_s": 10.0}))
        report_r, report_w = os.pipe()
        out_r, out_w = os.pipe()
        launcher.fork(str(request), report_w, out_w)  # waits for the launcher's TensorFlow import first
        os.close(report_w)
        os.close(out_w)
        records: list[dict] = []
        reader = threading.Thread(target=lambda: records.extend(json.loads(line) for line in os.fdopen(report_r)))
        reader.start()
        with os.fdopen(out_r) as out:
            output = out.read()
        assert launcher.wait_exit() == 0, output
        reader.join(10)
        printed = "".join(launcher.take_printed())
    finally:
        launcher.close()
    (result,) = [r["value"] for r in records if r.get("kind") == "result"]
    assert result == {"tf_imported": True, "untouched": True, "untouched_after_an_op": False}, output
    assert "runtime was started" not in printed
