"""A task's GPUs on its node: what its launcher and training processes see, how much memory they take, and
the all-reduce its strategy uses.

The task actor asks Ray which GPUs it was assigned (``assigned_gpus``) and
turns them, with the task's ``DevicePlan``, into environment variables
(``device_env``) for its launcher and for every training process forked
from it: ``CUDA_VISIBLE_DEVICES`` (empty for a task without a GPU: Ray 2.60
leaves a zero-GPU actor's variable as the node had it, so it would see every
GPU), ``TF_FORCE_GPU_ALLOW_GROWTH`` for memory growth, and a memory limit
that the training process applies before the user's code runs
(``apply_memory_limit``). The CUDA driver reads ``CUDA_VISIBLE_DEVICES``
when a process initialises CUDA, which TensorFlow does when it first lists
or uses its devices, never at import: the launcher imports TensorFlow and
must do no more (``runtime_untouched``), or its forked children would
inherit a CUDA context they cannot use.

No TensorFlow at import: the actor (and the driver, which imports the actor's
module) use the pure parts; the training process imports TF when it needs it.
"""

from __future__ import annotations

import os
import subprocess
import sys

from protocol.wire import COLLECTIVE_ENV, GPU_MEMORY_LIMIT_ENV, DevicePlan

MIN_SHARE_MB = 256  # a share smaller than this leaves TensorFlow no room to run: refused with a note
NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"]


def assigned_gpus() -> list[str]:
    """The GPU IDs Ray assigned this actor (as Ray names them: indexes on the node, or what the node's
    ``CUDA_VISIBLE_DEVICES`` listed when Ray started)."""
    import ray

    return [str(i) for i in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]


def parse_memory(text: str) -> dict[str, int]:
    """``nvidia-smi``'s ``index, uuid, memory.total`` lines -> MiB by index and by UUID."""
    memory: dict[str, int] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[2].isdigit():
            memory[parts[0]] = memory[parts[1]] = int(parts[2])
    return memory


def device_memory_mb(timeout_s: float) -> dict[str, int] | None:
    """Every GPU's memory on this node (nvidia-smi, which never touches this process's CUDA); None if unknown."""
    try:
        done = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_memory(done.stdout) if done.returncode == 0 else None


def device_env(plan: DevicePlan, gpu_ids: list[str], memory_mb: dict[str, int] | None,
               context_reserve_mb: int) -> tuple[dict[str, str], str | None]:
    """The environment that makes a task's processes see exactly ``gpu_ids`` and take the memory ``plan``
    says, and a note for the task's log when the plan could not be followed as written."""
    env = {"CUDA_VISIBLE_DEVICES": ",".join(gpu_ids)}
    if not plan.gpus:
        return env, None
    if not gpu_ids:
        return env, f"the task asked for {plan.gpus:g} GPU but Ray assigned it none: it sees no GPU"
    memory, note = plan.memory, None
    if memory == "share":
        known = [memory_mb[i] for i in gpu_ids if memory_mb and i in memory_mb]
        share_mb = int(min(known) * min(plan.gpus, 1.0)) - context_reserve_mb if known else 0
        if share_mb >= MIN_SHARE_MB:
            return {**env, GPU_MEMORY_LIMIT_ENV: str(share_mb)}, None
        why = (f"{plan.gpus:g} of the GPU's {min(known)} MiB less {context_reserve_mb} MiB for its CUDA context is "
               f"below {MIN_SHARE_MB} MiB" if known else "its GPU's memory could not be read (nvidia-smi)")
        memory, note = "growth", f"gpu_memory: share: {why}; memory growth instead"
    if memory == "growth":
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    elif memory == "limit":
        env[GPU_MEMORY_LIMIT_ENV] = str(plan.memory_limit_mb)
    return env, note


def apply_memory_limit() -> None:
    """In the training process, before the user's code: cap each visible GPU at the task's limit (a logical
    device of that size). Listing physical devices does not start TensorFlow's runtime, so the user's code
    (a strategy, MWMS's collectives) still configures it afterwards."""
    limit = os.environ.get(GPU_MEMORY_LIMIT_ENV)
    if not limit:
        return
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=int(limit))])


def communication_options():
    """``tf.distribute.experimental.CommunicationOptions`` for the job's ``collective`` (``TFRAY_COLLECTIVE``):
    ``MultiWorkerMirroredStrategy(communication_options=workers.gpus.communication_options())`` in a script."""
    import tensorflow as tf

    implementation = tf.distribute.experimental.CommunicationImplementation
    name = os.environ.get(COLLECTIVE_ENV, "auto").upper()
    return tf.distribute.experimental.CommunicationOptions(implementation=getattr(implementation, name))


def runtime_untouched() -> bool:
    """True when TensorFlow, if imported here, has neither listed its devices nor started its runtime: CUDA
    is not initialised, so processes forked from this one can still use their GPUs. (Reads TF's private
    eager context; an unknown layout counts as touched, so a TF upgrade that changes it is noticed.)"""
    eager = sys.modules.get("tensorflow.python.eager.context")
    if eager is None:
        return True
    context = eager.context_safe()
    if context is None:
        return True
    try:
        return context._context_handle is None and context._physical_devices is None
    except AttributeError:
        return False
