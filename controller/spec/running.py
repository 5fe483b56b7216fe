"""The job spec, part two: how to run it (checkpoints, failure budgets, elasticity, faults,
placement, storage, timeouts).

Same rules as ``controller.spec.training``: unknown keys are rejected, every
field is described, units are in the names.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated

from pydantic import Field, StrictInt, field_validator, model_validator

from controller.spec.training import SpecModel
from protocol.task_key import TaskKey

DAY_S = 24 * 3600.0
Budget = Annotated[StrictInt, Field(ge=0, le=100_000)]
Step = Annotated[StrictInt, Field(ge=0, le=10**12)]


class CheckpointPolicy(SpecModel):
    """When checkpoints are written and how many are kept."""

    every_n_epochs: StrictInt = Field(1, ge=1, le=1_000_000, description="Write a checkpoint every N epochs "
                                      "(Keras callback).")
    keep: StrictInt = Field(3, ge=1, le=10_000, description="How many of the newest complete checkpoints to keep; "
                            "older ones are deleted.")


class FailurePolicySpec(SpecModel):
    """How many failures of each cause a job absorbs (controller/machine/failure_policy.py says what each leads to).

    Every restart of the cluster or replacement of a task spends one unit of
    its cause's budget; a preemption never spends an error budget. User code
    that raises fails the job at once and spends nothing.
    """

    max_preemptions: Budget = Field(
        10, description="Tasks lost with their node (spot reclaim, drain, crash) that are recovered from.")
    max_task_failures: Budget = Field(
        3, description="Task processes that died (signal, OOM) or hung that are recovered from.")
    max_infrastructure_failures: Budget = Field(
        3, description="Ray/gRPC failures (e.g. the coordinator lost a server) that are recovered from.")
    max_corrupt_checkpoints: Budget = Field(
        3, description="Checkpoints that fail verification, or whose restore fails with a data error, that are "
        "set aside (moved to the job's quarantine folder) before the job falls back to the one before.")
    backoff_s: float = Field(
        1.0, ge=0, le=DAY_S, description="Wait before the second restart of the cluster (the first is immediate); "
        "doubles with each further restart.")
    max_backoff_s: float = Field(30.0, ge=0, le=DAY_S, description="The longest wait before a restart.")

    def limits(self) -> dict[str, int]:
        return {"max_preemptions": self.max_preemptions, "max_task_failures": self.max_task_failures,
                "max_infrastructure_failures": self.max_infrastructure_failures,
                "max_corrupt_checkpoints": self.max_corrupt_checkpoints}


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

    min_workers: StrictInt = Field(ge=0, description="The fewest worker tasks the job may run with (besides the "
                                   "chief).")
    max_workers: StrictInt | None = Field(
        None, ge=1, description="The full size; defaults to roles.worker.count (if given, it must equal it).")
    capacity_wait_s: float = Field(
        60.0, ge=1, le=7 * DAY_S, description="How long a restart waits for the full size before it runs smaller.")


class FaultAction(str, enum.Enum):
    """A fault to inject (the same seam serves tests, benchmarks and users): into a task's process, which
    fires it itself (``workers/faults.py``), or into the network of the host the task runs on, which the
    controller carries out through a registered host network (``controller/machine/network_faults.py``)."""

    KILL = "kill"  # SIGKILL: the process dies at once (no notice)
    SIGTERM = "sigterm"  # SIGTERM: what a cloud sends before reclaiming a VM
    RAISE = "raise"  # the task's code raises InjectedFault at its next report
    HANG = "hang"  # SIGSTOP: the process freezes, heartbeats included
    SILENCE = "silence"  # the task's host drops every packet to and from every other host, for good
    PARTITION = "partition"  # the same for duration_s seconds, then the network heals
    SILENCE_HEAD = "silence_head"  # only the head and the task's host lose each other (its raylet loses the GCS)

    @property
    def on_network(self) -> bool:
        """Carried out on the network by the controller, not by the task's process."""
        return self in NETWORK_ACTIONS


NETWORK_ACTIONS = frozenset({FaultAction.SILENCE, FaultAction.PARTITION, FaultAction.SILENCE_HEAD})


class FaultSpec(SpecModel):
    """Inject one fault into one task, at a training step or after some seconds."""

    task: str = Field(description="The task, as role-index, e.g. 'worker-1' or 'ps-0'.")
    action: FaultAction = Field(description="kill | sigterm | raise | hang (the task's process); silence | "
                                "partition | silence_head (its host's network: needs a host network, e.g. the "
                                "multi-host harness bench/netns).")
    at_step: Step | None = Field(None, description="Fire when the task reports this step or a later one (the "
                                 "task must report: a function entrypoint, or a script using workers.get_context()); "
                                 "a network fault fires when the job (its chief) reports it, since the task on the "
                                 "host may report nothing (a PSS worker or ps).")
    at_save: Step | None = Field(None, description="Fire while the task writes the checkpoint of this step "
                                 "or a later one: after its files, before its seal (a half-written checkpoint).")
    after_s: float | None = Field(None, ge=0, le=365 * DAY_S, description="Fire this many seconds after the task "
                                  "starts running (a network fault: after the run of the cluster starts).")
    duration_s: float | None = Field(None, gt=0, le=DAY_S, description="partition only: how long the host stays "
                                     "cut off before its network heals.")
    restart: StrictInt = Field(0, ge=0, le=100_000, description="Which run of the cluster it applies to: 0 is the "
                               "first, 1 the run after the first restart, and so on.")

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
        if self.action.on_network and self.at_save is not None:
            raise ValueError(f"at_save: a {self.action.value} fault acts on the network, which the controller "
                             "changes between steps, not inside a task's save: use at_step or after_s")
        if (self.action is FaultAction.PARTITION) != (self.duration_s is not None):
            raise ValueError("duration_s: a partition needs one (how long until it heals)"
                             if self.action is FaultAction.PARTITION else
                             f"duration_s: only a partition heals; {self.action.value} has no duration")
        return self

    def when(self) -> str:
        """When it fires, in words (the dry-run and the summary)."""
        moment = (f"step {self.at_step}" if self.at_step is not None else f"the save of step {self.at_save}"
                  if self.at_save is not None else f"{self.after_s:g}s after start")
        return moment + (f" for {self.duration_s:g}s" if self.duration_s is not None else "")

    @classmethod
    def parse(cls, text: str) -> "FaultSpec":
        """From the CLI form TASK:ACTION@step=N, @save=N or @after=SECONDS, then optionally @restart=R, and
        @for=SECONDS for a partition (``worker-0:partition@step=100@for=20``)."""
        head, *triggers = text.strip().split("@")
        task, _, action = head.partition(":")
        if not task or not action or not triggers:
            raise ValueError(f"fault '{text}' must look like TASK:ACTION@WHEN, e.g. worker-1:kill@step=50 or "
                             "ps-0:hang@after=10")
        if action not in {a.value for a in FaultAction}:
            raise ValueError(f"fault '{text}': action '{action}' is not one of "
                             f"{', '.join(a.value for a in FaultAction)}")
        fields: dict = {"task": str(TaskKey.parse(task)), "action": action}
        for trigger in triggers:
            key, _, value = trigger.partition("=")
            name = FAULT_TRIGGERS.get(key)
            if name is None or not value:
                raise ValueError(f"fault '{text}': '@{trigger}' must be one of @step=N, @save=N, @after=SECONDS, "
                                 "@restart=R, @for=SECONDS")
            if name in fields:
                raise ValueError(f"fault '{text}': @{key} is given twice")
            fields[name] = _number(text, key, value, whole=name not in ("after_s", "duration_s"))
        return cls.model_validate(fields)


FAULT_TRIGGERS = {"step": "at_step", "save": "at_save", "after": "after_s", "restart": "restart", "for": "duration_s"}


def _number(text: str, key: str, value: str, whole: bool) -> int | float:
    if whole and not re.fullmatch(r"\d{1,12}", value):
        raise ValueError(f"fault '{text}': @{key}={value} must be a whole number, e.g. @{key}=50")
    if not whole and not re.fullmatch(r"\d{1,9}(\.\d{1,6})?", value):
        raise ValueError(f"fault '{text}': @{key}={value} must be a number of seconds, e.g. @{key}=10 or 2.5")
    return int(value) if whole else float(value)


class Placement(str, enum.Enum):
    """Ray placement-group strategy for the job's task bundles."""

    PACK = "pack"
    SPREAD = "spread"
    STRICT_PACK = "strict_pack"
    STRICT_SPREAD = "strict_spread"


class StorageMode(str, enum.Enum):
    """How checkpoints reach the job's storage path (see controller/store/storage.py)."""

    AUTO = "auto"  # each task checks whether it sees the storage path; gathers through Ray if not
    SHARED = "shared"  # every node sees the storage path (NFS or one machine): tasks write into it
    GATHER = "gather"  # tasks write on their own node; the chief's checkpoints are sent to the head


class Timeouts(SpecModel):
    """Bounds on every wait. A wait that expires ends the job with a clear error."""

    scheduling_s: float = Field(
        120, ge=1, le=7 * DAY_S, description="How long the cluster may take to provide every task's resources "
        "(gang scheduling).")
    startup_s: float = Field(
        180, ge=1, le=DAY_S, description="How long task actors may take to start and report their host:port.")
    finish_grace_s: float = Field(
        60, ge=0.1, le=DAY_S, description="After the chief finishes, how long other tasks may take to finish "
        "before teardown.")
    job_s: float | None = Field(None, ge=1, le=365 * DAY_S, description="Wall-clock limit of the whole job; unset "
                                "means none.")
    preemption_grace_s: float = Field(
        30, ge=1, le=DAY_S, description="After a SIGTERM (preemption notice) a task saves at its next step "
        "boundary; past this it is killed (GCP spot gives 30 s, AWS 120 s).")
    heartbeat_s: float = Field(
        60, ge=3, le=DAY_S, description="A task whose process sends no heartbeat for this long is treated as hung "
        "(tasks beat about once a second, so at least 3: fewer would call a busy task hung).")
