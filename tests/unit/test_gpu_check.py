"""The GPU device check's logic without a GPU (bench/gpu.py, bench/gpu_checks.py): which GPUs count as
visible, each row's verdict from what the runs left, the exit status, and its fast refusal on a CPU machine."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gpu, gpu_checks
from bench.gpu_checks import Check

REPO = Path(__file__).resolve().parents[2]
SMI = ("GPU 0: NVIDIA H200 (UUID: GPU-1a2b3c4d-0000-1111-2222-333344445555)\n"
       "GPU 1: NVIDIA H200 (UUID: GPU-9f8e7d6c-0000-1111-2222-333344445555)\n")


@pytest.mark.parametrize("cuda_visible, expected", [
    (None, ["0", "1"]),
    ("", []),  # an empty CUDA_VISIBLE_DEVICES hides every GPU
    ("1", ["1"]),
    ("1,0", ["1", "0"]),
    ("GPU-9f8e7d6c", ["1"]),  # a UUID, or its unique start, as CUDA takes it
    ("0,7,1", ["0"]),  # CUDA ignores everything from the first entry it cannot find
])
def test_visible_gpus_as_cuda_narrows_them(cuda_visible, expected):
    assert gpu_checks.visible_gpus(SMI, cuda_visible) == expected


def test_no_gpu_listed_means_none_visible():
    assert gpu_checks.visible_gpus("(nvidia-smi: [Errno 2] No such file or directory)", None) == []


def shared_events(worker_limits=(4096,), worker_peak=812.0, same_gpu=True, trained=("chief-0", "worker-0")):
    events = [{"event": "devices", "task": "chief-0", "cuda_visible_devices": "0", "gpus": ["/device:GPU:0"],
               "memory_limits_mb": [None], "memory_growth": "true", "replicas": 2},
              {"event": "devices", "task": "worker-0", "cuda_visible_devices": "0" if same_gpu else "1",
               "gpus": ["/device:GPU:0"], "memory_limits_mb": list(worker_limits), "memory_growth": None,
               "replicas": 2},
              {"event": "gpu_memory", "task": "chief-0", "peak_mb": [640.5]},
              {"event": "gpu_memory", "task": "worker-0", "peak_mb": [worker_peak]}]
    return events + [{"event": "epoch_end", "task": t, "epoch": 1, "step": 20} for t in trained]


def test_two_tasks_sharing_a_gpu_pass_when_both_train_on_it_within_their_memory():
    rows = gpu_checks.shared_gpu_checks({"state": "SUCCEEDED"}, shared_events(), 4096)
    assert [c.ok for c in rows] == [True, True, True, True], rows
    assert "chief-0 640, worker-0 812" in rows[-1].ours


@pytest.mark.parametrize("events, failed_row", [
    (shared_events(trained=("chief-0",)), "both train"),
    (shared_events(same_gpu=False), "same one GPU"),
    (shared_events(worker_limits=(None,)), "memory"),
    (shared_events(worker_peak=5000.0), "peak GPU memory"),
])
def test_each_way_the_shared_run_can_go_wrong_fails_its_row(events, failed_row):
    rows = gpu_checks.shared_gpu_checks({"state": "SUCCEEDED"}, events, 4096)
    assert [c.name for c in rows if not c.ok] == [next(c.name for c in rows if failed_row in c.name)]
    assert gpu_checks.exit_code(rows) == 1


def test_a_shared_run_that_failed_is_one_failed_row_with_its_message():
    (row,) = gpu_checks.shared_gpu_checks({"state": "FAILED", "message": "worker-0 ... out of GPU memory"}, [], 4096)
    assert not row.ok and "out of GPU memory" in row.why


def test_a_figure_against_hand_fails_on_a_failed_or_missing_run_never_on_the_ratio():
    pick = lambda run: run["steady_steps_per_s"]  # noqa: E731
    slow = gpu_checks.versus_hand_check("steps/s", {"state": "SUCCEEDED", "steady_steps_per_s": 10.0},
                                        {"state": "SUCCEEDED", "steady_steps_per_s": 40.0}, pick, 1)
    assert (slow.ok, slow.ours, slow.hand, slow.ratio) == (True, "10.0", "40.0", "0.25")
    failed = gpu_checks.versus_hand_check("steps/s", {"state": "FAILED"}, {"state": "SUCCEEDED",
                                                                           "steady_steps_per_s": 40.0}, pick, 1)
    assert not failed.ok and "ours FAILED" in failed.why and "no figure for ours" in failed.why
    assert not gpu_checks.versus_hand_check("steps/s", None, None, pick, 1).ok  # not run (past the budget)
    wrong = gpu_checks.versus_hand_check("steps/s", {"state": "SUCCEEDED", "steady_steps_per_s": 1.0},
                                         {"state": "SUCCEEDED", "steady_steps_per_s": 1.0}, pick, 1,
                                         extra_ok=False, why="ours trained 1 replica(s)")
    assert not wrong.ok and "1 replica" in wrong.why


def test_the_whole_table_from_every_run():
    done = {"state": "SUCCEEDED", "steady_steps_per_s": 50.0,
            "faults": [{"action": "kill", "recovery_s": 4.0}]}
    results = {("shared", "ours"): {"state": "SUCCEEDED"}, ("steady", "ours"): done, ("steady", "hand"): done,
               ("kill", "ours"): done, ("kill", "hand"): {**done, "faults": [{"action": "kill", "recovery_s": 5.0}]}}
    events = {("shared", "ours"): shared_events(),
              ("steady", "ours"): [{"event": "devices", "task": "worker-0", "replicas": 2}]}
    rows = gpu.checks(results, events, ["0", "1"])
    assert gpu_checks.exit_code(rows) == 0, gpu_checks.render(rows)
    assert rows[-1].ratio == "0.80"
    one_replica = {**events, ("steady", "ours"): [{"event": "devices", "task": "worker-0", "replicas": 1}]}
    assert gpu_checks.exit_code(gpu.checks(results, one_replica, ["0", "1"])) == 1  # a GPU left unused
    table = gpu_checks.render([Check("a", "1"), Check("b", "2", ok=False, why="broke")])
    assert table.splitlines()[-1] == "| b | 2 |  |  | FAIL: broke |"
    assert gpu_checks.exit_code([]) == 1  # nothing checked is not a pass


def test_the_runs_share_the_first_gpu_where_they_must_and_stay_in_the_budget():
    planned = gpu.runs(["3", "5"], cpus=16)
    assert [(s, w) for s, w, _, _ in planned] == [("shared", "ours"), ("steady", "ours"), ("steady", "hand"),
                                                  ("kill", "ours"), ("kill", "hand")]
    env = {(s, w): e for s, w, _, e in planned}
    assert env[("shared", "ours")] == env[("kill", "ours")] == ["CUDA_VISIBLE_DEVICES=3"]
    steady = next(d for s, w, d, _ in planned if (s, w) == ("steady", "ours"))
    assert '--resources={"cpu": 4, "gpu": 2}' in steady  # one task, every GPU
    assert gpu.BUDGET_S + gpu.RUN_TIMEOUT_S + gpu.REAP_S <= 8 * 60  # the last run ends within 8 minutes


def test_on_a_machine_without_a_gpu_it_refuses_at_once():
    done = subprocess.run([sys.executable, "-m", "bench.gpu"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == gpu.NO_GPU and "no GPU visible" in done.stderr, done.stderr
