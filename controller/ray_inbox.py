"""The report inbox: one small Ray actor per job that holds what tasks report until the driver drains it.

Tasks send reports fire-and-forget, so reporting never waits on the driver;
their heartbeats' answer carries whether the controller sent them a
preemption notice (their node is being drained), and side-cars ask it
whether training is over. It is pinned to the head node: a lost or
preempted worker node must not take every task's reports with it (and not
"the driver's node": with several Ray nodes on one IP a driver may attach
to any of them). It is named after the job (``tfray:<job>:inbox`` in the
``tfray`` namespace) and lives as long as its driver, so it is also the
job's lease on the cluster: a second driver of the same job on the same
cluster finds the name taken and is told who holds it.
"""

from __future__ import annotations

import logging

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError

from controller import settings
from controller.lease import Holder, JobRunningError, running_message

log = logging.getLogger("tfray")

HEAD_NODE_RESOURCE = "node:__internal_head__"  # Ray gives the head node this resource
NAMESPACE = "tfray"  # named actors of every tfray job: visible to every driver on the cluster


class ReportInbox:
    """The actor's class: reports, notices and the side-cars' stop flag."""

    def __init__(self, holder: dict | None = None) -> None:
        self._holder = holder  # the driver this inbox serves (host, pid, since)
        self._records: list[dict] = []
        self._stop = False
        self._notices: set[str] = set()  # tasks told to save and stop (their node is being drained)

    def holder(self) -> dict | None:
        return self._holder

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

    def __init__(self, job_name: str, holder: Holder) -> None:
        """The job's inbox, or JobRunningError when another driver's inbox of this job is alive."""
        name = f"tfray:{job_name}:inbox"
        try:
            self.actor = ray.remote(num_cpus=0)(ReportInbox).options(
                name=name, namespace=NAMESPACE, resources={HEAD_NODE_RESOURCE: 0.001}).remote(vars(holder))
        except ValueError:  # the name is taken: that driver is alive (its inbox dies with it)
            raise JobRunningError(running_message(job_name, self._holder_of(name))) from None

    @staticmethod
    def _holder_of(name: str) -> Holder | None:
        try:
            holder = ray.get(ray.get_actor(name, namespace=NAMESPACE).holder.remote(),
                             timeout=settings.INBOX_CALL_TIMEOUT_S)
            return Holder(**holder) if holder else None
        except Exception as err:  # it went away meanwhile, or does not answer: say so without the details
            log.debug("holder of %s: %s", name, err)
            return None

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
