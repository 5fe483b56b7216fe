"""The Ray task group: one placement group per job, one actor per task.

Gang scheduling: every task's bundle is in one placement group, so either
all tasks get resources or none does, and the wait is bounded by the
scheduling timeout, after which the error names what was asked and what the
cluster has. Each task actor reserves its TF port on its own node and keeps
it bound (SO_REUSEPORT, not listening) until TensorFlow binds the same port
with ``TF_GRPC_REUSE_PORT=true``: no other process can take the port in
between, which is the race of Ray issue #34271. Reports from tasks go to a
small inbox actor; tasks send them fire-and-forget, so reporting never waits
on the driver.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from controller import settings
from controller.plan import TaskKey, TaskSpec, describe_bundle
from controller.policy import FailureCause
from controller.state import TaskStatus
from controller.storage import read_tree
from controller.task_group import (
    NodeLostError,
    SchedulingTimeoutError,
    TaskEvent,
    TaskInfo,
    TaskLaunch,
    TaskStartError,
)

log = logging.getLogger("tfray")

HEAD_NODE_RESOURCE = "node:__internal_head__"  # Ray gives the head node this resource


class ReportInbox:
    """Holds task reports until the controller drains them, and the side-cars' stop flag (a Ray actor)."""

    def __init__(self) -> None:
        self._records: list[dict] = []
        self._stop = False
        self._notices: set[str] = set()  # tasks told to save and stop (their node is being drained)

    def request_stop(self) -> None:
        self._stop = True

    def stop_requested(self) -> bool:
        return self._stop

    def report(self, record: dict) -> None:
        self._records.append(record)

    def give_notice(self, task: str) -> None:
        self._notices.add(task)

    def clear_notices(self) -> None:
        """The tasks are gone; their successors (same names) start without a notice."""
        self._notices.clear()

    def heartbeat(self, record: dict) -> bool:
        """Keep a task's heartbeat; answer whether the task has been sent a preemption notice."""
        self._records.append(record)
        return record["task"] in self._notices

    def drain(self) -> list[dict]:
        records, self._records = self._records, []
        return records


def _available_per_node() -> dict[str, dict[str, float]]:
    """Free resources of every alive node now (resource names as in a bundle: CPU, GPU, memory, custom)."""
    return ray._private.state.available_resources_per_node()


class RayTaskGroup:
    """Runs a job's tasks as Ray actors inside one placement group."""

    def __init__(self, job_name: str):
        self.job_name = job_name
        self.tasks: list[TaskSpec] = []
        self.pg = None
        self.inbox = None
        self.actors: dict[TaskKey, ray.actor.ActorHandle] = {}
        self.infos: dict[TaskKey, TaskInfo] = {}
        self.launches: dict[TaskKey, TaskLaunch] = {}
        self.running: dict[ray.ObjectRef, TaskKey] = {}
        self.env: dict[str, str] = {}
        # Actors whose process died: a restart replaces them. The others stay for the next run of
        # the cluster, which forks fresh training processes from their warm launchers.
        self.dead: set[TaskKey] = set()

    def provision(self, tasks: list[TaskSpec], placement: str, timeout_s: float) -> None:
        self._kill_actors()  # they live in the old reservation's bundles
        self._remove_pg()  # a restart on new capacity: the old reservation may hold a lost node's bundles
        self.tasks = list(tasks)
        bundles = [dict(t.bundle) for t in tasks]
        self.pg = placement_group(bundles, strategy=placement.upper(), name=f"tfray-{self.job_name}")
        ready, _ = ray.wait([self.pg.ready()], timeout=timeout_s)
        if ready:
            return
        total: dict[str, float] = {}
        for bundle in bundles:
            for k, v in bundle.items():
                total[k] = total.get(k, 0) + v
        self._remove_pg()
        raise SchedulingTimeoutError(
            f"the cluster did not provide the job's resources within timeouts.scheduling_s={timeout_s:g}s: "
            f"asked for {len(bundles)} tasks ({placement}) needing {describe_bundle(total)} "
            f"[per task: {'; '.join(f'{t.key}: {describe_bundle(t.bundle)}' for t in tasks)}]; "
            f"the cluster has {describe_bundle(ray.cluster_resources())} in all, "
            f"{describe_bundle(ray.available_resources())} free now. "
            "Lower the per-role resources, add nodes, or raise the timeout."
        )

    def start(self, env: dict[str, str], timeout_s: float) -> dict[TaskKey, TaskInfo]:
        self.env = dict(env)
        if self.inbox is None:
            # On the head node: the inbox must outlive any worker node (a lost or preempted node
            # must not take every task's reports with it). Not "the driver's node": with several
            # Ray nodes on one IP a driver may attach to any of them.
            self.inbox = ray.remote(num_cpus=0)(ReportInbox).options(resources={HEAD_NODE_RESOURCE: 0.001}).remote()
        pending, reused = {}, False
        for task in self.tasks:
            if task.key in self.actors and task.key not in self.dead:
                reused = True  # a restart: the actor and its launcher are warm
            else:
                self._kill(self.actors.pop(task.key, None))
                self.actors[task.key] = self._create_actor(task)
            pending[self.actors[task.key].reserve_port.remote()] = task.key
        self.dead.clear()
        try:
            self.infos.update(self._await_infos(pending, timeout_s))
        except TaskStartError as err:
            if not reused:
                raise
            log.warning("a task actor kept for the restart did not answer (%s); starting fresh actors", err)
            self._kill_actors()
            return self.start(env, timeout_s)
        return dict(self.infos)

    def launch(self, launches: dict[TaskKey, TaskLaunch]) -> None:
        shipped: dict[str, list] = {}
        for key, launch in launches.items():
            if launch.restore_from and launch.storage_mode != "shared":
                # Tasks that cannot see the head's storage get the checkpoint's files through Ray (put once).
                if launch.restore_from not in shipped:
                    shipped[launch.restore_from] = [ray.put(read_tree(launch.restore_from))]
                launch = dataclasses.replace(launch, restore_files=shipped[launch.restore_from])
            self.launches[key] = launch
            self.running[self.actors[key].run.remote(launch)] = key

    def replace(self, key: TaskKey, timeout_s: float) -> TaskInfo:
        old = self.infos[key]
        task = next(t for t in self.tasks if t.key == key)
        actor = self.actors.get(key) if key not in self.dead else None
        if actor is not None and not self._stop_runs({key: actor}):  # its process died, the actor did not
            actor = None
        if actor is None:
            self.kill_task(key)
            actor = self.actors[key] = self._create_actor(task)
        self.dead.discard(key)
        port = int(old.address.rsplit(":", 1)[1])
        ref = actor.reserve_port.remote(port)
        # Ray may report the actor's death before it marks the node dead; a
        # replacement that waits on a dead node would wait the whole timeout.
        deadline = time.monotonic() + timeout_s
        while not ray.wait([ref], timeout=1.0)[0]:
            if not self._node_alive(old.node_id):
                self._kill(self.actors.pop(key, None))
                raise NodeLostError(f"the node of {key} ({old.node_id[:12]}) is gone")
            if time.monotonic() > deadline:
                raise TaskStartError(f"the replacement of {key} did not start within timeouts.startup_s="
                                     f"{timeout_s:g}s")
        try:
            info = self._await_infos({ref: key}, 0)[key]
        except TaskStartError:
            # The replacement died at once: most likely its node is dying and Ray has not said so yet.
            if self._node_dies(old.node_id, settings.NODE_DEATH_CONFIRM_S):
                raise NodeLostError(f"the node of {key} ({old.node_id[:12]}) is gone") from None
            raise
        if info.node_id != old.node_id:
            raise TaskStartError(f"the replacement of {key} landed on another node ({info.node_id[:12]})")
        self.infos[key] = info
        # A replacement does not repeat its predecessor's injected faults.
        self.launches[key] = dataclasses.replace(self.launches[key], faults=())
        self.running[actor.run.remote(self.launches[key])] = key
        return info

    def stop_tasks(self) -> None:
        """End every task's run; the actors that are alive stay for the restart (warm launchers)."""
        if self.inbox is not None:
            self.inbox.clear_notices.remote()
        alive = {key: actor for key, actor in self.actors.items() if key not in self.dead}
        kept = self._stop_runs(alive)
        for key in list(self.actors):
            if key not in kept:
                self._kill(self.actors.pop(key))
        self.dead.clear()
        self.running.clear()
        self.infos.clear()

    def _stop_runs(self, actors: dict) -> set:
        """Have each actor kill its training process and wait for its run's end; the keys that did."""
        if not actors:
            return set()
        pending = {actor.stop_run.remote(): key for key, actor in actors.items()}
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=settings.STOP_RUN_TIMEOUT_S + 5)
        kept = set()
        for ref in ready:
            try:
                if ray.get(ref):
                    kept.add(pending[ref])
            except RayError:  # the actor died meanwhile
                pass
        return kept

    def _kill_actors(self) -> None:
        for actor in self.actors.values():
            self._kill(actor)
        self.actors.clear()
        self.dead.clear()
        self.running.clear()
        self.infos.clear()

    def kill_task(self, key: TaskKey) -> None:
        self._kill(self.actors.pop(key, None))
        self.running = {ref: k for ref, k in self.running.items() if k != key}

    def request_sidecar_stop(self) -> None:
        if self.inbox is not None:
            self.inbox.request_stop.remote()

    def _create_actor(self, task: TaskSpec):
        """The task's actor in its bundle. No runtime_env: the environment goes to the actor, which
        starts the task's launcher process with it (Ray starts a new worker process for an actor with
        a runtime_env of its own: 0.5 s more per actor, bench/actor_start.py). Threaded, so that
        ``stop_run`` can end a run in progress."""
        from workers.task_actor import TaskActor  # imports no TensorFlow

        bundle = task.bundle
        return ray.remote(TaskActor).options(
            num_cpus=bundle.get("CPU", 0),
            num_gpus=bundle.get("GPU", 0),
            memory=bundle.get("memory"),
            resources={k: v for k, v in bundle.items() if k not in ("CPU", "GPU", "memory")},
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=self.pg, placement_group_bundle_index=self.tasks.index(task)
            ),
            max_restarts=0,
            max_concurrency=4,  # run, stop_run, and room for Ray's own calls
        ).remote(task.role, task.index, self.inbox, self.env)

    @staticmethod
    def _await_infos(pending: dict, timeout_s: float) -> dict[TaskKey, TaskInfo]:
        ready, not_ready = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
        if not_ready:
            late = ", ".join(str(pending[r]) for r in not_ready)
            raise TaskStartError(
                f"tasks {late} did not start within timeouts.startup_s={timeout_s:g}s "
                "(actor process start and port reservation); check the Ray logs of those actors"
            )
        infos = {}
        for ref in ready:
            try:
                infos[pending[ref]] = TaskInfo(**ray.get(ref))
            except RayError as err:
                raise TaskStartError(f"task {pending[ref]} failed to start: {err}") from None
        return infos

    def _node_dies(self, node_id: str, within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while self._node_alive(node_id):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    @staticmethod
    def _node_alive(node_id: str) -> bool:
        return any(n["NodeID"] == node_id and n.get("Alive") for n in ray.nodes())

    def _cause_of_death(self, key: TaskKey, err: RayActorError) -> FailureCause:
        info = self.infos.get(key)
        if "node has died" in str(err) or (info is not None and not self._node_alive(info.node_id)):
            return FailureCause.NODE_LOST
        return FailureCause.PROCESS_DIED

    def poll(self, timeout_s: float) -> list[TaskEvent]:
        if not self.running:
            return []
        ready, _ = ray.wait(list(self.running), num_returns=1, timeout=timeout_s)
        if ready:  # pick up every other end that is already in
            ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
        events = []
        for ref in ready:
            key = self.running.pop(ref)
            try:
                events.append(TaskEvent(key, TaskStatus.FINISHED, result=ray.get(ref)))
            except RayTaskError as err:  # the entrypoint raised, or the script exited non-zero
                cause = {"TaskProcessKilledError": FailureCause.PROCESS_DIED,  # a script died of a signal
                         "TaskPreempted": FailureCause.PREEMPTED,  # saved on a notice, then stopped
                         }.get(type(err.cause).__name__, FailureCause.USER_ERROR)
                events.append(TaskEvent(key, TaskStatus.FAILED, error=str(err), cause=cause))
            except RayActorError as err:  # the actor's process died (killed, OOM, node lost)
                self.dead.add(key)
                cause = self._cause_of_death(key, err)
                events.append(TaskEvent(key, TaskStatus.FAILED, error=f"the task process died: {err}", cause=cause))
        return events

    def draining_nodes(self) -> dict[str, float]:
        try:  # Ray's own list, as Ray Train's preemption watcher reads it: node id -> deadline in ms (0: none)
            return {node: ms / 1000 for node, ms in ray._private.state.state.get_draining_nodes().items()}
        except Exception as err:  # an older or busy GCS: no notice this time, node loss still handled
            log.debug("draining nodes: %s", err)
            return {}

    def give_notice(self, key: TaskKey) -> None:
        if self.inbox is not None:
            self.inbox.give_notice.remote(str(key))

    def has_capacity(self, bundles: list[dict]) -> bool:
        draining = self.draining_nodes()  # a node being drained takes no new work
        free = [dict(resources) for node, resources in _available_per_node().items() if node not in draining]
        for bundle in bundles:  # first fit: each bundle must fit on one node
            node = next((n for n in free if all(n.get(k, 0) >= v for k, v in bundle.items())), None)
            if node is None:
                return False
            for k, v in bundle.items():
                node[k] -= v
        return True

    def drain_reports(self) -> list[dict]:
        if self.inbox is None:
            return []
        try:
            records = ray.get(self.inbox.drain.remote(), timeout=settings.REPORT_DRAIN_TIMEOUT_S)
        except (GetTimeoutError, ActorUnavailableError) as err:  # transient: the reports wait for the next step
            log.warning("the report inbox did not answer (%s); trying again next step", type(err).__name__)
            return []
        return records

    def shutdown(self) -> None:
        self._kill_actors()
        self._kill(self.inbox)
        self.inbox = None
        self._remove_pg()

    @staticmethod
    def _kill(actor) -> None:
        if actor is None:
            return
        try:
            ray.kill(actor, no_restart=True)
        except Exception as err:  # already dead is fine
            log.debug("kill: %s", err)

    def _remove_pg(self) -> None:
        if self.pg is not None:
            try:
                remove_placement_group(self.pg)
            except Exception as err:
                log.debug("remove placement group: %s", err)
            self.pg = None
