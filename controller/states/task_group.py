"""The seam between the controller and Ray: what a task group must do.

The controller drives a :class:`TaskGroup` and never touches Ray itself, so
unit tests inject a fake group and step the state machine, while real runs
use :class:`controller.ray.group.RayTaskGroup`. Errors that end a job
before training starts are exception types, one per cause. What crosses to
the tasks themselves (launches, ends, reports) is ``protocol.wire``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Protocol

from controller.plan.tasks import TaskSpec
from controller.store.lease import Holder
from protocol.wire import Report, TaskEnd, TaskKey, TaskLaunch


class SchedulingTimeoutError(RuntimeError):
    """The cluster did not provide every task's resources within the scheduling timeout."""


class InfeasibleDemandError(SchedulingTimeoutError):
    """No node the cluster has or can ever start can hold what the job asks for: waiting is pointless."""


class TaskStartError(RuntimeError):
    """A task actor did not start, or did not report its address, in time."""


class NodeLostError(TaskStartError):
    """A task could not be (re)started because its node is gone."""


class FolderFetchError(RuntimeError):
    """A folder on a task's node could not be brought to this machine (the task's actor is gone, the stream
    failed, or the gather ran past its deadline); the message says which folder and why."""


@dataclass(frozen=True)
class TaskInfo:
    """Where a started task lives."""

    address: str  # host:port reserved for its TF server
    node_id: str
    hostname: str
    pid: int
    gpus: tuple[str, ...] = ()  # the GPU IDs Ray assigned it on its node (what its CUDA_VISIBLE_DEVICES lists)


class TaskGroup(Protocol):
    """What the controller needs from the thing that runs tasks."""

    def claim(self, holder: Holder) -> None:
        """Take the job's lease on the cluster for this driver, or raise JobRunningError naming the driver that
        holds it (a driver's lease ends with it)."""

    def provision(self, tasks: list[TaskSpec], placement: str, timeout_s: float) -> None:
        """Reserve every task's resources at once (gang), or raise SchedulingTimeoutError.
        Called again for a restart on new capacity: the previous reservation is released first."""

    def start(self, env: dict[str, str], timeout_s: float) -> dict[TaskKey, TaskInfo]:
        """Start one actor per task; each reserves its port. Raise TaskStartError on timeout."""

    def launch(self, launches: dict[TaskKey, TaskLaunch]) -> None:
        """Hand every task its TF_CONFIG and start the entrypoint (non-blocking)."""

    def replace(self, key: TaskKey, launch: TaskLaunch, timeout_s: float) -> TaskInfo:
        """Run a failed task again with ``launch``, in its bundle, on the same node and port (its actor if
        that is alive, else a new one); its previous run's end is never reported.
        Raise NodeLostError when its node is gone, TaskStartError when it cannot be started otherwise."""

    def stop_tasks(self) -> None:
        """End every task's run (its training process is killed), keeping the placement group, for a
        restart of the cluster; a Ray group keeps the actors that are alive and forks fresh processes."""

    def request_sidecar_stop(self) -> None:
        """Tell side-car tasks (the evaluator) that training is over."""

    def kill_task(self, key: TaskKey) -> None:
        """Kill one task now (a hung one); its end is not reported as an event."""

    def poll(self, timeout_s: float) -> list[TaskEnd]:
        """Wait up to ``timeout_s`` for any task to end, or less when reports arrive (so they are handled at
        once); return the ends seen."""

    def drain_reports(self, final: bool = False) -> list[Report]:
        """The reports sent by tasks since the last call, in order per task (one that arrived during the
        call may come at the next one); ``final`` (the job ends): every report sent before the call."""

    def start_gather(self, key: TaskKey, path: str, into: Path, *, remove_after: bool, replace: bool,
                     timeout_s: float) -> Hashable:
        """Start bringing the folder at ``path`` on ``key``'s node (it does not share the storage path) to
        ``into`` here, and return at once with a handle on it: it is streamed in chunks, each file whole or not
        at all, a checkpoint's seal last, and stops writing within ``timeout_s``; ``replace``: it becomes
        ``into``'s whole content; ``remove_after``: the node's copy goes once read. FolderFetchError when it
        cannot even start (the task's actor is gone)."""

    def finished_gathers(self, handles: list[Hashable],
                         wait_s: float = 0.0) -> dict[Hashable, Path | FolderFetchError]:
        """Those of ``handles`` whose gather is over, each with the folder it wrote, or the FolderFetchError
        that says why it failed; waits up to ``wait_s`` for the first to end when none has (0: a look)."""

    def draining_nodes(self) -> dict[str, float]:
        """Nodes being drained (e.g. a spot VM about to be reclaimed): node id -> deadline (epoch s, 0 = none)."""

    def give_notice(self, key: TaskKey) -> None:
        """Send a task a preemption notice (it saves at its next step boundary and stops)."""

    def has_capacity(self, bundles: list[dict]) -> bool:
        """Whether the cluster has free room for these extra bundles now (an elastic job's missing workers)."""

    def shutdown(self) -> None:
        """Release every actor and the placement group. Idempotent."""
