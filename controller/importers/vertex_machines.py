"""Vertex AI machine types as what a task reserves: CPUs, memory and GPUs (the table in docs/migrating.md).

A Vertex AI replica owns its machine; a tfray task reserves its share of a
Ray node. So a machine type becomes every vCPU, every GPU (with its type as
Ray names it: a node with such GPUs offers the custom resource
``accelerator_type:<type>``), and ``MEMORY_SHARE`` of the memory: Ray offers
tasks a node's memory less its object store (30 % by default) and what the
system uses, so a task that asked for the whole machine would fit on no node
of that type. General-purpose families are a number of vCPUs times GiB per
vCPU (Compute Engine's "GB" are GiB: its API gives n1-standard-4 as
``memoryMb: 15360``); GPU machine types have fixed shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MEMORY_SHARE = 0.6


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_gib: float
    gpus: int = 0
    gpu_type: str | None = None  # Ray's accelerator type (ray.util.accelerators), e.g. "A100"

    @property
    def memory_mb(self) -> int:
        """What a task on this machine type reserves: MEMORY_SHARE of it, in MiB."""
        return math.floor(self.memory_gib * 1024 * MEMORY_SHARE)


# family: (GiB per vCPU, the vCPU counts Vertex AI training offers)
FAMILIES = {
    "n1-standard": (3.75, (4, 8, 16, 32, 64, 96)),
    "n1-highmem": (6.5, (2, 4, 8, 16, 32, 64, 96)),
    "n1-highcpu": (0.9, (16, 32, 64, 96)),
    "n2-standard": (4, (4, 8, 16, 32, 48, 64, 80)),
    "n2-highmem": (8, (2, 4, 8, 16, 32, 48, 64, 80)),
    "n2-highcpu": (1, (16, 32, 48, 64, 80, 96)),
    "e2-standard": (4, (4, 8, 16, 32)),
    "e2-highmem": (8, (2, 4, 8, 16)),
    "e2-highcpu": (1, (16, 32)),
    "c2-standard": (4, (4, 8, 16, 30, 60)),
}
GPU_MACHINES = {
    **{f"a2-highgpu-{n}g": Machine(12 * n, 85 * n, n, "A100") for n in (1, 2, 4, 8)},
    "a2-megagpu-16g": Machine(96, 1360, 16, "A100"),
    **{f"a2-ultragpu-{n}g": Machine(12 * n, 170 * n, n, "A100") for n in (1, 2, 4, 8)},
    "a3-highgpu-8g": Machine(208, 1872, 8, "H100"),
    "a3-megagpu-8g": Machine(208, 1872, 8, "H100"),
    **{f"g2-standard-{cpus}": Machine(cpus, 4 * cpus, gpus, "L4")
       for cpus, gpus in ((4, 1), (8, 1), (12, 1), (16, 1), (24, 2), (32, 1), (48, 4), (96, 8))},
}
# machineSpec.acceleratorType: Ray's name for the GPU (attached to n1 machines, or the GPU machines' own)
ACCELERATORS = {
    "NVIDIA_TESLA_K80": "K80", "NVIDIA_TESLA_P4": "P4", "NVIDIA_TESLA_P100": "P100", "NVIDIA_TESLA_V100": "V100",
    "NVIDIA_TESLA_T4": "T4", "NVIDIA_TESLA_A100": "A100", "NVIDIA_A100_80GB": "A100", "NVIDIA_L4": "L4",
    "NVIDIA_H100_80GB": "H100", "NVIDIA_H100_MEGA_80GB": "H100", "NVIDIA_H200_141GB": "H200", "NVIDIA_B200": "B200",
}


def machine(machine_type: str) -> Machine | None:
    """The shape of a machine type, None when the table does not know it."""
    if machine_type in GPU_MACHINES:
        return GPU_MACHINES[machine_type]
    family, _, size = machine_type.rpartition("-")
    if family in FAMILIES and size.isdigit() and int(size) in FAMILIES[family][1]:
        return Machine(int(size), FAMILIES[family][0] * int(size))
    return None


def markdown_table() -> str:
    """The table docs/migrating.md shows (a unit test keeps the two the same)."""
    rows = ["| machine type | cpu | memory_mb | gpu |", "|---|---|---|---|"]
    for family, (gib, sizes) in FAMILIES.items():
        rows.append(f"| `{family}-{{{','.join(map(str, sizes))}}}` | N | N x {gib:g} GiB x {MEMORY_SHARE:g}, in MiB | "
                    "acceleratorCount |")
    for name, shape in GPU_MACHINES.items():
        rows.append(f"| `{name}` | {shape.cpus} | {shape.memory_mb} | {shape.gpus} {shape.gpu_type} |")
    return "\n".join(rows)
