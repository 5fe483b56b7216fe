"""What the controller knows of each task of the current run: its plan, status and whereabouts."""

from __future__ import annotations

import dataclasses

from controller.plan.tasks import TaskSpec, chief_of
from controller.states.state import TaskStatus
from controller.states.task_group import TaskInfo
from protocol.wire import TaskKey


class TaskTable:
    def __init__(self, tasks: list[TaskSpec]):
        self.reset(tasks)

    def reset(self, tasks: list[TaskSpec]) -> None:
        """A new task list (an elastic job changed size): every task pending, nowhere yet."""
        self.tasks = list(tasks)
        self.chief: TaskSpec = chief_of(self.tasks)
        self.statuses: dict[TaskKey, TaskStatus] = {t.key: TaskStatus.PENDING for t in self.tasks}
        self.infos: dict[TaskKey, TaskInfo] = {}

    def started(self, infos: dict[TaskKey, TaskInfo]) -> None:
        """Every task started and runs."""
        self.infos = dict(infos)
        self.statuses = {t.key: TaskStatus.ALIVE for t in self.tasks}

    def spec(self, key: TaskKey) -> TaskSpec:
        return next(t for t in self.tasks if t.key == key)

    def alive(self, key: TaskKey) -> bool:
        return self.statuses.get(key) is TaskStatus.ALIVE

    def alive_tracked(self) -> set[TaskKey]:
        """Running tasks whose end the job waits for (MWMS: chief and workers; PSS: the chief)."""
        return {t.key for t in self.tasks if t.tracked and self.alive(t.key)}

    def trains(self, key: TaskKey) -> bool:
        """Runs the training loop (not a server, not a side-car): a preemption notice makes it save."""
        task = self.spec(key)
        return task.tracked and not task.runs_server

    def all_tracked_finished(self) -> bool:
        return all(self.statuses[t.key] is TaskStatus.FINISHED for t in self.tasks if t.tracked)

    def unfinished_tracked(self) -> list[TaskKey]:
        return [t.key for t in self.tasks if t.tracked and not self.statuses[t.key].is_terminal]

    def alive_sidecars(self) -> list[TaskKey]:
        return [t.key for t in self.tasks if t.sidecar and self.alive(t.key)]

    def count(self, role: str) -> int:
        """Tasks of ``role`` in this run (an elastic job may run fewer workers than its spec has)."""
        return sum(1 for t in self.tasks if t.role == role)

    def left_of_role(self, role: str) -> int:
        return sum(1 for t in self.tasks if t.role == role and self.alive(t.key))

    def info(self, name: str) -> TaskInfo | None:
        """Where the task named ``name`` (e.g. ``worker-1``) runs now."""
        return self.infos.get(TaskKey.parse(name))

    def reserved(self, name: str) -> dict:
        """What the task named ``name`` reserved (cores, MB) and the node it runs on, for its reports' windows."""
        key = TaskKey.parse(name)
        spec, info = next((t for t in self.tasks if t.key == key), None), self.infos.get(key)
        memory = (spec.bundle.get("memory") or 0) / 2**20 if spec else 0
        return {"cpu_share": spec.bundle.get("CPU") if spec else None, "memory_mb": memory or None,
                "node": info.node_id if info else None}

    def hosts(self) -> dict[TaskKey, str]:
        """The address of each task's host now: its server address without the port."""
        return {key: info.address.rsplit(":", 1)[0] for key, info in self.infos.items()}

    def note_pid(self, key: TaskKey, pid: int | None) -> None:
        """A heartbeat names the process that trains now (forked for each run)."""
        info = self.infos.get(key)
        if info is not None and pid and info.pid != pid:
            self.infos[key] = dataclasses.replace(info, pid=pid)

    def end_all(self) -> None:
        """The job ended: tasks still running were torn down with it."""
        for key, status in self.statuses.items():
            if not status.is_terminal:
                self.statuses[key] = TaskStatus.STOPPED

    def describe(self, key: TaskKey) -> str:
        """The task and where it runs: node, host, pid and its GPUs (a GPU failure names the device)."""
        info = self.infos.get(key)
        if info is None:
            return str(key)
        devices = f", GPU{'s' if len(info.gpus) > 1 else ''} {','.join(info.gpus)}" if info.gpus else ""
        return f"{key} on node {info.node_id[:12]} ({info.hostname}, pid {info.pid}{devices})"

    def status_names(self) -> dict[str, str]:
        return {str(k): v.value for k, v in self.statuses.items()}

    def where(self) -> dict[str, dict]:
        return {str(k): {"address": i.address, "node": i.node_id, "pid": i.pid} for k, i in self.infos.items()}
