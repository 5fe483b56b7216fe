"""The job record: ``job.json`` under the job folder, one :class:`AttemptRecord` per attempt.

The controller rewrites its attempt's entry (state, restarts, budgets spent,
task statuses, every event) at each change, atomically, so ``tfray status``
can read it while the job runs and a new driver can tell that the previous
one died mid-run: its attempt never reached an end. The new attempt then
takes over that attempt's counters, so failure budgets hold across a lost
driver, and marks it ``DRIVER_LOST``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from controller import events as job_events
from controller.layout import write_json_atomic
from controller.state import JobState

JOB_STATE_FILE = "job.json"
DRIVER_LOST = "DRIVER_LOST"  # the state of an attempt whose driver died before the job ended
ENDED = {s.value for s in JobState if s.is_terminal} | {DRIVER_LOST}


class TornRecordError(RuntimeError):
    """``job.json`` cannot be read as a job record (cut short, not JSON, a folder...): the message says why."""


@dataclass(frozen=True)
class AttemptRecord:
    """What ``job.json`` keeps of one attempt."""

    attempt: int
    state: str
    message: str = ""
    updated_at: float = field(default_factory=time.time)
    restarts: int = 0
    spent: dict = field(default_factory=dict)  # budget -> units spent
    limits: dict = field(default_factory=dict)  # budget -> limit
    statuses: dict = field(default_factory=dict)  # task -> TaskStatus value
    tasks: dict = field(default_factory=dict)  # task -> {address, node, pid}
    events: tuple = ()  # controller.events.JobEvent, in order
    started_at: float = 0.0
    spec: dict = field(default_factory=dict)  # what the attempt trained: controller.resume.fingerprint

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    def to_json(self) -> dict:
        return {"attempt": self.attempt, "state": self.state, "message": self.message,
                "updated_at": self.updated_at, "restarts": self.restarts, "spent": self.spent,
                "limits": self.limits, "statuses": self.statuses, "tasks": self.tasks,
                "events": [event.to_json() for event in self.events], "started_at": self.started_at,
                "spec": self.spec}

    @classmethod
    def from_json(cls, data: dict) -> "AttemptRecord":
        read = [job_events.from_json(e) for e in data.get("events", []) if isinstance(e, dict)]
        return cls(attempt=int(data["attempt"]), state=str(data["state"]), message=data.get("message") or "",
                   updated_at=data.get("updated_at") or 0.0, restarts=data.get("restarts", 0),
                   spent=dict(data.get("spent") or {}), limits=dict(data.get("limits") or {}),
                   statuses=dict(data.get("statuses") or {}), tasks=dict(data.get("tasks") or {}),
                   events=tuple(e for e in read if e is not None), started_at=data.get("started_at") or 0.0,
                   spec=dict(data.get("spec") or {}))


class JobRecord:
    """Reads and writes a job's ``job.json``."""

    def __init__(self, job_dir: str | Path, job_name: str):
        self.path = Path(job_dir) / JOB_STATE_FILE
        self.job_name = job_name

    def attempts(self) -> list[AttemptRecord]:
        """Every attempt recorded; TornRecordError when the file is not a job record."""
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text())
            attempts = data["attempts"]
            if not isinstance(attempts, list):
                raise TypeError("'attempts' is not a list")
            return [AttemptRecord.from_json(a) for a in attempts]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
            why = err.strerror if isinstance(err, OSError) and err.strerror else f"{type(err).__name__}: {err}"
            raise TornRecordError(f"{self.path} is not a job record ({why})") from None

    def set_aside(self) -> Path:
        """Move a torn record out of the way (kept for whoever wants to look); where it went."""
        aside = self.path.with_name(f"{self.path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
        self.path.rename(aside)
        return aside

    def next_attempt(self) -> int:
        return max((a.attempt for a in self.attempts()), default=0) + 1

    def take_over_lost_attempt(self, attempt: int) -> AttemptRecord | None:
        """The previous attempt if its driver died mid-run (marked DRIVER_LOST now), else None."""
        attempts = self.attempts()
        if not attempts or attempts[-1].ended:
            return None
        lost = attempts[-1]
        marked = dataclasses.replace(lost, state=DRIVER_LOST, updated_at=time.time(),
                                     message=f"the driver stopped before the job ended; attempt {attempt} carried on")
        self._write([*attempts[:-1], marked])
        return lost

    def write_attempt(self, entry: AttemptRecord) -> None:
        """Replace this attempt's entry (or add it)."""
        self._write([*(a for a in self.attempts() if a.attempt != entry.attempt), entry])

    def _write(self, attempts: list[AttemptRecord]) -> None:
        ordered = sorted(attempts, key=lambda a: a.attempt)
        write_json_atomic(self.path, {"name": self.job_name, "attempts": [a.to_json() for a in ordered]})
