"""The job spec, part one: what to train (strategy, roles with their resources, entrypoint).

Pydantic v2 models that reject unknown keys (``extra="forbid"``) and carry a
description on every field, so ``tfray schema`` prints a JSON Schema and
every error names the field path and what to do. How a job is run (timeouts,
budgets, elasticity, placement, storage, faults) is ``controller.spec.running``;
``controller.spec`` puts both together under the YAML keys users write.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from protocol.task_key import ROLES


class Strategy(str, enum.Enum):
    """The ``tf.distribute`` strategy a job trains with."""

    MULTI_WORKER_MIRRORED = "multi_worker_mirrored"
    PARAMETER_SERVER = "parameter_server"
    MIRRORED = "mirrored"
    ONE_DEVICE = "one_device"

    @property
    def is_multi_task(self) -> bool:
        """True when the strategy spans several task processes (needs TF_CONFIG)."""
        return self in (Strategy.MULTI_WORKER_MIRRORED, Strategy.PARAMETER_SERVER)



class Collective(str, enum.Enum):
    """How MultiWorkerMirroredStrategy's tasks all-reduce (``tf.distribute.experimental.CommunicationOptions``)."""

    AUTO = "auto"  # NCCL when every training task has whole GPUs, else TensorFlow's choice (ring on CPU)
    RING = "ring"  # TensorFlow's ring all-reduce over gRPC: CPUs, or tasks sharing a GPU
    NCCL = "nccl"  # NVIDIA's NCCL: GPUs only, one task per GPU


class Role(str, enum.Enum):
    """A TensorFlow task type, as it appears in TF_CONFIG."""

    CHIEF = "chief"
    WORKER = "worker"
    PS = "ps"
    EVALUATOR = "evaluator"


ROLE_ORDER = tuple(Role(name) for name in ROLES)  # the wire protocol's order: chief, worker, ps, evaluator


class SpecModel(BaseModel):
    # Unknown keys are errors, numbers are finite (no .inf, no .nan), and the parsed spec is frozen. Each
    # model's validator is built when it is first used, not when its class is defined: `tfray validate` builds
    # the job spec's alone, once, instead of one for every model at import (about a third of its time).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


# Limits that come from Ray and from what one controller can watch (README, "A job spec").
MAX_TASKS_PER_ROLE = 1024
MIN_RESOURCE = 0.0001  # Ray's resource granularity: a smaller amount is rounded to nothing
MAX_RESOURCE = 1_000_000  # more of one resource than any node has
RESOURCE_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
Count = Annotated[StrictInt, Field(ge=0, le=MAX_TASKS_PER_ROLE)]
MAX_ARGV = 10_000  # arguments in one command line (Linux's own limit is on bytes: ARG_MAX)


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
RESERVED_ENV = {"TF_CONFIG": "its place in the cluster", "TFRAY_CONTEXT": "its context",
                "CUDA_VISIBLE_DEVICES": "the GPUs Ray assigned it (roles.<role>.resources.gpu)",
                "TF_FORCE_GPU_ALLOW_GROWTH": "its GPU memory (roles.<role>.resources.gpu_memory: growth)",
                "TFRAY_GPU_MEMORY_LIMIT_MB": "its GPU memory (roles.<role>.resources.gpu_memory_mb)",
                "TFRAY_COLLECTIVE": "its all-reduce (collective)"}


def check_environment(value: dict[str, str], field: str) -> dict[str, str]:
    """Variables a process can be given: names without '=' or spaces, none that tfray sets, no NUL."""
    for name, text in value.items():
        if not ENV_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a variable name: use letters, digits and '_', not first a digit "
                             "(a name with '=' or a space cannot be set)")
        if name in RESERVED_ENV:
            raise ValueError(f"{name} is set by tfray for each task ({RESERVED_ENV[name]}); remove it from {field}")
        if "\0" in text:
            raise ValueError(f"{name}: a NUL character cannot be in an environment variable")
    return value


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

    count: Count = Field(1, description="Number of tasks of this role (chief and evaluator: 0 or 1; at most "
                         f"{MAX_TASKS_PER_ROLE}).")
    resources: Resources = Field(default_factory=Resources.model_construct,  # its defaults (see JobSpec.checkpoint)
                                 description="Resources of each task of this role.")


class Entrypoint(SpecModel):
    """What each task runs: exactly one of ``function``, ``script`` or ``module``."""

    function: str | None = Field(
        None,
        description="A Python function 'package.module:function' called with a TaskContext and the args as keywords.",
    )
    script: str | None = Field(
        None,
        description="A TF script path (relative to the spec file's folder or absolute), run as a subprocess "
        "with TF_CONFIG in its environment, as under Kubeflow TFJob or Vertex AI.",
    )
    module: str | None = Field(
        None, description="A Python module run as `python -m MODULE` in a subprocess with TF_CONFIG set."
    )
    args: dict[str, Union[StrictBool, StrictInt, StrictFloat, StrictStr]] = Field(
        default_factory=dict,
        description="Arguments: keywords for a function; `--key=value` flags for a script or module.",
    )
    argv: list[StrictStr] | None = Field(
        None, max_length=MAX_ARGV,
        description="A script's or module's exact command line after its name, passed as given (repeated flags, "
        "positional arguments, '--flag value' pairs), e.g. ['--epochs', '3', 'data/']; instead of args.",
    )
    keras_backup: StrictBool = Field(
        True,
        description="A script or module: every tf.keras fit whose callbacks have no BackupAndRestore (nor "
        "workers.keras.JobCallback) of their own gets TensorFlow's BackupAndRestore, backing up each epoch into the "
        "job's backups/auto folder, so after a restart fit goes on from the epoch after the last backup instead of "
        "from the first; false leaves fit as the script wrote it. A function entrypoint is left alone: its fit "
        "resumes with workers.keras.JobCallback.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "Entrypoint":
        given = [k for k in ("function", "script", "module") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of function ('pkg.mod:fn'), script ('train.py') or module ('pkg.train'); "
                f"got {', '.join(given) or 'none'}"
            )
        if self.function and not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", self.function):
            raise ValueError(f"function '{self.function}' must look like 'package.module:function'")
        if self.module and not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", self.module):
            raise ValueError(f"module '{self.module}' must be a dotted module name, e.g. 'trainer.task'")
        for key, value in self.args.items():
            if not re.fullmatch(r"[A-Za-z_][\w-]*", key):
                raise ValueError(f"args: {key!r} is not a usable name: letters, digits, '_' or '-', not first a digit")
            if isinstance(value, str) and "\0" in value:
                raise ValueError(f"args.{key}: a NUL character cannot be passed to a process")
        if self.script and "\0" in self.script:
            raise ValueError("script: a path cannot contain a NUL character")
        if self.argv is not None:
            self._check_argv()
        return self

    def _check_argv(self) -> None:
        if self.function:
            raise ValueError("argv is a command line, for a script or module; a function takes args as keywords")
        if self.args:
            raise ValueError("set args (--key=value flags) or argv (the exact command line), not both")
        for i, arg in enumerate(self.argv):
            if "\0" in arg:
                raise ValueError(f"argv.{i}: a NUL character cannot be passed to a process")

    @property
    def kind(self) -> str:
        return "function" if self.function else "script" if self.script else "module"

    def command_line(self) -> list[str]:
        """What a script or module gets after its name: argv as given, else the args as ``--key=value`` flags."""
        if self.argv is not None:
            return list(self.argv)
        out = []
        for key, value in self.args.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            out.append(f"--{key}={value}")
        return out
