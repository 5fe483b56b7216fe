"""The job record: ``job.json`` under the job folder, one entry per attempt.

The controller rewrites its attempt's entry (state, restarts, budgets spent,
task statuses, every failure decision) at each change, atomically, so
``tfray status`` can read it while the job runs and a new driver can tell
that the previous one died mid-run: its attempt never reached an end. The
new attempt then takes over that attempt's counters, so failure budgets hold
across a lost driver, and marks it ``DRIVER_LOST``.
"""

from __future__ import annotations

import json
from pathlib import Path

from controller.checkpoints import write_json_atomic
from controller.state import JobState

JOB_STATE_FILE = "job.json"
DRIVER_LOST = "DRIVER_LOST"  # the state of an attempt whose driver died before the job ended
ENDED = {s.value for s in JobState if s.is_terminal} | {DRIVER_LOST}


class JobRecord:
    """Reads and writes a job's ``job.json``."""

    def __init__(self, job_dir: str | Path, job_name: str):
        self.path = Path(job_dir) / JOB_STATE_FILE
        self.job_name = job_name

    def read(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.exists() else {"name": self.job_name, "attempts": []}

    def next_attempt(self) -> int:
        return len(self.read()["attempts"]) + 1

    def take_over_lost_attempt(self, attempt: int) -> dict | None:
        """The previous attempt if its driver died mid-run (marked DRIVER_LOST now), else None."""
        record = self.read()
        previous = record["attempts"][-1] if record["attempts"] else None
        if previous is None or previous["state"] in ENDED:
            return None
        lost = dict(previous)
        previous.update(state=DRIVER_LOST, message=f"the driver stopped before the job ended; attempt {attempt} "
                        "carried on")
        write_json_atomic(self.path, record)
        return lost

    def write_attempt(self, entry: dict) -> None:
        """Replace this attempt's entry (or add it)."""
        record = self.read()
        attempts = [a for a in record["attempts"] if a.get("attempt") != entry["attempt"]]
        write_json_atomic(self.path, {"name": self.job_name, "attempts": [*attempts, entry]})
