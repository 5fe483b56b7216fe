"""One attempt's counters and events: what the controller has done so far and ``job.json`` keeps.

An attempt counts its cluster restarts and the units each failure budget
has spent, and keeps every event in order. When the previous attempt's
driver died mid-run, this one takes over its counters and events, so a
lost driver never resets a budget. :meth:`Attempt.snapshot` is the
:class:`~controller.machine.record.AttemptRecord` written at every change.
"""

from __future__ import annotations

import logging
import time

from controller.machine.failure_policy import BatchDecision
from controller.machine.record import AttemptRecord, JobRecord
from controller.states.events import ERROR_CHARS, Decision, DriverLost, JobEvent
from controller.states.state import JobState
from controller.states.task_table import TaskTable
from controller.states.text import compact

log = logging.getLogger("tfray")


class Attempt:
    def __init__(self, limits: dict[str, int], fingerprint: dict | None = None):
        self.number = 0
        self.fingerprint = dict(fingerprint or {})  # what this attempt trains (controller.machine.resume.fingerprint)
        self.started_at = time.time()
        self.limits = dict(limits)
        self.restarts = 0  # restarts of the whole cluster in this attempt
        self.spent = {budget: 0 for budget in limits}
        self.events: list[JobEvent] = []
        self.failures: list[str] = []  # each failed task, described for people
        self.changed = False  # something was added since the last snapshot

    def begin(self, record: JobRecord) -> None:
        """Take the next attempt number; carry on a lost driver's counters if its attempt never ended."""
        self.number = record.next_attempt()
        lost = record.take_over_lost_attempt(self.number)
        if lost is None:
            return
        self.restarts = lost.restarts
        self.spent = {budget: lost.spent.get(budget, 0) for budget in self.spent}
        self.events = [*lost.events, DriverLost(attempt=lost.attempt)]
        log.warning("attempt %d's driver stopped mid-run; carrying on with %d restart(s) and budgets %s",
                    lost.attempt, self.restarts, self.spent)

    def add(self, event: JobEvent) -> None:
        self.events.append(event)
        self.changed = True

    def decided(self, batch: BatchDecision, table: TaskTable) -> None:
        """Record the policy's decision for each failed task (its classified cause included)."""
        self.spent = dict(batch.spent)
        self.changed = True
        for symptom in batch.symptoms:
            log.warning("%s raised after %s was lost; treated as a consequence", symptom,
                        ", ".join(str(d.task) for d in batch.decisions))
        for decision in batch.decisions:
            info = table.infos.get(decision.task)
            self.failures.append(f"{table.describe(decision.task)} failed: {compact(decision.error)}")
            self.add(Decision(task=str(decision.task), cause=decision.cause.value, action=decision.action.value,
                              reason=decision.reason, node=info.node_id if info else None, budget=decision.budget,
                              spent=dict(self.spent), error=compact(decision.error, ERROR_CHARS)))
            log.warning("%s: %s -> %s (%s)", decision.task, decision.cause.value, decision.action.value,
                        decision.reason)

    def snapshot(self, state: JobState, message: str, table: TaskTable) -> AttemptRecord:
        self.changed = False
        return AttemptRecord(attempt=self.number, state=state.value, message=message, restarts=self.restarts,
                             spent=dict(self.spent), limits=dict(self.limits), statuses=table.status_names(),
                             tasks=table.where(), events=tuple(self.events), started_at=self.started_at,
                             spec=self.fingerprint)
