"""The job record: ``job.json`` under the job folder, one :class:`AttemptRecord` per attempt, and its events.

The controller rewrites its attempt's entry (state, restarts, budgets spent,
task statuses, how many events it has) at each change, atomically, so ``tfray
status`` can read it while the job runs and a new driver can tell that the
previous one died mid-run: its attempt never reached an end. The new attempt
then takes over that attempt's counters, so failure budgets hold across a
lost driver, and marks it ``DRIVER_LOST``. The events themselves are
appended to ``events.jsonl`` beside it, each written once: a days-long job's
record costs the same to write at its thousandth event as at its first. An
attempt written before events had their own file keeps them in ``job.json``,
and reads as before.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from controller.states import events as job_events
from controller.states.state import JobState
from protocol.atomic_files import write_json_atomic

JOB_STATE_FILE = "job.json"
EVENTS_FILE = "events.jsonl"  # {"attempt": N, "record": <event JSON>} a line, appended
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
    events: tuple = ()  # controller.states.events.JobEvent, in order
    started_at: float = 0.0
    spec: dict = field(default_factory=dict)  # what the attempt trained: controller.machine.resume.fingerprint
    events_inline: bool = False  # written before events.jsonl: its events stay in job.json

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    def to_json(self) -> dict:
        data = {"attempt": self.attempt, "state": self.state, "message": self.message,
                "updated_at": self.updated_at, "restarts": self.restarts, "spent": self.spent,
                "limits": self.limits, "statuses": self.statuses, "tasks": self.tasks,
                "started_at": self.started_at, "spec": self.spec}
        if self.events_inline:
            data["events"] = [event.to_json() for event in self.events]
        else:
            data["event_count"] = len(self.events)  # the rest is in events.jsonl
        return data

    @classmethod
    def from_json(cls, data: dict, events: list[dict] = ()) -> "AttemptRecord":
        """An entry of ``job.json``; ``events``: its events read from ``events.jsonl`` (unless inline)."""
        inline = "events" in data
        read = [job_events.from_json(e) for e in (data["events"] if inline else events) if isinstance(e, dict)]
        return cls(attempt=int(data["attempt"]), state=str(data["state"]), message=data.get("message") or "",
                   updated_at=data.get("updated_at") or 0.0, restarts=data.get("restarts", 0),
                   spent=dict(data.get("spent") or {}), limits=dict(data.get("limits") or {}),
                   statuses=dict(data.get("statuses") or {}), tasks=dict(data.get("tasks") or {}),
                   events=tuple(e for e in read if e is not None), started_at=data.get("started_at") or 0.0,
                   spec=dict(data.get("spec") or {}), events_inline=inline)


class JobRecord:
    """Reads and writes a job's ``job.json`` and ``events.jsonl``."""

    def __init__(self, job_dir: str | Path, job_name: str):
        self.path = Path(job_dir) / JOB_STATE_FILE
        self.events_path = Path(job_dir) / EVENTS_FILE
        self.job_name = job_name

    def attempts(self) -> list[AttemptRecord]:
        """Every attempt recorded; TornRecordError when the file is not a job record."""
        entries = self._entries()
        events = self._events() if any("events" not in entry for entry in entries) else {}
        try:
            return [AttemptRecord.from_json(entry, events.get(entry["attempt"], [])) for entry in entries]
        except (ValueError, KeyError, TypeError) as err:
            raise TornRecordError(f"{self.path} is not a job record ({type(err).__name__}: {err})") from None

    def set_aside(self) -> Path:
        """Move a torn record out of the way (kept for whoever wants to look); where it went. Its events go
        with it: the next attempt is numbered 1 again and must not inherit the old attempt 1's events."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.torn-{stamp}")
        self.path.rename(aside)
        if self.events_path.exists():
            self.events_path.rename(self.events_path.with_name(f"{self.events_path.name}.torn-{stamp}"))
        return aside

    def next_attempt(self) -> int:
        return max((int(entry["attempt"]) for entry in self._entries()), default=0) + 1

    def take_over_lost_attempt(self, attempt: int) -> AttemptRecord | None:
        """The previous attempt if its driver died mid-run (marked DRIVER_LOST now), else None."""
        attempts = self.attempts()
        if not attempts or attempts[-1].ended:
            return None
        lost = attempts[-1]
        self.write_attempt(dataclasses.replace(
            lost, state=DRIVER_LOST, updated_at=time.time(),
            message=f"the driver stopped before the job ended; attempt {attempt} carried on"))
        return lost

    def write_attempt(self, entry: AttemptRecord) -> None:
        """Replace this attempt's entry (or add it); its events not yet in ``events.jsonl`` are appended first.
        Neither file is read whole for it: ``job.json`` holds counters, and the count says what is written."""
        entries = self._entries()
        if not entry.events_inline:
            before = next((e for e in entries if e.get("attempt") == entry.attempt), {})
            self._append_events(entry.attempt, entry.events[int(before.get("event_count") or 0):])
        ordered = sorted([*(e for e in entries if e.get("attempt") != entry.attempt), entry.to_json()],
                         key=lambda e: e["attempt"])
        write_json_atomic(self.path, {"name": self.job_name, "attempts": ordered})

    def _entries(self) -> list[dict]:
        """``job.json``'s attempt entries as they are written; TornRecordError when it is not a job record."""
        if not self.path.exists():
            return []
        try:
            entries = json.loads(self.path.read_text())["attempts"]
            if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("attempt"), int)
                                                      for e in entries):
                raise TypeError("'attempts' is not a list of attempts")
            return entries
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
            why = err.strerror if isinstance(err, OSError) and err.strerror else f"{type(err).__name__}: {err}"
            raise TornRecordError(f"{self.path} is not a job record ({why})") from None

    def _events(self) -> dict[int, list[dict]]:
        """``events.jsonl`` by attempt (a line torn by a crash is skipped)."""
        try:
            lines = self.events_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return {}
        by_attempt: dict[int, list[dict]] = {}
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("attempt"), int) and isinstance(row.get("record"), dict):
                by_attempt.setdefault(row["attempt"], []).append(row["record"])
        return by_attempt

    def _append_events(self, attempt: int, events) -> None:
        if not events:
            return
        lines = "".join(json.dumps({"attempt": attempt, "record": event.to_json()}, sort_keys=True, default=str)
                        + "\n" for event in events)
        with self.events_path.open("a") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())  # as durable as job.json, whose event count now includes them
