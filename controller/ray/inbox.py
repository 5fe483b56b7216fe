"""The report inbox: one small Ray actor per job that holds what tasks report until the driver takes it.

Tasks send reports fire-and-forget, so reporting never waits on the driver;
their heartbeats' answer carries whether the controller sent them a
preemption notice (their node is being drained), and side-cars ask it
whether training is over. When a task's node does not share the job folder,
the inbox writes what the task streams to the head (its checkpoints and
folders) and streams the head's copy of a checkpoint back for a restore. The driver keeps one ``drain`` call in flight
that answers as soon as a report arrives (or a little before the poll
interval ends, with the heartbeats) and waits on it beside the tasks' ends,
so a report reaches the driver at once, in one round trip, instead of at its
next poll. Answers come at most every ``settings.REPORT_BATCH_S`` (a report
after a quiet spell at once, a burst together), which bounds what a report
storm costs the driver; heartbeats and printed lines never wake it. It is an
asyncio actor, so the waiting call does not hold up the reports. It is
pinned to the head node: a lost or preempted worker node must not take every
task's reports with it (and not "the driver's node": with several Ray nodes
on one IP a driver may attach to any of them). It is named after the job
(``tfray:<job>:inbox`` in the ``tfray`` namespace) and lives as long as its
driver, so it is also the job's lease on the cluster: a second driver of the
same job on the same cluster finds the name taken and is told who holds it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayError

from controller import settings
from controller.store.lease import Holder, JobRunningError, running_message
from protocol import wire
from protocol.streaming import as_arrays, fetch, read_chunks, streaming

log = logging.getLogger("tfray")

HEAD_NODE_RESOURCE = "node:__internal_head__"  # Ray gives the head node this resource
NAMESPACE = "tfray"  # named actors of every tfray job: visible to every driver on the cluster
QUIET = (wire.HeartbeatReport, wire.OutputReport)  # taken at the driver's next poll: they never wake it


class ReportInbox:
    """The actor's class: reports, notices and the side-cars' stop flag. Every method is a coroutine, so all
    run on the actor's event loop, one at a time, and a waiting ``drain`` lets the others in."""

    def __init__(self, holder: dict | None = None) -> None:
        self._holder = holder  # the driver this inbox serves (host, pid, since)
        self._records: list[wire.Report] = []
        self._stop = False
        self._notices: set[str] = set()  # tasks told to save and stop (their node is being drained)
        self._news = asyncio.Event()  # a report the driver should see now is waiting
        self._answered_at = float("-inf")  # when a drain last answered (event loop time)

    async def holder(self) -> dict | None:
        return self._holder

    async def request_stop(self) -> None:
        self._stop = True

    async def stop_requested(self) -> bool:
        return self._stop

    async def report(self, report: wire.Report) -> None:
        self._records.append(report)
        if not isinstance(report, QUIET):
            self._news.set()

    async def report_many(self, reports: list[wire.Report]) -> None:
        """A task's reports in one call (``workers/inbox_sender.py`` batches what queued while it sent)."""
        for report in reports:
            await self.report(report)

    async def give_notice(self, task: str) -> None:
        self._notices.add(task)

    async def clear_notices(self) -> None:
        """The tasks are gone; their successors (same names) start without a notice."""
        self._notices.clear()

    async def heartbeat(self, beat: wire.HeartbeatReport) -> bool:
        """Keep a task's heartbeat; answer whether the task has been sent a preemption notice."""
        self._records.append(beat)
        return beat.task in self._notices

    async def read_chunks(self, folder: str):
        """A folder of the head's job folder, streamed to a task whose node does not share it (a restore's
        checkpoint, the job's backups); each piece is read off the event loop."""
        pieces = as_arrays(read_chunks(folder))
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            yield piece

    async def gather(self, task_actor, folder: str, into: str, remove_after: bool, replace: bool,
                     timeout_s: float) -> str:
        """A folder on a task's node (``task_actor.read_chunks``) written into the head's job folder at
        ``into``; here rather than in the driver, so the driver never holds a piece of it. Off the event
        loop: reports come in meanwhile. ``timeout_s`` counts from this call's start, not from when a thread
        takes it up: the driver gives up on it a little after that (``settings.GATHER_SLACK_S``) and must
        find nothing writing into the job folder by then."""
        deadline = time.monotonic() + timeout_s
        stream = streaming(task_actor.read_chunks).remote(folder, remove_after)

        def write() -> str:
            return str(fetch(stream, into, max(0.0, deadline - time.monotonic()), folder, replace))

        return await asyncio.to_thread(write)

    async def drain(self, wait_s: float = 0.0, batch_s: float = 0.0) -> list[wire.Report]:
        """Every record since the last drain. With ``wait_s``: once a report that should wake the driver is
        in (waiting up to ``wait_s`` for one), but not sooner than ``batch_s`` after the last answer."""
        loop = asyncio.get_running_loop()
        if wait_s > 0 and not self._news.is_set():
            try:
                await asyncio.wait_for(self._news.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
        if self._news.is_set() and batch_s > 0:
            await asyncio.sleep(max(0.0, self._answered_at + batch_s - loop.time()))
        records, self._records = self._records, []
        self._news.clear()
        self._answered_at = loop.time()
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
        self._call: ray.ObjectRef | None = None  # the drain call in flight, waiting for reports
        self._taken: list[wire.Report] = []  # what answered calls brought, not handed on yet
        self._woken = False  # a call answered since the records were last handed on
        self._calls = True  # False once a call failed: reports are then drained at each step

    @staticmethod
    def _holder_of(name: str) -> Holder | None:
        try:
            holder = ray.get(ray.get_actor(name, namespace=NAMESPACE).holder.remote(),
                             timeout=settings.INBOX_CALL_TIMEOUT_S)
            return Holder(**holder) if holder else None
        except Exception as err:  # it went away meanwhile, or does not answer: say so without the details
            log.debug("holder of %s: %s", name, err)
            return None

    def call(self, wait_s: float) -> ray.ObjectRef | None:
        """The drain call in flight (made now if there is none, to wait up to ``wait_s`` for a report): the
        driver waits on it beside the tasks' ends. None when calls fail (the inbox is gone)."""
        if self._call is None and self._calls:
            self._call = self.actor.drain.remote(wait_s, settings.REPORT_BATCH_S)
        return self._call

    def answered(self, ready: list) -> None:
        """After a wait: keep what the call brought if it answered. A call that failed is not made again (no
        busy loop on an inbox that is gone; the plain drain says so)."""
        if self._call is None or self._call not in ready:
            return
        call, self._call = self._call, None
        try:
            self._taken += ray.get(call, timeout=settings.REPORT_DRAIN_TIMEOUT_S)
        except RayError as err:
            self._calls = False
            log.warning("the report inbox's waiting call failed (%s); reports are read at each step",
                        type(err).__name__)
            return
        self._woken = True

    def records(self, final: bool = False) -> list[wire.Report]:
        """The reports in, in order: what the calls brought, or a plain drain when no call answered since
        the last time (the wait ended on a task's end). ``final`` (the job ends: nothing comes later) drains
        too and waits for the call in flight, which may have taken reports a moment before."""
        if self._call is not None:
            self.answered(ray.wait([self._call], timeout=0)[0])
        records, self._taken = self._taken, []
        if final or not self._woken:
            records += self._drain_now()
        if final and self._call is not None:
            self.answered(ray.wait([self._call], timeout=settings.REPORT_DRAIN_TIMEOUT_S)[0])
            records, self._taken = records + self._taken, []
        self._woken = False
        return records

    def _drain_now(self) -> list[wire.Report]:
        """Every report waiting now; [] when the inbox is slow (the reports wait for the next call)."""
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
