"""The plan: a job spec turned into the list of tasks to start (pure).

Each task is a frozen :class:`TaskSpec` ``(role, index, resources)``. The
plan decides who is the chief (the ``chief`` task, or ``worker 0`` when the
spec has none, which is TensorFlow's own rule) and which tasks belong to the
training cluster (all but the evaluator, which must stay out of TF_CONFIG's
cluster: docs/design.md §4). Under ParameterServerStrategy the ps and worker tasks
serve a ``tf.distribute.Server`` and only the chief (the coordinator) runs
user code, so the job ends when the chief does. The tf.data service's
dispatcher and workers serve too, under any strategy, outside TF_CONFIG's
cluster (docs/design.md §15). A replacement task keeps its predecessor's role and
index, so a plan never changes while a job runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from controller.plan.gpus import device_plan
from controller.spec import DATA_ROLES, ROLE_ORDER, JobSpec, ProcessSpec, Resources, Role, Strategy
from protocol.devices import DevicePlan
from protocol.task_key import DATA_ROLES as DATA_ROLE_NAMES
from protocol.task_key import TaskKey
from protocol.threads import OMP, TF_INTRA_OP, THREAD_VARS


@dataclass(frozen=True)
class TaskSpec:
    """One task to start: its identity, its resources and its place in the cluster."""

    key: TaskKey
    bundle: dict  # Ray placement-group bundle, e.g. {"CPU": 1.0}
    is_chief: bool
    in_cluster: bool  # part of TF_CONFIG's cluster (the evaluator and the tf.data service are not)
    runs_server: bool = False  # PSS ps/worker, tf.data service: serves instead of running user code
    devices: DevicePlan = DevicePlan()  # its GPUs (the bundle's GPU amount) and how much of their memory it takes
    env: dict = field(default_factory=dict)  # its own environment: thread pools sized to its CPUs
    niceness: int | None = 0  # its processes' nice value (None: Ray's)
    cpu_affinity: tuple[int, ...] = ()  # the CPUs its training process may run on (empty: all of its node's)

    @property
    def tracked(self) -> bool:
        """The job ends when every tracked task has finished (the rest are torn down then)."""
        return not self.runs_server and self.in_cluster

    @property
    def sidecar(self) -> bool:
        """Runs beside training (the evaluator): asked to stop when training ends."""
        return not self.in_cluster and not self.runs_server

    @property
    def serves_training(self) -> bool:
        """A PSS ps or worker: the coordinator trains through it, and saves for it on its notice."""
        return self.runs_server and self.in_cluster

    @property
    def serves_data(self) -> bool:
        """The tf.data service's dispatcher or a data worker: the training tasks read their input from it."""
        return self.role in DATA_ROLE_NAMES

    @property
    def role(self) -> str:
        return self.key.role

    @property
    def index(self) -> int:
        return self.key.index


def plan(spec: JobSpec, workers: int | None = None) -> list[TaskSpec]:
    """Every task of the job, in a stable order: chief, workers, ps, evaluator, the tf.data service
    (``workers``: the worker count of an elastic job running smaller than its spec)."""
    counts = spec.counts()
    if workers is not None:
        counts[Role.WORKER] = workers
    pss = spec.strategy is Strategy.PARAMETER_SERVER
    has_chief = counts[Role.CHIEF] > 0
    tasks = []
    for role in ROLE_ORDER:
        for index in range(counts[role]):
            is_chief = role is Role.CHIEF or (not has_chief and role is Role.WORKER and index == 0)
            tasks.append(
                TaskSpec(
                    key=TaskKey(role.value, index),
                    bundle=spec.roles[role].resources.as_bundle(),
                    is_chief=is_chief,
                    in_cluster=role is not Role.EVALUATOR and role not in DATA_ROLES,
                    runs_server=(pss and role in (Role.PS, Role.WORKER)) or role in DATA_ROLES,
                    devices=device_plan(spec.roles[role].resources),
                    env=thread_env(spec.process, spec.roles[role].resources),
                    niceness=spec.process.niceness,
                    cpu_affinity=tuple(spec.roles[role].cpu_affinity or ()),
                )
            )
    return tasks


def thread_env(process: ProcessSpec, resources: Resources) -> dict[str, str]:
    """The thread settings of a task's training process: ``process.threads`` for OpenMP and both of
    TensorFlow's pools, else OpenMP's sized to the task's CPUs rounded up, where Ray rounds a fraction down
    to 1, and TensorFlow's left to size themselves as they do for a process launched by hand."""
    if process.threads is not None:
        n = str(process.threads)
        return dict.fromkeys(THREAD_VARS, n)
    return {OMP: str(max(1, math.ceil(resources.cpu)))}


def describe_process(niceness: int | None, env: dict[str, str], cpu_affinity: tuple[int, ...] = ()) -> str:
    """How a task's processes run, for people: 'nice 0, OMP_NUM_THREADS=1, TensorFlow's own thread pools'."""
    parts = [f"nice {niceness}" if niceness is not None else "Ray's nice value (15 unless RAY_worker_niceness)"]
    if cpu_affinity:
        parts.append(f"pinned to CPUs {','.join(map(str, cpu_affinity))}")
    parts += [f"{name}={env[name]}" for name in THREAD_VARS if name in env]
    if TF_INTRA_OP not in env:
        parts.append("TensorFlow's own thread pools")
    return ", ".join(parts)


def describe_bundle(bundle: dict) -> str:
    """Resources for people: 'CPU=0.5, memory=2048MiB' (Ray's internal keys left out)."""
    parts = []
    for name, amount in sorted(bundle.items()):
        if name.startswith("node:") or "_group_" in name:
            continue
        parts.append(f"memory={amount / 2**20:.0f}MiB" if name == "memory" else f"{name}={amount:g}")
    return ", ".join(parts) or "nothing"


def dispatcher_of(tasks: list[TaskSpec]) -> TaskSpec | None:
    """The tf.data service's dispatcher, when the job has one."""
    return next((t for t in tasks if t.role == Role.DATA_DISPATCHER.value), None)


def chief_of(tasks: list[TaskSpec]) -> TaskSpec:
    """The task whose results are the job's (its checkpoints, its end)."""
    return next(t for t in tasks if t.is_chief)
