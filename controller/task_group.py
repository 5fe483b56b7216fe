"""The seam between the controller and Ray: what a task group must do.

The controller drives a :class:`TaskGroup` and never touches Ray itself, so
unit tests inject a fake group and step the state machine, while real runs
use :class:`controller.provisioner.RayTaskGroup`. Errors that end a job
before training starts are exception types, one per cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.plan import TaskKey, TaskSpec
from controller.policy import FailureCause
from controller.state import TaskStatus


class SchedulingTimeoutError(RuntimeError):
    """The cluster did not provide every task's resources within the scheduling timeout."""


class TaskStartError(RuntimeError):
    """A task actor did not start, or did not report its address, in time."""


class NodeLostError(TaskStartError):
    """A task could not be (re)started because its node is gone."""


@dataclass(frozen=True)
class TaskInfo:
    """Where a started task lives."""

    address: str  # host:port reserved for its TF server
    node_id: str
    hostname: str
    pid: int


@dataclass(frozen=True)
class TaskLaunch:
    """Everything one task needs to run the entrypoint (sent to the actor as is)."""

    job_name: str
    job_dir: str
    attempt: int
    strategy: str
    role: str
    index: int
    is_chief: bool
    num_workers: int  # tasks in the training cluster (chief + workers)
    tf_config: dict | None
    entrypoint_kind: str  # function | script | module
    entrypoint_target: str  # 'pkg.mod:fn', a script path or a module name
    args: dict = field(default_factory=dict)
    argv: tuple = ()
    env: dict = field(default_factory=dict)
    sys_path: tuple = ()
    checkpoint_every_n_epochs: int = 1
    restore_from: str | None = None  # newest complete checkpoint folder
    restore_step: int | None = None
    restore_epoch: int | None = None
    runs_server: bool = False  # PSS ps/worker: serve a tf.distribute.Server until torn down
    servers: tuple = ()  # (task, host:port) the chief must reach before its code runs (PSS)
    server_wait_s: float = 60.0  # bound on that wait
    faults: tuple = ()  # faults to inject into this task (dicts of controller.spec.FaultSpec)
    preemption_grace_s: float = 30.0  # after a SIGTERM notice, how long the task may take to save
    storage_mode: str = "shared"  # shared | gather | auto (controller.spec.StorageMode; see controller/storage.py)
    storage_token: str | None = None  # in job_dir/TOKEN_FILE when the task sees the head's storage (auto mode)
    restore_files: Any = None  # [ObjectRef of the restore checkpoint's files] for tasks that gather (set by Ray group)

    @property
    def task(self) -> str:
        return f"{self.role}-{self.index}"


@dataclass(frozen=True)
class TaskEvent:
    """A task reached an end: it finished (with a result) or failed (with an error)."""

    key: TaskKey
    status: TaskStatus
    error: str | None = None
    result: Any = None
    cause: FailureCause | None = None  # set when the task failed


class TaskGroup(Protocol):
    """What the controller needs from the thing that runs tasks."""

    def provision(self, tasks: list[TaskSpec], placement: str, timeout_s: float) -> None:
        """Reserve every task's resources at once (gang), or raise SchedulingTimeoutError.
        Called again for a restart on new capacity: the previous reservation is released first."""

    def start(self, env: dict[str, str], timeout_s: float) -> dict[TaskKey, TaskInfo]:
        """Start one actor per task; each reserves its port. Raise TaskStartError on timeout."""

    def launch(self, launches: dict[TaskKey, TaskLaunch]) -> None:
        """Hand every task its TF_CONFIG and start the entrypoint (non-blocking)."""

    def replace(self, key: TaskKey, timeout_s: float) -> TaskInfo:
        """Run a dead task again in its bundle, on the same node and port (its actor if that is alive,
        else a new one), and relaunch it.
        Raise TaskStartError when that cannot be done (e.g. the node is gone)."""

    def stop_tasks(self) -> None:
        """End every task's run (its training process is killed), keeping the placement group, for a
        restart of the cluster; a Ray group keeps the actors that are alive and forks fresh processes."""

    def request_sidecar_stop(self) -> None:
        """Tell side-car tasks (the evaluator) that training is over."""

    def kill_task(self, key: TaskKey) -> None:
        """Kill one task now (a hung one); its end is not reported as an event."""

    def poll(self, timeout_s: float) -> list[TaskEvent]:
        """Wait up to ``timeout_s`` for any task to end; return the ends seen."""

    def drain_reports(self) -> list[dict]:
        """Every report sent by tasks since the last call, in order per task."""

    def draining_nodes(self) -> dict[str, float]:
        """Nodes being drained (e.g. a spot VM about to be reclaimed): node id -> deadline (epoch s, 0 = none)."""

    def give_notice(self, key: TaskKey) -> None:
        """Send a task a preemption notice (it saves at its next step boundary and stops)."""

    def has_capacity(self, bundles: list[dict]) -> bool:
        """Whether the cluster has free room for these extra bundles now (an elastic job's missing workers)."""

    def shutdown(self) -> None:
        """Release every actor and the placement group. Idempotent."""
