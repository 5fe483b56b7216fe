"""The job spec as one model: what to train and how to run it, under the keys users write.

:class:`JobSpec` puts ``controller.spec.training`` and
``controller.spec.running`` together and checks the rules that join them
(roles that fit the strategy, faults aimed at tasks that exist, elasticity).
Reading a file into it is ``controller.spec.file``; callers import all of it
from ``controller.spec``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator, model_validator

from controller.spec.predict import PredictSpec
from controller.spec.process import ProcessSpec
from controller.spec.roles import RoleSpec
from controller.spec.running import (
    CheckpointPolicy,
    Elastic,
    FailurePolicySpec,
    FaultSpec,
    Placement,
    StorageMode,
    Timeouts,
)
from controller.spec.runtime_env import RuntimeEnvSpec
from controller.spec.training import ROLE_ORDER, Collective, Entrypoint, Role, SpecModel, Strategy, check_environment

MAX_TASKS = 1024  # tasks in one job, every role together (README, "A job spec")
NAME_RULE = "1-64 letters, digits, '_', '.' or '-' (it names a folder), starting with a letter or digit"


class SpecError(ValueError):
    """A job spec that cannot be run: the message names the field and the fix."""


class JobSpec(SpecModel):
    """One training job: what to train (name, strategy, roles, entrypoint, env), then how to run it."""

    # ------------------------------------------------ what to train (controller/spec/training.py)
    name: str = Field(
        description="Job name: names the storage folder; a re-run of the same name resumes from its newest checkpoint."
    )
    strategy: Strategy = Field(description="tf.distribute strategy: " + ", ".join(s.value for s in Strategy) + ".")
    roles: dict[Role, RoleSpec] = Field(description="Task roles with counts and resources, e.g. chief, worker.")
    entrypoint: Entrypoint = Field(description="What every task runs.")
    collective: Collective = Field(
        Collective.AUTO, description="multi_worker_mirrored's all-reduce (TensorFlow's CommunicationOptions): "
        "auto (NCCL when every chief and worker task has whole GPUs, else TensorFlow's choice, ring on CPU), "
        "ring, or nccl (one task per GPU). ctx.make_strategy() applies it; a script reads it from "
        "TFRAY_COLLECTIVE or calls workers.gpus.communication_options().")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for every task "
                                "(names: letters, digits and '_', not first a digit; TF_CONFIG is set by tfray).")
    # ------------------------------------------------ how to run it (controller/spec/running.py)
    storage_path: str = Field(
        "runs",
        description="Where checkpoints, metrics and job state go: a folder (relative to the spec file's folder, "
        "or absolute) on the head node or a shared file system, or a URI such as gs://bucket/runs or "
        "s3://bucket/runs (the head keeps a local mirror and uploads it).",
    )
    storage_mode: StorageMode = Field(
        StorageMode.AUTO,
        description="auto: tasks that cannot see storage_path (local disks on a multi-node cluster) write on "
        "their own node and the chief's checkpoints are gathered to the head through Ray; shared: always write "
        "into storage_path; gather: always gather. A URI storage_path always gathers.",
    )
    # A part left out is its defaults, made without validation (defaults are not validated either way): calling
    # the class would build that model's own validator, once per part a spec leaves out, for nothing.
    checkpoint: CheckpointPolicy = Field(default_factory=CheckpointPolicy.model_construct,
                                         description="Checkpoint policy.")
    failure: FailurePolicySpec = Field(default_factory=FailurePolicySpec.model_construct,
                                       description="Failure handling.")
    placement: Placement = Field(Placement.PACK, description="How task bundles are placed on nodes.")
    elastic: Elastic | None = Field(
        None, description="Let a multi_worker_mirrored job run with fewer workers while capacity is short.")
    timeouts: Timeouts = Field(default_factory=Timeouts.model_construct, description="Timeouts in seconds.")
    faults: list[FaultSpec] = Field(
        default_factory=list, description="Faults to inject, for testing how the job survives them "
        "(also `tfray run --fault worker-1:kill@step=50`).",
    )
    process: ProcessSpec = Field(default_factory=ProcessSpec.model_construct,
                                 description="How each task's training process runs: its priority and threads.")
    runtime_env: RuntimeEnvSpec | None = Field(
        None, description="A Ray runtime environment (env_vars, pip, working_dir, py_modules, image_uri) for every "
        "task actor; unset, tasks run in the nodes' own Python, which starts each actor about 0.5 s sooner.")
    predict: PredictSpec | None = Field(
        None, description="How `tfray predict` runs the trained model over a data set: actors, their resources, "
        "batch size, the model-building function for --checkpoint, a price per node hour (all optional).")
    # The spec file's folder, against which relative paths resolve (set by the loader).
    _base_dir: str = PrivateAttr(".")

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
            raise ValueError(f"name '{value}' must be {NAME_RULE}")
        return value

    @field_validator("env")
    @classmethod
    def _env_is_an_environment(cls, value: dict[str, str]) -> dict[str, str]:
        return check_environment(value, "env")

    @field_validator("storage_path")
    @classmethod
    def _storage_path_is_a_path(cls, value: str) -> str:
        if not value.strip() or "\0" in value:
            raise ValueError("storage_path must be a folder or a URI (not empty, no NUL character)")
        return value

    @model_validator(mode="after")
    def _roles_fit_strategy(self) -> "JobSpec":
        counts = self.counts()
        if sum(counts.values()) > MAX_TASKS:
            raise ValueError(f"roles: {sum(counts.values())} tasks in all; a job has at most {MAX_TASKS}")
        for role in (Role.CHIEF, Role.EVALUATOR, Role.DATA_DISPATCHER):
            if counts[role] > 1:
                raise ValueError(f"roles.{role.value}.count is {counts[role]}: a job has at most one {role.value}")
        if bool(counts[Role.DATA_DISPATCHER]) != bool(counts[Role.DATA_WORKER]):
            raise ValueError("roles: the tf.data service needs both its roles: one data_dispatcher and at least one "
                             "data_worker" + ("; add roles.data_worker" if counts[Role.DATA_DISPATCHER]
                                              else "; add roles.data_dispatcher with count: 1"))
        if self.strategy is Strategy.MULTI_WORKER_MIRRORED:
            if counts[Role.PS]:
                raise ValueError("roles.ps: multi_worker_mirrored has no parameter servers; remove the ps role")
            if counts[Role.CHIEF] + counts[Role.WORKER] == 0:
                raise ValueError("roles: multi_worker_mirrored needs at least one chief or worker task")
        elif self.strategy is Strategy.PARAMETER_SERVER:
            if counts[Role.CHIEF] != 1:
                raise ValueError("roles.chief: parameter_server needs exactly one chief (the coordinator); "
                                 "set count: 1")
            if counts[Role.PS] < 1:
                raise ValueError("roles.ps: parameter_server needs at least one ps task; add roles.ps.count >= 1")
            if counts[Role.WORKER] < 1:
                raise ValueError("roles.worker: parameter_server needs at least one worker; "
                                 "add roles.worker.count >= 1")
        elif counts[Role.CHIEF] + counts[Role.WORKER] != 1 or counts[Role.PS] or counts[Role.EVALUATOR]:
            raise ValueError(
                f"roles: {self.strategy.value} runs in one process; give exactly one chief (or one worker) "
                "and no ps or evaluator (the tf.data service's data_dispatcher and data_worker may join it)"
            )
        return self

    @model_validator(mode="after")
    def _one_value_per_variable(self) -> "JobSpec":
        both = sorted(set(self.env) & set(self.runtime_env.env_vars if self.runtime_env else {}))
        if both:
            raise ValueError(f"{', '.join(both)}: set in env and in runtime_env.env_vars; keep one (env is free, "
                             "runtime_env slows each actor's start)")
        return self

    @model_validator(mode="after")
    def _devices_fit_strategy(self) -> "JobSpec":
        training = {role: self.roles[role].resources.gpu for role in (Role.CHIEF, Role.WORKER)
                    if self.counts()[role]}
        if self.collective is not Collective.AUTO:
            if self.strategy is not Strategy.MULTI_WORKER_MIRRORED:
                raise ValueError(f"collective: only multi_worker_mirrored all-reduces across tasks; remove it "
                                 f"for {self.strategy.value}")
            short = {role: gpu for role, gpu in training.items() if gpu < 1}
            if self.collective is Collective.NCCL and short:
                role, gpu = next(iter(short.items()))
                raise ValueError(f"collective: nccl needs a whole GPU for every chief and worker task, but "
                                 f"roles.{role.value}.resources.gpu is {gpu:g} (NCCL refuses two tasks on one GPU, "
                                 "and has nothing to do on CPUs): use ring, or auto")
        if self.strategy is Strategy.ONE_DEVICE:
            for role, gpu in training.items():
                if gpu > 1:
                    raise ValueError(f"roles.{role.value}.resources.gpu is {gpu:g}: one_device trains on one "
                                     "device; use mirrored to train on several GPUs in one task")
        return self

    @model_validator(mode="after")
    def _running_fits_roles(self) -> "JobSpec":
        for i, fault in enumerate(self.faults):
            have = self.counts()[Role(fault.key.role)]
            if fault.key.index >= have:
                raise ValueError(f"faults.{i}.task: the job has no task {fault.task} ({have} {fault.key.role} task(s))")
        if self.elastic is not None:
            self._check_elastic(self.counts()[Role.WORKER])
        return self

    def _check_elastic(self, workers: int) -> None:
        if self.strategy is not Strategy.MULTI_WORKER_MIRRORED:
            raise ValueError("elastic: only multi_worker_mirrored jobs resize; parameter_server jobs already "
                             "go on without a lost worker (remove elastic)")
        if self.elastic.max_workers is not None and self.elastic.max_workers != workers:
            raise ValueError(f"elastic.max_workers is {self.elastic.max_workers} but roles.worker.count is "
                             f"{workers}: the full size is the worker count; leave max_workers out or match it")
        if self.elastic.min_workers > workers:
            raise ValueError(f"elastic.min_workers is {self.elastic.min_workers}, more than roles.worker.count "
                             f"({workers})")
        if self.elastic.min_workers == 0 and not self.counts()[Role.CHIEF]:
            raise ValueError("elastic.min_workers: 0 leaves no task to train without a chief; use at least 1")

    def counts(self) -> dict[Role, int]:
        """Task count per role, zero for absent roles."""
        return {role: (self.roles[role].count if role in self.roles else 0) for role in ROLE_ORDER}

    def resolve(self, path: str) -> Path:
        """A path from the spec, resolved against the spec file's folder."""
        return (Path(self._base_dir) / os.path.expanduser(path)).resolve()

    @property
    def storage_uri(self) -> str | None:
        """The job's folder at a storage URI (gs://, s3://, file://), or None for a plain path."""
        from controller.store.storage import is_uri

        return f"{self.storage_path.rstrip('/')}/{self.name}" if is_uri(self.storage_path) else None

    @property
    def job_dir(self) -> Path:
        """Where this job's checkpoints, metrics and state live on the head (for a URI: its local mirror)."""
        if self.storage_uri is not None:
            from controller.store.storage import mirror_dir

            return mirror_dir(self.storage_path.rstrip("/")) / self.name
        return self.resolve(self.storage_path) / self.name

    @property
    def effective_storage_mode(self) -> StorageMode:
        """The storage mode tasks are sent: a URI is never written by tasks, so it always gathers."""
        return StorageMode.GATHER if self.storage_uri is not None else self.storage_mode
