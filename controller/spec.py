"""The job spec: what to train and how to run it, validated on the way in.

A job spec is a YAML file loaded into pydantic v2 models that reject unknown
keys (``extra="forbid"``) and carry a description on every field, so that
``tfray schema`` can print a JSON Schema and every error names the field path
and what to do about it. Checks that need the file system (does the
entrypoint exist?) live in ``controller.entrypoint``.
"""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator


class SpecError(ValueError):
    """A job spec that cannot be run: the message names the field and the fix."""


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


# Strategies this version can run; the others are accepted names with a clear
# "not yet" error, so specs written for later versions fail loudly, not oddly.
SUPPORTED_STRATEGIES = (Strategy.MULTI_WORKER_MIRRORED, Strategy.PARAMETER_SERVER, Strategy.MIRRORED,
                        Strategy.ONE_DEVICE)


class Role(str, enum.Enum):
    """A TensorFlow task type, as it appears in TF_CONFIG."""

    CHIEF = "chief"
    WORKER = "worker"
    PS = "ps"
    EVALUATOR = "evaluator"


ROLE_ORDER = (Role.CHIEF, Role.WORKER, Role.PS, Role.EVALUATOR)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Model):
    """Resources of one task of a role; they become one placement-group bundle."""

    cpu: float = Field(1.0, ge=0, description="CPU cores reserved for the task (Ray `num_cpus`).")
    gpu: float = Field(0.0, ge=0, description="GPUs reserved for the task (Ray `num_gpus`).")
    memory_mb: int | None = Field(
        None, ge=1, description="Memory reserved for the task in MiB (Ray `memory`); unset reserves none."
    )
    custom: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources, e.g. {'spot': 1} or {'node:10.0.0.5': 0.01}.",
    )

    @field_validator("custom")
    @classmethod
    def _no_builtin_names(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if name in ("CPU", "GPU", "memory"):
                raise ValueError(f"'{name}' is a built-in resource: set it with cpu/gpu/memory_mb instead of custom")
            if amount < 0:
                raise ValueError(f"custom resource '{name}' is negative ({amount}): use a value >= 0")
        return value

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


class RoleSpec(_Model):
    """How many tasks of one role, and what each gets."""

    count: int = Field(1, ge=0, description="Number of tasks of this role (chief and evaluator: 0 or 1).")
    resources: Resources = Field(default_factory=Resources, description="Resources of each task of this role.")


class Entrypoint(_Model):
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
    args: dict[str, Union[str, int, float, bool]] = Field(
        default_factory=dict,
        description="Arguments: keywords for a function; `--key=value` flags for a script or module.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "Entrypoint":
        given = [k for k in ("function", "script", "module") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of function ('pkg.mod:fn'), script ('train.py') or module ('pkg.train'); "
                f"got {', '.join(given) or 'none'}"
            )
        if self.function and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.function):
            raise ValueError(f"function '{self.function}' must look like 'package.module:function'")
        return self

    @property
    def kind(self) -> str:
        return "function" if self.function else "script" if self.script else "module"

    def argv(self) -> list[str]:
        """The args as command-line flags for a script or module."""
        out = []
        for key, value in self.args.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            out.append(f"--{key}={value}")
        return out


class CheckpointPolicy(_Model):
    """When checkpoints are written and how many are kept."""

    every_n_epochs: int = Field(1, ge=1, description="Write a checkpoint every N epochs (Keras callback).")
    keep: int = Field(3, ge=1, description="How many of the newest complete checkpoints to keep; older ones are deleted.")


class FailurePolicySpec(_Model):
    """How many failures of each cause a job absorbs (controller/policy.py says what each leads to).

    Every restart of the cluster or replacement of a task spends one unit of
    its cause's budget; a preemption never spends an error budget. User code
    that raises fails the job at once and spends nothing.
    """

    max_preemptions: int = Field(
        10, ge=0, description="Tasks lost with their node (spot reclaim, drain, crash) that are recovered from.")
    max_task_failures: int = Field(
        3, ge=0, description="Task processes that died (signal, OOM) or hung that are recovered from.")
    max_infrastructure_failures: int = Field(
        3, ge=0, description="Ray/gRPC failures (e.g. the coordinator lost a server) that are recovered from.")
    backoff_s: float = Field(
        1.0, ge=0, description="Wait before the second restart of the cluster (the first is immediate); doubles "
        "with each further restart.")
    max_backoff_s: float = Field(30.0, ge=0, description="The longest wait before a restart.")

    def limits(self) -> dict[str, int]:
        return {"max_preemptions": self.max_preemptions, "max_task_failures": self.max_task_failures,
                "max_infrastructure_failures": self.max_infrastructure_failures}


class Elastic(_Model):
    """A MultiWorkerMirroredStrategy job that may run with fewer workers while capacity is short.

    After a node is lost or preempted the job first asks for its full size;
    if the cluster cannot give it within ``capacity_wait_s`` it restarts with
    as many workers as fit, never fewer than ``min_workers``. Once it runs
    smaller, each new checkpoint is a chance to grow: when the missing
    workers' resources are free again, the job restarts at full size from
    that checkpoint (a planned restart that spends no budget). The
    per-replica batch stays fixed, so the global batch is per-replica batch
    x replicas: it shrinks with the job (scale a fixed global batch in your
    code with ``ctx.num_workers`` if you want the other semantics).
    """

    min_workers: int = Field(ge=0, description="The fewest worker tasks the job may run with (besides the chief).")
    max_workers: int | None = Field(
        None, ge=1, description="The full size; defaults to roles.worker.count (if given, it must equal it).")
    capacity_wait_s: float = Field(
        60.0, gt=0, description="How long a restart waits for the full size before it runs smaller.")


class FaultAction(str, enum.Enum):
    """A fault to inject into a task's process (the same seam serves tests, benchmarks and users)."""

    KILL = "kill"  # SIGKILL: the process dies at once (no notice)
    SIGTERM = "sigterm"  # SIGTERM: what a cloud sends before reclaiming a VM
    RAISE = "raise"  # the task's code raises InjectedFault at its next report
    HANG = "hang"  # SIGSTOP: the process freezes, heartbeats included


class FaultSpec(_Model):
    """Inject one fault into one task, at a training step or after some seconds."""

    task: str = Field(description="The task, as role-index, e.g. 'worker-1' or 'ps-0'.")
    action: FaultAction = Field(description="kill | sigterm | raise | hang.")
    at_step: int | None = Field(None, ge=0, description="Fire when the task reports this step or a later one.")
    at_save: int | None = Field(None, ge=0, description="Fire while the task writes the checkpoint of this step "
                                "or a later one: after its files, before its seal (a half-written checkpoint).")
    after_s: float | None = Field(None, ge=0, description="Fire this many seconds after the task starts running.")
    restart: int = Field(0, ge=0, description="Which run of the cluster it applies to: 0 is the first, "
                         "1 the run after the first restart, and so on.")

    @field_validator("task")
    @classmethod
    def _task_name(cls, value: str) -> str:
        if not re.fullmatch(r"(chief|worker|ps|evaluator)-\d+", value):
            raise ValueError(f"task '{value}' must be role-index, e.g. worker-1 (roles: chief, worker, ps, evaluator)")
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> "FaultSpec":
        if sum(x is not None for x in (self.at_step, self.after_s, self.at_save)) != 1:
            raise ValueError("set exactly one of at_step, at_save or after_s")
        return self

    @classmethod
    def parse(cls, text: str) -> "FaultSpec":
        """From the CLI form TASK:ACTION@step=N, @save=N or @after=SECONDS, then optionally @restart=R."""
        match = re.fullmatch(r"([a-z]+-\d+):([a-z]+)((?:@(?:step|save|after|restart)=[\d.]+)+)", text.strip())
        if not match:
            raise ValueError(f"fault '{text}' must look like worker-1:kill@step=50 or ps-0:hang@after=10")
        fields: dict = {"task": match.group(1), "action": match.group(2)}
        for key, value in re.findall(r"@(step|save|after|restart)=([\d.]+)", match.group(3)):
            name = {"step": "at_step", "save": "at_save", "after": "after_s", "restart": "restart"}[key]
            fields[name] = float(value) if name == "after_s" else int(float(value))
        return cls.model_validate(fields)


class Placement(str, enum.Enum):
    """Ray placement-group strategy for the job's task bundles."""

    PACK = "pack"
    SPREAD = "spread"
    STRICT_PACK = "strict_pack"
    STRICT_SPREAD = "strict_spread"


class StorageMode(str, enum.Enum):
    """How checkpoints reach the job's storage path (see controller/storage.py)."""

    AUTO = "auto"  # each task checks whether it sees the storage path; gathers through Ray if not
    SHARED = "shared"  # every node sees the storage path (NFS or one machine): tasks write into it
    GATHER = "gather"  # tasks write on their own node; the chief's checkpoints are sent to the head


class Timeouts(_Model):
    """Bounds on every wait. A wait that expires ends the job with a clear error."""

    scheduling_s: float = Field(
        120, gt=0, description="How long the cluster may take to provide every task's resources (gang scheduling)."
    )
    startup_s: float = Field(
        180, gt=0, description="How long task actors may take to start and report their host:port."
    )
    finish_grace_s: float = Field(
        60, gt=0, description="After the chief finishes, how long other tasks may take to finish before teardown."
    )
    job_s: float | None = Field(None, gt=0, description="Wall-clock limit of the whole job; unset means none.")
    preemption_grace_s: float = Field(
        30, gt=0, description="After a SIGTERM (preemption notice) a task saves at its next step boundary; "
        "past this it is killed (GCP spot gives 30 s, AWS 120 s).",
    )
    heartbeat_s: float = Field(
        60, gt=0, description="A task whose process sends no heartbeat for this long is treated as hung."
    )


class JobSpec(_Model):
    """One training job."""

    name: str = Field(
        description="Job name: names the storage folder; a re-run of the same name resumes from its newest checkpoint."
    )
    strategy: Strategy = Field(description="tf.distribute strategy: " + ", ".join(s.value for s in Strategy) + ".")
    roles: dict[Role, RoleSpec] = Field(description="Task roles with counts and resources, e.g. chief, worker.")
    entrypoint: Entrypoint = Field(description="What every task runs.")
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
    checkpoint: CheckpointPolicy = Field(default_factory=CheckpointPolicy, description="Checkpoint policy.")
    failure: FailurePolicySpec = Field(default_factory=FailurePolicySpec, description="Failure handling.")
    placement: Placement = Field(Placement.PACK, description="How task bundles are placed on nodes.")
    elastic: Elastic | None = Field(
        None, description="Let a multi_worker_mirrored job run with fewer workers while capacity is short.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Timeouts in seconds.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for every task.")
    faults: list[FaultSpec] = Field(
        default_factory=list, description="Faults to inject, for testing how the job survives them "
        "(also `tfray run --fault worker-1:kill@step=50`).",
    )
    # The spec file's folder, against which relative paths resolve (set by the loader).
    _base_dir: str = PrivateAttr(".")

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
            raise ValueError(
                f"name '{value}' must be 1-64 letters, digits, '_', '.' or '-' (it names a folder), "
                "starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _roles_fit_strategy(self) -> "JobSpec":
        counts = self.counts()
        for role in (Role.CHIEF, Role.EVALUATOR):
            if counts[role] > 1:
                raise ValueError(f"roles.{role.value}.count is {counts[role]}: a job has at most one {role.value}")
        for i, fault in enumerate(self.faults):
            role, index = fault.task.rsplit("-", 1)
            if int(index) >= counts[Role(role)]:
                raise ValueError(f"faults.{i}.task: the job has no task {fault.task} "
                                 f"({counts[Role(role)]} {role} task(s))")
        if self.strategy not in SUPPORTED_STRATEGIES:
            raise ValueError(
                f"strategy '{self.strategy.value}' is not supported by this version yet; "
                f"use one of: {', '.join(s.value for s in SUPPORTED_STRATEGIES)}"
            )
        if self.strategy is Strategy.MULTI_WORKER_MIRRORED:
            if counts[Role.PS]:
                raise ValueError("roles.ps: multi_worker_mirrored has no parameter servers; remove the ps role")
            if counts[Role.CHIEF] + counts[Role.WORKER] == 0:
                raise ValueError("roles: multi_worker_mirrored needs at least one chief or worker task")
        if self.elastic is not None:
            workers = counts[Role.WORKER]
            if self.strategy is not Strategy.MULTI_WORKER_MIRRORED:
                raise ValueError("elastic: only multi_worker_mirrored jobs resize; parameter_server jobs already "
                                 "go on without a lost worker (remove elastic)")
            if self.elastic.max_workers is not None and self.elastic.max_workers != workers:
                raise ValueError(f"elastic.max_workers is {self.elastic.max_workers} but roles.worker.count is "
                                 f"{workers}: the full size is the worker count; leave max_workers out or match it")
            if self.elastic.min_workers > workers:
                raise ValueError(f"elastic.min_workers is {self.elastic.min_workers}, more than roles.worker.count "
                                 f"({workers})")
            if self.elastic.min_workers == 0 and counts[Role.CHIEF] == 0:
                raise ValueError("elastic.min_workers: 0 leaves no task to train without a chief; use at least 1")
        if self.strategy is Strategy.PARAMETER_SERVER:
            if counts[Role.CHIEF] != 1:
                raise ValueError("roles.chief: parameter_server needs exactly one chief (the coordinator); set count: 1")
            if counts[Role.PS] < 1:
                raise ValueError("roles.ps: parameter_server needs at least one ps task; add roles.ps.count >= 1")
            if counts[Role.WORKER] < 1:
                raise ValueError("roles.worker: parameter_server needs at least one worker; add roles.worker.count >= 1")
        elif not self.strategy.is_multi_task:
            if counts[Role.CHIEF] + counts[Role.WORKER] != 1 or counts[Role.PS] or counts[Role.EVALUATOR]:
                raise ValueError(
                    f"roles: {self.strategy.value} runs in one process; give exactly one chief (or one worker) "
                    "and no other roles"
                )
        return self

    def counts(self) -> dict[Role, int]:
        """Task count per role, zero for absent roles."""
        return {role: (self.roles[role].count if role in self.roles else 0) for role in ROLE_ORDER}

    def resolve(self, path: str) -> Path:
        """A path from the spec, resolved against the spec file's folder."""
        return (Path(self._base_dir) / os.path.expanduser(path)).resolve()

    @property
    def storage_uri(self) -> str | None:
        """The job's folder at a storage URI (gs://, s3://, file://), or None for a plain path."""
        from controller.storage import is_uri

        return f"{self.storage_path.rstrip('/')}/{self.name}" if is_uri(self.storage_path) else None

    @property
    def job_dir(self) -> Path:
        """Where this job's checkpoints, metrics and state live on the head (for a URI: its local mirror)."""
        if self.storage_uri is not None:
            from controller.storage import mirror_dir

            return mirror_dir(self.storage_path.rstrip("/")) / self.name
        return self.resolve(self.storage_path) / self.name

    @property
    def effective_storage_mode(self) -> StorageMode:
        """The storage mode tasks are sent: a URI is never written by tasks, so it always gathers."""
        return StorageMode.GATHER if self.storage_uri is not None else self.storage_mode


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: the job spec is not valid:"]
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key; check its spelling (see `tfray schema` for every allowed key)"
        elif item["type"] == "missing":
            msg = "required field is missing"
        elif item["type"] == "enum":
            msg = f"{msg} (got {item.get('input')!r})"
        lines.append(f"  - {path}: {msg}" if path else f"  - {msg}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "spec", base_dir: str | os.PathLike = ".") -> JobSpec:
    """Validate a loaded YAML/JSON mapping into a JobSpec, or raise SpecError."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the job spec must be a YAML mapping (key: value), got {type(data).__name__}")
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_validation_error(err, source)) from None
    spec._base_dir = str(base_dir)
    return spec


def load_spec(path: str | os.PathLike) -> JobSpec:
    """Read and validate a job spec file; relative paths in it resolve against its folder."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such job spec file; pass the path of a YAML job spec")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    return parse_spec(data, source=str(path), base_dir=path.resolve().parent)
