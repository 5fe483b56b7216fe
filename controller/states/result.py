"""How a job ended: what ``Controller.run`` and ``controller.run`` return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.states.events import JobEvent
from controller.states.state import JobState
from controller.states.task_group import TaskInfo
from controller.store.checkpoints import CheckpointRecord


@dataclass
class JobResult:
    """How a job ended, for the CLI and for tests."""

    state: JobState
    message: str
    job_dir: str
    attempt: int
    result: Any = None  # what the chief's entrypoint returned
    latest_checkpoint: CheckpointRecord | None = None
    failures: list[str] = field(default_factory=list)  # each failed task, described
    tasks: dict[str, TaskInfo] = field(default_factory=dict)  # where each task ran (last incarnation)
    restarts: int = 0  # restarts of the whole cluster
    events: list[JobEvent] = field(default_factory=list)  # everything the attempt's record holds, in order
    statuses: dict[str, str] = field(default_factory=dict)
    chief_metrics: dict | None = None  # the chief's last report: {"step": N, "values": {...}}
    elapsed_s: float | None = None  # from the attempt's start to its end (earlier attempts not counted)
