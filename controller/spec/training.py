"""The job spec, part one: what to train (strategy, the roles by name, entrypoint).

Each role's count and resources are ``controller.spec.roles``.

Pydantic v2 models that reject unknown keys (``extra="forbid"``) and carry a
description on every field, so ``tfray schema`` prints a JSON Schema and
every error names the field path and what to do. How a job is run (timeouts,
budgets, elasticity, placement, storage, faults) is ``controller.spec.running``;
``controller.spec`` puts both together under the YAML keys users write.
"""

from __future__ import annotations

import enum
import re
from typing import Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

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
    DATA_DISPATCHER = "data_dispatcher"  # the tf.data service's dispatcher (docs/design.md §15)
    DATA_WORKER = "data_worker"  # a tf.data service worker: runs the input pipeline, streams batches


ROLE_ORDER = tuple(Role(name) for name in ROLES)  # the wire protocol's order: chief, worker, ps, evaluator, data
DATA_ROLES = (Role.DATA_DISPATCHER, Role.DATA_WORKER)


class SpecModel(BaseModel):
    # Unknown keys are errors, numbers are finite (no .inf, no .nan), and the parsed spec is frozen. Each
    # model's validator is built when it is first used, not when its class is defined: `tfray validate` builds
    # the job spec's alone, once, instead of one for every model at import (about a third of its time).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


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
