"""One task actor at a time, as the Ray task group needs it: made, asked where it lives, stopped, killed.

Each task's actor is a ``workers.task_actor.TaskActor`` in its placement-group
bundle, named ``tfray:<job>:<task>`` in the ``tfray`` namespace. Every wait on
an actor is bounded; an actor that does not answer in time is reported, never
waited on forever.
"""

from __future__ import annotations

import logging
import uuid

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from controller import settings
from controller.plan.launch import actor_config
from controller.plan.tasks import TaskSpec
from controller.ray import named_class
from controller.ray.inbox import NAMESPACE
from controller.states.task_group import TaskInfo, TaskStartError
from protocol.wire import TASK_ACTOR_CLASS, TaskKey

log = logging.getLogger("tfray")


def actor_name(job: str, key: TaskKey, incarnation: int) -> str:
    """``tfray:<job>:<task>`` for a task's first actor, ``tfray:<job>:<task>#<n>`` for its n-th."""
    return f"tfray:{job}:{key}" + (f"#{incarnation}" if incarnation > 1 else "")


def task_actor_class() -> type:
    """The task actor's class, named by ``protocol.wire.TASK_ACTOR_CLASS``; the class itself imports no
    TensorFlow."""
    return named_class(TASK_ACTOR_CLASS)


def create_actor(job_name: str, task: TaskSpec, pg, bundle_index: int, incarnation: int, env: dict, inbox,
                 runtime_env: dict | None = None):
    """The task's actor in its bundle, named ``tfray:<job>:<task>`` so Ray's dashboard and ``ray list
    actors`` say who is who (a replacement whose predecessor's name is not released yet gets a suffix).
    No runtime_env unless the spec asks for one: the environment goes to the actor, which starts the task's
    launcher process with it (Ray starts a new worker process for an actor with a runtime_env of its own:
    0.5 s more per actor, bench/actor_start.py). Threaded, so that ``stop_run`` can end a run in progress."""
    TaskActor = task_actor_class()
    bundle = task.bundle
    options = dict(
        num_cpus=bundle.get("CPU", 0), num_gpus=bundle.get("GPU", 0), memory=bundle.get("memory"),
        resources={k: v for k, v in bundle.items() if k not in ("CPU", "GPU", "memory")},
        scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=pg,
                                                             placement_group_bundle_index=bundle_index),
        max_restarts=0,
        max_concurrency=4,  # run, stop_run, and room for Ray's own calls
        namespace=NAMESPACE,
        **({"runtime_env": runtime_env} if runtime_env else {}),
    )
    name = actor_name(job_name, task.key, incarnation)
    config = actor_config(task.key, env, task.devices, own_env=task.env, niceness=task.niceness)
    try:
        return ray.remote(TaskActor).options(name=name, **options).remote(config, inbox)
    except ValueError:  # the name of an actor killed a moment ago is not released yet
        return ray.remote(TaskActor).options(name=f"{name}#{uuid.uuid4().hex[:6]}", **options).remote(config, inbox)


def stop_runs(actors: dict) -> set:
    """Have each actor kill its training process and wait for its run's end; the keys that did."""
    if not actors:
        return set()
    pending = {actor.stop_run.remote(): key for key, actor in actors.items()}
    ready, _ = ray.wait(list(pending), num_returns=len(pending),
                        timeout=settings.STOP_RUN_TIMEOUT_S + settings.STOP_RUN_SLACK_S)
    kept = set()
    for ref in ready:
        try:
            if ray.get(ref):
                kept.add(pending[ref])
        except RayError:  # the actor died meanwhile
            pass
    return kept


def await_infos(pending: dict, timeout_s: float, runtime_env: dict | None = None) -> dict[TaskKey, TaskInfo]:
    ready, not_ready = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
    if not_ready:
        late = ", ".join(str(pending[r]) for r in not_ready)
        setup = ", and the runtime_env's setup on each node: raise the timeout for a pip install" if runtime_env else ""
        raise TaskStartError(f"tasks {late} did not start within timeouts.startup_s={timeout_s:g}s "
                             f"(actor process start and port reservation{setup}); check the Ray logs of those actors")
    infos = {}
    for ref in ready:
        try:
            infos[pending[ref]] = TaskInfo(**ray.get(ref))
        except RayError as err:
            raise TaskStartError(f"task {pending[ref]} failed to start: {err}") from None
    return infos


def kill(actor) -> None:
    if actor is None:
        return
    try:
        ray.kill(actor, no_restart=True)
    except Exception as err:  # already dead is fine
        log.debug("kill: %s", err)
