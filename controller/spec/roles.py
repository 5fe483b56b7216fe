"""The job spec's roles: what each role gets (how many tasks, their resources, the CPUs they may run on).

Same rules as ``controller.spec.training``: unknown keys are rejected, every
field carries a description, and the limits come from Ray and from what one
controller can watch (README, "A job spec").
"""

from __future__ import annotations

import enum
import re
from typing import Annotated

from pydantic import Field, StrictInt, field_validator, model_validator

from controller.spec.training import SpecModel

# Limits that come from Ray and from what one controller can watch (README, "A job spec").
MAX_TASKS_PER_ROLE = 1024
MIN_RESOURCE = 0.0001  # Ray's resource granularity: a smaller amount is rounded to nothing
MAX_RESOURCE = 1_000_000  # more of one resource than any node has
RESOURCE_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
Count = Annotated[StrictInt, Field(ge=0, le=MAX_TASKS_PER_ROLE)]
MAX_CPU_ID = 4095  # Linux's CONFIG_NR_CPUS is at most 8192; 4096 covers every machine Ray runs on


def check_amount(name: str, amount: float) -> float:
    """A resource amount Ray can hold: 0, or at least its granularity, and not absurdly large."""
    if 0 < amount < MIN_RESOURCE:
        raise ValueError(f"{name} is {amount:g}, below Ray's precision of {MIN_RESOURCE:g}: use 0 or at least "
                         f"{MIN_RESOURCE:g}")
    if amount > MAX_RESOURCE:
        raise ValueError(f"{name} is {amount:g}: more than any node has; use at most {MAX_RESOURCE:g}")
    return amount


class GpuMemory(str, enum.Enum):
    """How much of each of its GPUs' memory a task's TensorFlow takes (docs/design.md §4, GPUs)."""

    AUTO = "auto"  # growth for a share of a GPU (gpu < 1), all for whole GPUs
    GROWTH = "growth"  # allocate as needed (TF_FORCE_GPU_ALLOW_GROWTH=true): tasks sharing a GPU both fit
    SHARE = "share"  # a hard limit of gpu x the device's memory (a logical device of that size)
    ALL = "all"  # TensorFlow's default: nearly all of it at start, the fastest for a GPU of its own


MAX_GPU_MEMORY_MB = 1 << 22  # 4 TiB: more than any GPU has


class Resources(SpecModel):
    """Resources of one task of a role; they become one placement-group bundle."""

    cpu: float = Field(1.0, ge=0, description="CPU cores reserved for the task (Ray `num_cpus`): 0, or at "
                       f"least {MIN_RESOURCE:g}.")
    gpu: float = Field(0.0, ge=0, description="GPUs reserved for the task (Ray `num_gpus`): a share of one GPU "
                       "below 1, or whole GPUs.")
    gpu_memory: GpuMemory = Field(
        GpuMemory.AUTO, description="How much of each GPU's memory the task's TensorFlow takes: growth (as "
        "needed; TF_FORCE_GPU_ALLOW_GROWTH), share (a hard limit of gpu x the device's memory), all "
        "(TensorFlow's default: nearly all at start), or auto: growth for a share of a GPU (gpu below 1, "
        "so two tasks on one GPU both fit), all for whole GPUs. Needs gpu > 0.")
    gpu_memory_mb: StrictInt | None = Field(
        None, ge=64, le=MAX_GPU_MEMORY_MB, description="A hard limit in MiB on each of the task's GPUs (a logical "
        "device of that size, set before your code runs); instead of gpu_memory. Needs gpu > 0.")
    memory_mb: StrictInt | None = Field(
        None, ge=1, le=1 << 30, description="Memory reserved for the task in MiB (Ray `memory`); unset reserves none."
    )
    custom: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources, e.g. {'spot': 1} or {'node:10.0.0.5': 0.01}.",
    )

    @field_validator("cpu")
    @classmethod
    def _cpu_amount(cls, value: float) -> float:
        return check_amount("cpu", value)

    @field_validator("gpu")
    @classmethod
    def _gpu_amount(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError(f"gpu is {value:g}: a task takes a share of one GPU (below 1) or whole GPUs, "
                             f"e.g. {int(value)} or {int(value) + 1}")
        return check_amount("gpu", value)

    @field_validator("custom")
    @classmethod
    def _custom_names_and_amounts(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if name in ("CPU", "GPU", "memory"):
                raise ValueError(f"'{name}' is a built-in resource: set it with cpu/gpu/memory_mb instead of custom")
            if not RESOURCE_NAME.fullmatch(name):
                raise ValueError(f"custom resource name {name!r} must be 1-128 letters, digits or _ . : / -")
            if amount < 0:
                raise ValueError(f"custom resource '{name}' is negative ({amount}): use a value >= 0")
            check_amount(f"custom resource '{name}'", amount)
        return value

    @model_validator(mode="after")
    def _gpu_memory_needs_a_gpu(self) -> "Resources":
        if not self.gpu and (self.gpu_memory is not GpuMemory.AUTO or self.gpu_memory_mb is not None):
            name = "gpu_memory_mb" if self.gpu_memory_mb is not None else "gpu_memory"
            raise ValueError(f"{name} is set but the task has no GPU (gpu: 0): set gpu, or remove {name}")
        if self.gpu_memory_mb is not None and self.gpu_memory is not GpuMemory.AUTO:
            raise ValueError(f"gpu_memory is '{self.gpu_memory.value}' and gpu_memory_mb is {self.gpu_memory_mb}: "
                             "set one of them (gpu_memory_mb is a limit of its own)")
        if self.gpu_memory is GpuMemory.SHARE and self.gpu >= 1:
            raise ValueError(f"gpu_memory is 'share' but gpu is {self.gpu:g}: share divides one GPU between tasks "
                             "(gpu below 1); a task with whole GPUs has them to itself: use all or growth")
        return self

    @model_validator(mode="after")
    def _reserves_something(self) -> "Resources":
        if not (self.cpu or self.gpu or self.memory_mb or any(self.custom.values())):
            raise ValueError("a task must reserve some resource (Ray rejects empty bundles): set cpu > 0, e.g. 0.5")
        return self

    def as_bundle(self) -> dict[str, float]:
        """The Ray placement-group bundle for one task (zero amounts left out)."""
        bundle: dict[str, float] = {}
        if self.cpu:
            bundle["CPU"] = self.cpu
        if self.gpu:
            bundle["GPU"] = self.gpu
        if self.memory_mb:
            bundle["memory"] = float(self.memory_mb * 1024 * 1024)
        bundle.update({k: v for k, v in self.custom.items() if v})
        return bundle


class RoleSpec(SpecModel):
    """How many tasks of one role, and what each gets."""

    count: Count = Field(1, description="Number of tasks of this role (chief, evaluator and data_dispatcher: 0 or 1; at most "
                         f"{MAX_TASKS_PER_ROLE}).")
    resources: Resources = Field(default_factory=Resources.model_construct,  # its defaults (see JobSpec.checkpoint)
                                 description="Resources of each task of this role.")
    cpu_affinity: list[Annotated[StrictInt, Field(ge=0, le=MAX_CPU_ID)]] | None = Field(
        None, min_length=1, max_length=MAX_CPU_ID + 1,
        description="Pin this role's processes to these CPUs of their node, by id as `taskset -c` numbers them, "
        "e.g. [0] (Linux). TensorFlow then sizes its thread pools to them, as under taskset. For one machine "
        "that stands in for several (a benchmark: trainers on one core, data workers on another) or a node "
        "shared with other work; Ray's resources still decide where tasks go. Unset: the node's CPUs.")

    @field_validator("cpu_affinity")
    @classmethod
    def _distinct_cpus(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"cpu_affinity {value} names a CPU twice; list each once")
        return value
