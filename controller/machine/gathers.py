"""Folders on tasks' nodes on their way to the head's job folder: each gather on its own, with its deadline.

When a task's node does not share the storage path, what it saves (the
chief's checkpoints, its folders at a run's end) is streamed to the head by
the task group (``TaskGroup.start_gather``) while the controller's steps go
on: a gather from a host that went silent must not keep the controller from
watching heartbeats, ends, notices and drains. Each step looks at the gathers
in flight without waiting (:meth:`Gathers.collect`); one past its deadline
is given up. Before the manifest is reconciled for a restart, and before the
actors that serve the gathers are released at the job's end,
:meth:`Gathers.wait_all` waits for the rest, bounded by their deadlines, so
that nothing writes into the job folder then.

A deadline is ``GATHER_TIMEOUT_S``, the bound by which the head's writer
stops, and ``GATHER_SLACK_S`` more: a gather the driver gave up on has no
writer left behind it, so a late answer registers nothing and the unsealed
folder it left is cleared at the next reconcile.

One gather at a time per task, the others queued in the order reported: a
task actor has room for its run, a stop and one stream beside them
(``max_concurrency`` in ``controller/ray/actors.py``), and the chief's
checkpoints then arrive oldest first. A gather that ran out of time says the
task's host does not answer: the gathers queued behind it are given up with
it, rather than each waiting out a deadline of its own.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable

from controller import settings
from controller.states.task_group import FolderFetchError, TaskGroup
from protocol.wire import TaskKey

log = logging.getLogger("tfray")


@dataclass(frozen=True)
class Gather:
    """One folder on a task's node to bring into the head's job folder."""

    task: TaskKey
    what: str  # as the log names it: "the checkpoint of step 20", "model"
    source: str  # the folder on the task's node
    into: Path
    remove_after: bool  # the node's copy goes once read (a checkpoint)
    replace: bool  # it becomes ``into``'s whole content
    step: int | None = None  # a checkpoint's step; None for one of the job's folders


# A gather that is over: the folder it wrote, or why it was given up.
Outcome = tuple[Gather, "Path | FolderFetchError"]


@dataclass(frozen=True)
class _InFlight:
    gather: Gather
    handle: Hashable  # the task group's
    deadline: float  # on the controller's clock
    bound_s: float


class Gathers:
    """The job's gathers queued and in flight."""

    def __init__(self, group: TaskGroup, clock: Callable[[], float]):
        self.group = group
        self.clock = clock
        self._queued: dict[TaskKey, deque[Gather]] = {}
        self._in_flight: dict[TaskKey, _InFlight] = {}
        self._over: list[Outcome] = []  # ended since the last collect (one that could not start, one given up)

    def __len__(self) -> int:
        """Gathers not over yet: in flight or queued."""
        return len(self._in_flight) + sum(map(len, self._queued.values()))

    def add(self, gather: Gather) -> None:
        """Start it, or queue it behind its task's gather in flight; never waits."""
        self._queued.setdefault(gather.task, deque()).append(gather)
        self._start_next(gather.task)

    def collect(self, wait_s: float = 0.0) -> list[Outcome]:
        """The gathers over since the last call: those that ended (waiting up to ``wait_s`` for the first when
        none has), and those given up at their deadline; the next queued ones start."""
        flights = {flight.handle: flight for flight in self._in_flight.values()}
        if flights:
            for handle, outcome in self.group.finished_gathers(list(flights), wait_s).items():
                flight = flights.pop(handle, None)
                if flight is not None:
                    del self._in_flight[flight.gather.task]
                    self._over.append((flight.gather, outcome))
        now = self.clock()
        for flight in flights.values():
            if now >= flight.deadline:
                self._expire(flight)
        for task in list(self._queued):
            self._start_next(task)
        over, self._over = self._over, []
        return over

    def wait_all(self, before: str) -> list[Outcome]:
        """Every gather queued or in flight over: waited for (``before`` a restart or the job's end), each
        within its own deadline; the wait as a whole is bounded too, and what is left then is given up. A
        Ctrl-C gives every one up at once (they are said at the next :meth:`collect`) and goes on up."""
        over = self.collect()
        if not len(self):
            return over
        # Queued gathers start one after another, so the bound is theirs added up; each is seen over within
        # a poll of its deadline.
        deadline_s = settings.GATHER_TIMEOUT_S + settings.GATHER_SLACK_S
        bound_s = len(self) * (deadline_s + settings.POLL_INTERVAL_S)
        log.info("waiting for %d folder(s) on their way from the tasks' nodes before %s (%s); at most %gs "
                 "each", len(self), before, ", ".join(self._described()), deadline_s)
        try:
            settings.poll_until(lambda: not len(self), bound_s, settings.POLL_INTERVAL_S,
                                f"the gathers before {before}", wait=lambda wait_s: over.extend(self.collect(wait_s)),
                                clock=self.clock)
        except settings.WaitTimeout as err:
            over += self._give_up_all(str(err))
        except KeyboardInterrupt:
            self._over += self._give_up_all("stopped waiting for it (Ctrl-C)")
            raise
        return over

    # ------------------------------------------------------------------ helpers

    def _start_next(self, task: TaskKey) -> None:
        queue = self._queued.get(task, deque())
        while queue and task not in self._in_flight:
            gather = queue.popleft()
            bound_s = settings.GATHER_TIMEOUT_S
            try:
                handle = self.group.start_gather(gather.task, gather.source, gather.into,
                                                 remove_after=gather.remove_after, replace=gather.replace,
                                                 timeout_s=bound_s)
            except FolderFetchError as err:
                self._over.append((gather, err))
                continue
            self._in_flight[task] = _InFlight(gather, handle, self.clock() + bound_s + settings.GATHER_SLACK_S,
                                              bound_s + settings.GATHER_SLACK_S)
        if not queue:
            self._queued.pop(task, None)

    def _expire(self, flight: _InFlight) -> None:
        task = flight.gather.task
        del self._in_flight[task]
        self._over.append((flight.gather, FolderFetchError(
            f"no answer within its deadline of {flight.bound_s:g}s (TFRAY_GATHER_TIMEOUT_S plus "
            "TFRAY_GATHER_SLACK_S): the task's host may be gone or silent; raise TFRAY_GATHER_TIMEOUT_S if "
            "its storage is only slow")))
        for queued in self._queued.pop(task, ()):
            self._over.append((queued, FolderFetchError(
                f"not started: {flight.gather.what}, queued before it, got no answer from {task}'s node")))

    def _give_up_all(self, why: str) -> list[Outcome]:
        left = [flight.gather for flight in self._in_flight.values()]
        left += [gather for queue in self._queued.values() for gather in queue]
        self._in_flight.clear()
        self._queued.clear()
        return [(gather, FolderFetchError(f"given up: {why}")) for gather in left]

    def _described(self) -> list[str]:
        flying = [f"{flight.gather.what} from {task}" for task, flight in self._in_flight.items()]
        return flying + [f"{gather.what} from {task} (queued)" for task, queue in self._queued.items()
                         for gather in queue]
