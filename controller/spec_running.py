"""The job spec, part two: how to run it (checkpoints, failure budgets, elasticity, faults,
placement, storage, timeouts).

Same rules as ``controller.spec_training``: unknown keys are rejected, every
field is described, units are in the names.
"""

from __future__ import annotations

import enum
import re

from pydantic import Field, field_validator, model_validator

from controller.spec_training import SpecModel
from controller.wire import TaskKey


class CheckpointPolicy(SpecModel):
    """When checkpoints are written and how many are kept."""

    every_n_epochs: int = Field(1, ge=1, description="Write a checkpoint every N epochs (Keras callback).")
    keep: int = Field(3, ge=1, description="How many of the newest complete checkpoints to keep; older ones are deleted.")


class FailurePolicySpec(SpecModel):
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


class Elastic(SpecModel):
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


class FaultSpec(SpecModel):
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
        return str(TaskKey.parse(value))

    @property
    def key(self) -> TaskKey:
        return TaskKey.parse(self.task)

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


class Timeouts(SpecModel):
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
