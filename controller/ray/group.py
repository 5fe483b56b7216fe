"""The Ray task group: one placement group per job, one actor per task.

Gang scheduling: every task's bundle is in one placement group, so either
all tasks get resources or none does, and the wait is bounded by the
scheduling timeout, after which the error names what was asked and what the
cluster has. Each task actor (``workers/task_actor.py``) reserves its TF
port on its own node and keeps it bound until TensorFlow binds it (the race
of Ray issue #34271). A restart keeps the actors that are alive: their
launchers fork fresh training processes. Reports go through the job's inbox
(``controller/ray/inbox.py``); files on a task's node are streamed from its
actor to the inbox, which writes them (``protocol/streaming.py``); node liveness, drains and free room come
from ``controller/ray/nodes.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import ray
from ray.exceptions import RayActorError, RayError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group

from controller import settings
from controller.plan.tasks import TaskSpec, describe_bundle
from controller.ray import actors as ray_actors
from controller.ray import demand as ray_demand
from controller.ray import nodes as ray_nodes
from controller.ray import runtime_env
from controller.ray.inbox import Inbox
from controller.states.task_group import (
    FolderFetchError,
    NodeLostError,
    SchedulingTimeoutError,
    TaskInfo,
    TaskStartError,
)
from controller.store.lease import Holder
from protocol.scratch import remove_orphans
from protocol.wire import FailureCause, Report, TaskEnd, TaskKey, TaskLaunch

log = logging.getLogger("tfray")


def scheduling_timeout_message(tasks: list[TaskSpec], placement: str, timeout_s: float, cluster: dict,
                               free: dict) -> str:
    """What was asked, per task and in all, against what the cluster has, and what to do."""
    total: dict[str, float] = {}
    for task in tasks:
        for k, v in task.bundle.items():
            total[k] = total.get(k, 0) + v
    return (f"the cluster did not provide the job's resources within timeouts.scheduling_s={timeout_s:g}s: "
            f"asked for {len(tasks)} tasks ({placement}) needing {describe_bundle(total)} "
            f"[per task: {'; '.join(f'{t.key}: {describe_bundle(t.bundle)}' for t in tasks)}]; "
            f"the cluster has {describe_bundle(cluster)} in all, {describe_bundle(free)} free now. "
            "Lower the per-role resources, add nodes, or raise the timeout.")


class RayTaskGroup:
    """Runs a job's tasks as Ray actors inside one placement group."""

    def __init__(self, job_name: str, runtime_env: dict | None = None):
        self.job_name = job_name
        # The spec's runtime_env (controller/ray/runtime_env.py), its local folders uploaded at the first actor.
        self.runtime_env = runtime_env
        self._runtime_env_shipped = not runtime_env
        self.tasks: list[TaskSpec] = []
        self.pg = None
        self.inbox: Inbox | None = None
        self.actors: dict[TaskKey, ray.actor.ActorHandle] = {}
        self.infos: dict[TaskKey, TaskInfo] = {}
        self.running: dict[ray.ObjectRef, TaskKey] = {}
        self.env: dict[str, str] = {}
        # Actors whose process died: a restart replaces them. The others stay for the next run of
        # the cluster, which forks fresh training processes from their warm launchers.
        self.dead: set[TaskKey] = set()
        self.incarnations: dict[TaskKey, int] = {}  # actors made for each task so far (names them)

    def provision(self, tasks: list[TaskSpec], placement: str, timeout_s: float) -> None:
        self._kill_actors()  # they live in the old reservation's bundles
        self._remove_pg()  # a restart on new capacity: the old reservation may hold a lost node's bundles
        self.tasks = list(tasks)
        bundles = [dict(t.bundle) for t in tasks]
        ray_demand.check_feasible(bundles, placement)  # before anything is reserved or launched for it
        self.pg = placement_group(bundles, strategy=placement.upper(), name=f"tfray-{self.job_name}")
        if ray_demand.wait_for(self.pg.ready(), timeout_s):
            return
        self._remove_pg()
        raise SchedulingTimeoutError(scheduling_timeout_message(tasks, placement, timeout_s, ray.cluster_resources(),
                                                                ray.available_resources()))

    def claim(self, holder: Holder) -> None:
        if self.inbox is None:
            self.inbox = Inbox(self.job_name, holder)

    def start(self, env: dict[str, str], timeout_s: float) -> dict[TaskKey, TaskInfo]:
        self.env = dict(env)
        self.claim(Holder.me())
        pending, reused = {}, False
        for task in self.tasks:
            if task.key in self.actors and task.key not in self.dead:
                reused = True  # a restart: the actor and its launcher are warm
            else:
                ray_actors.kill(self.actors.pop(task.key, None))
                self.actors[task.key] = self._new_actor(task)
            pending[self.actors[task.key].reserve_port.remote()] = task.key
        self.dead.clear()
        try:
            self.infos.update(ray_actors.await_infos(pending, timeout_s, self.runtime_env))
        except TaskStartError as err:
            if not reused:
                raise
            log.warning("a task actor kept for the restart did not answer (%s); starting fresh actors", err)
            self._kill_actors()
            return self.start(env, timeout_s)
        return dict(self.infos)

    def launch(self, launches: dict[TaskKey, TaskLaunch]) -> None:
        for key, launch in launches.items():
            self._run(key, launch)

    def replace(self, key: TaskKey, launch: TaskLaunch, timeout_s: float) -> TaskInfo:
        self.running = {ref: k for ref, k in self.running.items() if k != key}  # its last run's end is not news
        old = self.infos[key]
        actor = self.actors.get(key) if key not in self.dead else None
        if actor is not None and not ray_actors.stop_runs({key: actor}):  # its process died, the actor did not
            actor = None
        if actor is None:
            self.kill_task(key)
            actor = self.actors[key] = self._new_actor(next(t for t in self.tasks if t.key == key))
        self.dead.discard(key)
        ref = actor.reserve_port.remote(int(old.address.rsplit(":", 1)[1]))

        def started() -> bool:
            if ray.wait([ref], timeout=0)[0]:
                return True
            # Ray may report the actor's death before it marks the node dead; a
            # replacement that waits on a dead node would wait the whole timeout.
            if not ray_nodes.node_alive(old.node_id):
                ray_actors.kill(self.actors.pop(key, None))
                raise NodeLostError(f"the node of {key} ({old.node_id[:12]}) is gone")
            return False

        try:
            settings.poll_until(started, timeout_s, settings.REPLACE_POLL_S, f"the replacement of {key}",
                                wait=lambda wait_s: ray.wait([ref], timeout=wait_s))
        except settings.WaitTimeout:
            raise TaskStartError(f"the replacement of {key} did not start within timeouts.startup_s="
                                 f"{timeout_s:g}s") from None
        try:
            info = ray_actors.await_infos({ref: key}, 0)[key]
        except TaskStartError:
            # The replacement died at once: most likely its node is dying and Ray has not said so yet.
            if ray_nodes.node_dies_within(old.node_id, settings.NODE_DEATH_CONFIRM_S):
                raise NodeLostError(f"the node of {key} ({old.node_id[:12]}) is gone") from None
            raise
        if info.node_id != old.node_id:
            raise TaskStartError(f"the replacement of {key} landed on another node ({info.node_id[:12]})")
        self.infos[key] = info
        self._run(key, launch)
        return info

    def stop_tasks(self) -> None:
        """End every task's run; the actors that are alive stay for the restart (warm launchers)."""
        if self.inbox is not None:
            self.inbox.clear_notices()
        kept = ray_actors.stop_runs({key: actor for key, actor in self.actors.items() if key not in self.dead})
        for key in list(self.actors):
            if key not in kept:
                ray_actors.kill(self.actors.pop(key))
        self.dead.clear()
        self.running.clear()
        self.infos.clear()

    def kill_task(self, key: TaskKey) -> None:
        ray_actors.kill(self.actors.pop(key, None))
        self.running = {ref: k for ref, k in self.running.items() if k != key}

    def request_sidecar_stop(self) -> None:
        if self.inbox is not None:
            self.inbox.request_sidecar_stop()

    def poll(self, timeout_s: float) -> list[TaskEnd]:
        """Wait up to ``timeout_s`` for a run to end or a report to arrive (the inbox's drain call answers:
        it is made to answer a little before the timeout with the heartbeats, so that one round trip a poll
        brings every record)."""
        call = self.inbox.call(max(0.0, timeout_s - settings.REPORT_CALL_SLACK_S)) if self.inbox else None
        waits = [*self.running, *([call] if call is not None else [])]
        if not waits:
            return []
        ready, _ = ray.wait(waits, num_returns=1, timeout=timeout_s)
        if call is not None:
            self.inbox.answered(ready)
        if any(ref in self.running for ref in ready):  # a run ended: pick up every other end already in
            ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
        else:
            ready = []
        ends = []
        for ref in ready:
            key = self.running.pop(ref)
            try:
                ends.append(ray.get(ref))  # the actor's TaskEnd: finished, or failed with its cause
            except RayActorError as err:  # the actor's process died (killed, OOM, node lost)
                self.dead.add(key)
                info = self.infos.get(key)
                alive = info is None or ray_nodes.node_alive(info.node_id)
                ends.append(TaskEnd.failed(key, ray_nodes.cause_of_death(str(err), alive),
                                           f"the task process died: {err}"))
            except RayTaskError as err:  # a bug in the task actor itself
                ends.append(TaskEnd.failed(key, FailureCause.USER_ERROR, str(err)))
        return ends

    def drain_reports(self, final: bool = False) -> list[Report]:
        return self.inbox.records(final) if self.inbox is not None else []

    def start_gather(self, key: TaskKey, path: str, into: Path, *, remove_after: bool, replace: bool,
                     timeout_s: float) -> ray.ObjectRef:
        """The inbox (on the head, beside the job folder) streams it from the task's actor and writes it; the
        handle is the inbox's call, which answers with the folder written."""
        actor = self.actors.get(key)
        if actor is None or self.inbox is None:
            raise FolderFetchError(f"{key}'s actor is gone: {path} on its node cannot be read")
        return self.inbox.actor.gather.remote(actor, path, str(into), remove_after, replace, timeout_s)

    def finished_gathers(self, handles: list[ray.ObjectRef],
                         wait_s: float = 0.0) -> dict[ray.ObjectRef, Path | FolderFetchError]:
        if not handles:
            return {}
        first, _ = ray.wait(list(handles), num_returns=1, timeout=wait_s)
        if not first:
            return {}
        ready, _ = ray.wait(list(handles), num_returns=len(handles), timeout=0)  # every other one already over
        done: dict[ray.ObjectRef, Path | FolderFetchError] = {}
        for ref in ready:
            try:  # answered: its value is in the object store, a path's few bytes
                done[ref] = Path(ray.get(ref, timeout=settings.REPORT_DRAIN_TIMEOUT_S))
            except (RayError, ValueError) as err:
                done[ref] = FolderFetchError(f"{type(err).__name__}: {err}")
        return done

    def draining_nodes(self) -> dict[str, float]:
        return ray_nodes.draining_nodes()

    def give_notice(self, key: TaskKey) -> None:
        if self.inbox is not None:
            self.inbox.give_notice(str(key))

    def has_capacity(self, bundles: list[dict]) -> bool:
        draining = set(self.draining_nodes())  # a node being drained takes no new work
        return ray_nodes.first_fit(bundles, ray_nodes.free_per_node(leave_out=draining))

    def shutdown(self) -> None:
        # Runs still in flight (PSS servers serve until torn down) end first, bounded: a run's own end removes
        # its scratch folder on the task's node, which a kill of the actor would leave behind.
        ray_actors.stop_runs({key: self.actors[key] for key in set(self.running.values())
                              if key in self.actors and key not in self.dead})
        self._kill_actors()
        if self.inbox is not None:
            self.inbox.close()
        self.inbox = None
        self._remove_pg()
        remove_orphans()  # what tasks killed on this machine left: nothing of the job's stays in /tmp

    # ------------------------------------------------------------------ helpers

    def _run(self, key: TaskKey, launch: TaskLaunch) -> None:
        self.running[self.actors[key].run.remote(launch)] = key

    def _new_actor(self, task: TaskSpec):
        if not self._runtime_env_shipped:  # once per job: every actor then names the same uploaded package
            self.runtime_env = runtime_env.ship(self.runtime_env)
            self._runtime_env_shipped = True
        self.incarnations[task.key] = self.incarnations.get(task.key, 0) + 1
        return ray_actors.create_actor(self.job_name, task, self.pg, self.tasks.index(task),
                                       self.incarnations[task.key], self.env, self.inbox.actor, self.runtime_env)

    def _kill_actors(self) -> None:
        for actor in self.actors.values():
            ray_actors.kill(actor)
        self.actors.clear()
        self.dead.clear()
        self.running.clear()
        self.infos.clear()

    def _remove_pg(self) -> None:
        if self.pg is not None:
            try:
                remove_placement_group(self.pg)
            except Exception as err:
                log.debug("remove placement group: %s", err)
            self.pg = None
