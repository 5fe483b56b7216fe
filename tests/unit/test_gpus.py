"""The GPU path without a GPU: each task's bundle and replicas, the memory policy, the all-reduce, and the
environment each task's processes get (controller/plan/gpus.py, workers/gpus.py). docs/design.md §4, GPUs."""

import pytest

from controller import settings
from controller.plan.gpus import collective, describe_devices, device_plan, replicas_in_sync
from controller.plan.launch import actor_config, task_env
from controller.plan.tasks import plan
from controller.spec import Resources, parse_spec
from controller.states.task_group import TaskInfo
from controller.states.task_table import TaskTable
from protocol.wire import COLLECTIVE_ENV, GPU_MEMORY_LIMIT_ENV, DevicePlan, TaskKey
from workers.gpus import device_env, parse_memory

RESERVE = settings.GPU_CONTEXT_RESERVE_MB
H200_MB = 143771  # what nvidia-smi reports for an H200


def spec(roles, strategy="multi_worker_mirrored", **extra):
    return parse_spec({"name": "g", "strategy": strategy, "roles": roles, "entrypoint": {"function": "m:f"}, **extra})


def role(count=1, **resources):
    return {"count": count, "resources": {"cpu": 1, **resources}}


# ------------------------------------------------------------------ the plan: bundles, replicas, all-reduce

def test_each_task_reserves_its_gpus_in_its_bundle_and_carries_its_plan_to_its_actor():
    tasks = plan(spec({"chief": role(gpu=2), "worker": role(2, gpu=0.5), "evaluator": role()}))
    assert [t.bundle.get("GPU", 0) for t in tasks] == [2, 0.5, 0.5, 0]
    assert [t.devices for t in tasks] == [DevicePlan(2, "all"), DevicePlan(0.5, "growth"), DevicePlan(0.5, "growth"),
                                          DevicePlan()]
    config = actor_config(tasks[1].key, {}, tasks[1].devices)
    assert config.devices == DevicePlan(0.5, "growth") and config.gpu_context_reserve_mb == RESERVE


@pytest.mark.parametrize("resources, expected", [
    ({}, DevicePlan()),
    ({"gpu": 0.5}, DevicePlan(0.5, "growth")),  # auto: two tasks on one GPU both fit
    ({"gpu": 1}, DevicePlan(1, "all")),  # auto: a GPU of its own, TensorFlow's default
    ({"gpu": 2}, DevicePlan(2, "all")),
    ({"gpu": 0.25, "gpu_memory": "share"}, DevicePlan(0.25, "share")),
    ({"gpu": 1, "gpu_memory": "growth"}, DevicePlan(1, "growth")),
    ({"gpu": 0.5, "gpu_memory": "all"}, DevicePlan(0.5, "all")),
    ({"gpu": 0.5, "gpu_memory_mb": 8192}, DevicePlan(0.5, "limit", 8192)),
])
def test_the_memory_policy_with_auto_resolved(resources, expected):
    assert device_plan(Resources(cpu=1, **resources)) == expected


@pytest.mark.parametrize("roles, strategy, expected", [
    ({"chief": role(gpu=2), "worker": role(2, gpu=1)}, "multi_worker_mirrored", 4),  # one replica per GPU
    ({"worker": role(3, gpu=0.5)}, "multi_worker_mirrored", 3),  # a share of a GPU is one GPU
    ({"chief": role(), "worker": role(2)}, "multi_worker_mirrored", 3),  # one per task on CPU
    ({"worker": role(2, gpu=4), "evaluator": role(gpu=1)}, "multi_worker_mirrored", 8),  # no evaluator
    ({"chief": role(gpu=4)}, "mirrored", 4),
    ({"chief": role(gpu=1)}, "one_device", 1),
    ({"chief": role(), "worker": role(2, gpu=1), "ps": role()}, "parameter_server", None),
])
def test_replicas_in_sync_follow_the_gpus(roles, strategy, expected):
    assert replicas_in_sync(spec(roles, strategy)) == expected


@pytest.mark.parametrize("roles, strategy, asked, expected", [
    ({"chief": role(gpu=1), "worker": role(2, gpu=1)}, "multi_worker_mirrored", "auto", "nccl"),
    ({"worker": role(2, gpu=2), "evaluator": role()}, "multi_worker_mirrored", "auto", "nccl"),  # eval: no part
    ({"chief": role(), "worker": role(2, gpu=1)}, "multi_worker_mirrored", "auto", "auto"),  # a CPU chief
    ({"worker": role(2, gpu=0.5)}, "multi_worker_mirrored", "auto", "auto"),  # NCCL: one rank per GPU
    ({"worker": role(2)}, "multi_worker_mirrored", "auto", "auto"),
    ({"worker": role(2, gpu=1)}, "multi_worker_mirrored", "ring", "ring"),
    ({"worker": role(2)}, "multi_worker_mirrored", "ring", "ring"),
    ({"chief": role(gpu=2)}, "mirrored", "auto", "auto"),
])
def test_the_all_reduce_and_the_variable_every_task_gets(roles, strategy, asked, expected):
    job = spec(roles, strategy, collective=asked)
    assert collective(job) == expected
    assert task_env(job)[COLLECTIVE_ENV] == expected


def test_the_dry_run_says_what_each_task_sees():
    assert describe_devices(DevicePlan(), RESERVE) == 'none (CUDA_VISIBLE_DEVICES="")'
    shared = describe_devices(DevicePlan(0.5, "growth"), RESERVE)
    assert "0.5 of one, shared" in shared and "TF_FORCE_GPU_ALLOW_GROWTH=true" in shared
    assert "<the 2 ids Ray assigns>" in describe_devices(DevicePlan(2, "all"), RESERVE)
    assert "4096 MiB on each" in describe_devices(DevicePlan(1, "limit", 4096), RESERVE)


# ------------------------------------------------------------- the task's environment (its actor sets it)

@pytest.mark.parametrize("plan_, ids, expected", [
    (DevicePlan(), [], {"CUDA_VISIBLE_DEVICES": ""}),  # no GPU: sees none, whatever the node has
    (DevicePlan(0.5, "growth"), ["3"], {"CUDA_VISIBLE_DEVICES": "3", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}),
    (DevicePlan(1, "all"), ["1"], {"CUDA_VISIBLE_DEVICES": "1"}),
    (DevicePlan(2, "all"), ["0", "1"], {"CUDA_VISIBLE_DEVICES": "0,1"}),
    (DevicePlan(2, "growth"), ["2", "5"], {"CUDA_VISIBLE_DEVICES": "2,5", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}),
    (DevicePlan(1, "limit", 4096), ["0"], {"CUDA_VISIBLE_DEVICES": "0", GPU_MEMORY_LIMIT_ENV: "4096"}),
    (DevicePlan(0.5, "share"), ["0"], {"CUDA_VISIBLE_DEVICES": "0", GPU_MEMORY_LIMIT_ENV: str(H200_MB // 2 - RESERVE)}),
    (DevicePlan(0.25, "share"), ["GPU-8f2c"], {"CUDA_VISIBLE_DEVICES": "GPU-8f2c",
                                               GPU_MEMORY_LIMIT_ENV: str(H200_MB // 4 - RESERVE)}),
])
def test_the_environment_of_a_task_with_0_half_1_or_2_gpus(plan_, ids, expected):
    env, note = device_env(plan_, ids, {"0": H200_MB, "GPU-8f2c": H200_MB}, RESERVE)
    assert (env, note) == (expected, None)


def test_a_share_that_cannot_be_computed_falls_back_to_growth_and_says_so():
    env, note = device_env(DevicePlan(0.5, "share"), ["0"], None, RESERVE)
    assert env == {"CUDA_VISIBLE_DEVICES": "0", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    assert "could not be read (nvidia-smi)" in note and "memory growth instead" in note
    env, note = device_env(DevicePlan(0.1, "share"), ["0"], {"0": 8000}, RESERVE)  # 800 MiB less the context
    assert GPU_MEMORY_LIMIT_ENV not in env and "below 256 MiB" in note


def test_a_task_ray_gave_no_gpu_sees_none_and_says_so():
    env, note = device_env(DevicePlan(1, "all"), [], None, RESERVE)
    assert env == {"CUDA_VISIBLE_DEVICES": ""} and "assigned it none" in note


def test_nvidia_smi_memory_by_index_and_by_uuid():
    text = "0, GPU-1a2b, 143771\n1, GPU-3c4d, 81559\n[N/A], GPU-x, [N/A]\n"
    assert parse_memory(text) == {"0": 143771, "GPU-1a2b": 143771, "1": 81559, "GPU-3c4d": 81559}


def test_a_failed_task_is_named_with_its_gpus():
    table = TaskTable(plan(spec({"worker": role(2, gpu=1)})))
    table.started({TaskKey("worker", 0): TaskInfo("10.0.0.1:1", "node000000000001", "h1", 7, ("0",)),
                   TaskKey("worker", 1): TaskInfo("10.0.0.2:1", "node000000000002", "h2", 8, ("2", "3"))})
    assert table.describe(TaskKey("worker", 0)) == "worker-0 on node node00000000 (h1, pid 7, GPU 0)"
    assert table.describe(TaskKey("worker", 1)).endswith("(h2, pid 8, GPUs 2,3)")

