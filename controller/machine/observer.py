"""The observer: what the task group reports, turned into one typed observation per step.

Each step the controller asks once: which runs ended (the group's poll),
what the tasks reported (metrics go straight to the collector; checkpoints,
notices and task events come back), which tasks fell silent for longer than
``timeouts.heartbeat_s`` (ended as hung), and which training tasks sit on a
node that Ray is draining (told once each). The observer keeps what that
needs between steps (each task's last heartbeat, who was already noticed or
told) and never acts on the cluster: what to do is the controller's call.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

from controller.report.metrics import MetricsCollector
from controller.states.task_group import TaskGroup
from controller.states.task_table import TaskTable
from protocol.wire import (
    CheckpointReport,
    EventReport,
    FailureCause,
    FolderReport,
    HeartbeatReport,
    OutputReport,
    TaskEnd,
    TaskKey,
)


@dataclass(frozen=True)
class Drain:
    """A training task whose node is being drained."""

    key: TaskKey
    node: str
    deadline: float  # epoch seconds; 0 when Ray gave none


@dataclass(frozen=True)
class Observation:
    ends: tuple[TaskEnd, ...] = ()  # runs that ended, hung tasks included
    checkpoints: tuple[CheckpointReport, ...] = ()  # in order
    notices: tuple[TaskKey, ...] = ()  # tasks that got a preemption notice (SIGTERM) since the last look
    drains: tuple[Drain, ...] = ()  # training tasks newly found on a draining node
    task_events: tuple[EventReport, ...] = ()  # other things tasks reported doing
    folders: tuple[FolderReport, ...] = ()  # the chief's folders on a node that does not share the storage
    output: tuple[OutputReport, ...] = ()  # lines tasks printed

    @property
    def failed(self) -> tuple[TaskEnd, ...]:
        return tuple(end for end in self.ends if not end.finished)

    @property
    def finished(self) -> tuple[TaskEnd, ...]:
        return tuple(end for end in self.ends if end.finished)


@dataclass(eq=False)
class Observer:
    group: TaskGroup
    collector: MetricsCollector
    table: TaskTable
    clock: Callable[[], float]
    heartbeat_s: float  # a task silent this long is hung
    drain_poll_s: float  # how often to ask which nodes are being drained
    wall_clock: Callable[[], float] = time.time  # the clock of a notice's time (the task's time.time)
    _run_began_at: float = float("-inf")  # wall clock: notices from before it belong to an earlier run
    _last_seen: dict[TaskKey, float] = field(default_factory=dict)
    _noticed: set[TaskKey] = field(default_factory=set)
    _drained: set[TaskKey] = field(default_factory=set)
    _drains_read_at: float = float("-inf")

    def begin_run(self) -> None:
        """A new run of the cluster: every task counts as just seen, nobody noticed or told yet."""
        now = self.clock()
        self._last_seen = {key: now for key in self.table.statuses}
        self._run_began_at = self.wall_clock()
        self._noticed.clear()
        self._drained.clear()

    def seen(self, key: TaskKey) -> None:
        """A task was (re)started alone: its silence counts from now."""
        self._last_seen[key] = self.clock()

    @property
    def drained(self) -> frozenset[TaskKey]:
        """Tasks told to stop because their node is being drained (their capacity is going)."""
        return frozenset(self._drained)

    def observe(self, timeout_s: float) -> Observation:
        """Wait up to ``timeout_s`` for ends, then read everything else that is in."""
        ends = tuple(self.group.poll(timeout_s))
        reports = self.collect()
        return dataclasses.replace(reports, ends=ends + self._silent(), drains=self._draining())

    def collect(self, final: bool = False) -> Observation:
        """The reports only (metrics to the collector): what tasks sent before a teardown still counts;
        ``final``: the job ends, so every report sent until now."""
        checkpoints, notices, task_events, folders, output = [], [], [], [], []
        for report in self.collector.handle(self.group.drain_reports(final)):
            if isinstance(report, CheckpointReport):
                checkpoints.append(report)
            elif isinstance(report, FolderReport):
                folders.append(report)
            elif isinstance(report, OutputReport):
                output.append(report)
            elif isinstance(report, HeartbeatReport):
                self._last_seen[report.key] = self.clock()
                self.table.note_pid(report.key, report.pid)
                # A heartbeat of the run before a restart may come in after it (an old actor's last beat, still in
                # the inbox): its notice was that run's, and is not told again to the new run's coordinator.
                if report.notice and report.notice >= self._run_began_at and report.key not in self._noticed:
                    self._noticed.add(report.key)
                    notices.append(report.key)
            elif isinstance(report, EventReport):
                task_events.append(report)
        return Observation(checkpoints=tuple(checkpoints), notices=tuple(notices), task_events=tuple(task_events),
                           folders=tuple(folders), output=tuple(output))

    def _silent(self) -> tuple[TaskEnd, ...]:
        now = self.clock()
        hung = []
        for key, status in self.table.statuses.items():
            silent = now - self._last_seen.get(key, now)
            if self.table.alive(key) and silent > self.heartbeat_s:
                hung.append(TaskEnd.failed(key, FailureCause.HUNG, f"no heartbeat for {silent:.0f}s "
                                                                   f"(timeouts.heartbeat_s={self.heartbeat_s:g})"))
        return tuple(hung)

    def _draining(self) -> tuple[Drain, ...]:
        now = self.clock()
        if now - self._drains_read_at < self.drain_poll_s:
            return ()
        self._drains_read_at = now
        draining = self.group.draining_nodes()
        found = []
        for key, info in self.table.infos.items():
            if (info.node_id in draining and self.table.alive(key) and key not in self._drained
                    and (self.table.trains(key) or self.table.spec(key).serves_training)):  # side-cars just go
                self._drained.add(key)
                found.append(Drain(key, info.node_id, draining[info.node_id]))
        return tuple(found)
