"""Each task's GPUs, decided from the spec (pure): what it reserves, how much memory it takes, how it all-reduces.

Ray reserves a task's ``gpu`` in its placement-group bundle and assigns it
GPU IDs; the task actor turns them into ``CUDA_VISIBLE_DEVICES`` for its
launcher and every training process (``workers/gpus.py``), so each sees
exactly its own GPUs and a task without one sees none. (Ray 2.60 no longer
blanks ``CUDA_VISIBLE_DEVICES`` for an actor with no GPU, so without this a
CPU task on a GPU node would see, and TensorFlow would take, every GPU.)

What this module resolves (docs/design.md §4, GPUs):

- **memory**: TensorFlow takes nearly all of a GPU's memory when it starts,
  so a second task on the same GPU dies out of memory. ``auto`` is memory
  growth for a share of a GPU (``gpu`` below 1) and TensorFlow's default for
  whole GPUs;
- **collective**: ``auto`` is NCCL when every chief and worker task has whole
  GPUs (NCCL refuses two ranks on one GPU), else TensorFlow's own choice;
- **replicas**: under a mirrored strategy each task trains one replica per
  GPU it sees (one on CPU), so ``num_replicas_in_sync`` is their sum.
"""

from __future__ import annotations

from controller.spec import Collective, GpuMemory, Resources, Role, Strategy
from protocol.devices import DevicePlan


def device_plan(resources: Resources) -> DevicePlan:
    """A task's GPUs and memory policy, ``auto`` resolved."""
    if not resources.gpu:
        return DevicePlan()
    if resources.gpu_memory_mb is not None:
        return DevicePlan(resources.gpu, "limit", resources.gpu_memory_mb)
    memory = resources.gpu_memory
    if memory is GpuMemory.AUTO:
        memory = GpuMemory.GROWTH if resources.gpu < 1 else GpuMemory.ALL
    return DevicePlan(resources.gpu, memory.value)


def collective(spec) -> str:
    """The all-reduce the job's MultiWorkerMirroredStrategy uses: ``auto``, ``ring`` or ``nccl``."""
    if spec.strategy is not Strategy.MULTI_WORKER_MIRRORED or spec.collective is not Collective.AUTO:
        return spec.collective.value
    training = [spec.roles[role].resources.gpu for role in (Role.CHIEF, Role.WORKER) if spec.counts()[role]]
    return Collective.NCCL.value if all(gpu >= 1 for gpu in training) else Collective.AUTO.value


def replicas(gpus: float) -> int:
    """Replicas one task trains under a mirrored strategy: one per GPU it sees, one on CPU (a share of a GPU
    is one GPU)."""
    return max(1, int(gpus))


def replicas_in_sync(spec) -> int | None:
    """``strategy.num_replicas_in_sync`` of the job's mirrored strategy (None for parameter_server)."""
    if spec.strategy is Strategy.PARAMETER_SERVER:
        return None
    if spec.strategy is Strategy.ONE_DEVICE:
        return 1
    return sum(spec.counts()[role] * replicas(spec.roles[role].resources.gpu)
               for role in (Role.CHIEF, Role.WORKER) if spec.counts()[role])


def uses_gpus(spec) -> bool:
    return any(role.resources.gpu for role in spec.roles.values())


MEMORY_TEXT = {
    "growth": "growth (TF_FORCE_GPU_ALLOW_GROWTH=true)",
    "share": "share, {share:g} x the GPU's memory less {reserve} MiB for its CUDA context (a logical device)",
    "all": "all (TensorFlow's default)",
    "limit": "{limit} MiB on each (a logical device)",
}


def describe_devices(plan: DevicePlan, context_reserve_mb: int) -> str:
    """One task's GPUs for the dry-run: what it reserves, what it sees, its memory."""
    if not plan.gpus:
        return 'none (CUDA_VISIBLE_DEVICES="")'
    memory = MEMORY_TEXT[plan.memory].format(share=plan.gpus, reserve=context_reserve_mb, limit=plan.memory_limit_mb)
    if plan.gpus < 1:
        seen = f"{plan.gpus:g} of one, shared (CUDA_VISIBLE_DEVICES=<the id Ray assigns>)"
    else:
        ids = "the id" if plan.gpus == 1 else f"the {int(plan.gpus)} ids"
        seen = f"{plan.gpus:g} of its own (CUDA_VISIBLE_DEVICES=<{ids} Ray assigns>)"
    return f"{seen}; memory: {memory}"


def describe_job(spec) -> list[str]:
    """The dry-run's job lines about devices: who sees which GPUs, the all-reduce, the replicas."""
    if not uses_gpus(spec):
        lines = ['GPUs: none; every task sees no GPU (CUDA_VISIBLE_DEVICES="")']
    else:
        lines = ["GPUs: each task sees only the GPUs Ray assigns it (CUDA_VISIBLE_DEVICES)"]
    if spec.strategy is Strategy.MULTI_WORKER_MIRRORED:
        resolved = collective(spec)
        why = {"nccl": "NCCL", "ring": "TensorFlow's ring", "auto": "TensorFlow's choice, ring on CPU"}[resolved]
        lines.append(f"all-reduce: {resolved} ({why}; collective: {spec.collective.value})")
    replicas_total = replicas_in_sync(spec)
    if replicas_total is not None:
        lines.append(f"replicas: {replicas_total} (one per GPU of each chief and worker, one without: "
                     f"global batch = per-replica batch x {replicas_total})")
    return lines
