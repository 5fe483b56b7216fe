"""How a task uses GPUs: its :class:`DevicePlan`, and the environment variables that tell its training process.

Part of the wire protocol (``protocol.wire`` imports all three names from
here, and every other module may take them from there), kept apart because
the plan needs them too: ``tfray dry-run`` then costs one small dataclass,
not the protocol's dozen or so (about 20 ms of a command that should answer
at once).
"""

from __future__ import annotations

from dataclasses import dataclass

# What a training process is told about its GPUs, in its environment (set by the task actor; scripts may read them).
GPU_MEMORY_LIMIT_ENV = "TFRAY_GPU_MEMORY_LIMIT_MB"  # a hard limit on each visible GPU, applied before user code
COLLECTIVE_ENV = "TFRAY_COLLECTIVE"  # MultiWorkerMirroredStrategy's all-reduce: auto | ring | nccl


@dataclass(frozen=True)
class DevicePlan:
    """How a task uses GPUs: what Ray reserves for it and how much of each GPU's memory TensorFlow takes
    (the spec's choices with ``auto`` resolved, by ``controller/plan/gpus.py``)."""

    gpus: float = 0.0  # Ray's num_gpus for the task: 0, a share of one GPU below 1, or whole GPUs
    memory: str = "none"  # growth | share | all | limit; none without a GPU
    memory_limit_mb: int | None = None  # with memory == "limit": MiB on each of its GPUs
