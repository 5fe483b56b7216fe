"""The report inbox: one small Ray actor per job that holds what tasks report until the driver drains it.

Tasks send reports fire-and-forget, so reporting never waits on the driver;
their heartbeats' answer carries whether the controller sent them a
preemption notice (their node is being drained), and side-cars ask it
whether training is over. It is pinned to the head node: a lost or
preempted worker node must not take every task's reports with it (and not
"the driver's node": with several Ray nodes on one IP a driver may attach
to any of them).
"""

from __future__ import annotations

import logging

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError

from controller import settings

log = logging.getLogger("tfray")

HEAD_NODE_RESOURCE = "node:__internal_head__"  # Ray gives the head node this resource


class ReportInbox:
    """The actor's class: reports, notices and the side-cars' stop flag."""

    def __init__(self) -> None:
        self._records: list[dict] = []
        self._stop = False
        self._notices: set[str] = set()  # tasks told to save and stop (their node is being drained)

    def request_stop(self) -> None:
        self._stop = True

    def stop_requested(self) -> bool:
        return self._stop

    def report(self, record: dict) -> None:
        self._records.append(record)

    def give_notice(self, task: str) -> None:
        self._notices.add(task)

    def clear_notices(self) -> None:
        """The tasks are gone; their successors (same names) start without a notice."""
        self._notices.clear()

    def heartbeat(self, record: dict) -> bool:
        """Keep a task's heartbeat; answer whether the task has been sent a preemption notice."""
        self._records.append(record)
        return record["task"] in self._notices

    def drain(self) -> list[dict]:
        records, self._records = self._records, []
        return records


class Inbox:
    """The driver's handle on the job's inbox actor."""

    def __init__(self) -> None:
        self.actor = ray.remote(num_cpus=0)(ReportInbox).options(resources={HEAD_NODE_RESOURCE: 0.001}).remote()

    def drain(self) -> list[dict]:
        """Every report since the last drain; [] when the inbox is slow (the reports wait for the next call)."""
        try:
            return ray.get(self.actor.drain.remote(), timeout=settings.REPORT_DRAIN_TIMEOUT_S)
        except (GetTimeoutError, ActorUnavailableError) as err:
            log.warning("the report inbox did not answer (%s); trying again next step", type(err).__name__)
            return []

    def give_notice(self, task: str) -> None:
        self.actor.give_notice.remote(task)

    def clear_notices(self) -> None:
        self.actor.clear_notices.remote()

    def request_sidecar_stop(self) -> None:
        self.actor.request_stop.remote()

    def close(self) -> None:
        try:
            ray.kill(self.actor, no_restart=True)
        except Exception as err:  # already gone is fine
            log.debug("kill inbox: %s", err)
