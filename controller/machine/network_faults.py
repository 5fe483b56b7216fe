"""Network faults, carried out by the controller: a task's host silenced, partitioned for a while, or cut
off from the head only.

A process fault fires inside the task (``workers/faults.py``); a network fault cannot: a process does not
cut its own host off, and the task on that host may report nothing to fire on (a PSS worker or ps). So
the watch asks this module once a step what is due, with the job's step (the chief's latest report) and
where each task lives now, and this module changes the network through the job's
:class:`~controller.states.network.HostNetwork`. ``at_step`` counts the job's step; ``after_s`` counts
from the start of the run of the cluster the fault belongs to (``restart``). A partition heals on a timer
of its own, so a step that takes long (a replacement's start, a checkpoint gathered) never lengthens it,
and the job's end heals a partition still open. Each change is a
:class:`~controller.states.events.NetworkFault` in the job's record; one that cannot be made (the task
has no host now, the network refuses) is recorded as ``not_carried_out`` and the job goes on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping

from controller.spec import FaultAction, FaultSpec, JobSpec, check_host_network
from controller.states.events import NetworkFault
from controller.states.network import HostNetwork
from protocol.wire import TaskKey

log = logging.getLogger("tfray")


@dataclass(eq=False)
class NetworkFaults:
    faults: tuple[FaultSpec, ...]  # the spec's network faults only
    network: HostNetwork | None
    clock: Callable[[], float]
    _run: int = 0
    _run_began_at: float = 0.0
    _fired: set[int] = field(default_factory=set)
    _open: dict[int, tuple[threading.Timer, str]] = field(default_factory=dict)  # partitions not yet healed
    _healed: list[NetworkFault] = field(default_factory=list)  # by the timers' threads, taken by due()
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, spec: JobSpec, network: HostNetwork | None, clock: Callable[[], float]) -> "NetworkFaults":
        """The spec's network faults (SpecError when it has some and there is no network to act on)."""
        check_host_network(spec, network)
        if network is not None:
            log.info("network faults act on %s", network.describe())
        return cls(tuple(f for f in spec.faults if f.action.on_network), network, clock)

    def begin_run(self, restarts: int) -> None:
        """Run ``restarts`` of the cluster starts now: its faults count their seconds from here."""
        self._run, self._run_began_at = restarts, self.clock()

    def due(self, job_step: int | None, hosts: Mapping[TaskKey, str]) -> list[NetworkFault]:
        """Carry out the faults whose moment came (``hosts``: each task's address now); what changed, the
        partitions healed since the last call included."""
        with self._lock:
            events, self._healed = self._healed, []
        elapsed = self.clock() - self._run_began_at
        for index, fault in enumerate(self.faults):
            if index in self._fired or fault.restart != self._run:
                continue
            if fault.at_step is not None and (job_step is None or job_step < fault.at_step):
                continue
            if fault.after_s is not None and elapsed < fault.after_s:
                continue
            self._fired.add(index)
            events.append(self._fire(index, fault, hosts.get(fault.key)))
        return events

    def close(self) -> list[NetworkFault]:
        """The job ends: every partition still open heals now (a partition is promised to heal; a silence is
        not). The changes, as ``due`` returns them."""
        for index, (timer, host) in list(self._open.items()):
            timer.cancel()
            self._heal(index, host)
        with self._lock:
            events, self._healed = self._healed, []
        return events

    def _fire(self, index: int, fault: FaultSpec, host: str | None) -> NetworkFault:
        planned = fault.model_dump(mode="json")
        if host is None:
            return self._said(NetworkFault(task=fault.task, host="", what="not_carried_out", fault=planned,
                                           error=f"{fault.task} has no host now"))
        try:
            if fault.action is FaultAction.SILENCE_HEAD:
                self.network.silence_from_head(host)
                what = "silenced_from_head"
            else:
                self.network.silence(host)
                what = "silenced" if fault.action is FaultAction.SILENCE else "partitioned"
        except Exception as err:  # the harness's own error: the job goes on, the record says why
            return self._said(NetworkFault(task=fault.task, host=host, what="not_carried_out", fault=planned,
                                           error=f"{type(err).__name__}: {err}"))
        if fault.action is FaultAction.PARTITION:
            timer = threading.Timer(fault.duration_s, self._heal, args=(index, host))
            timer.daemon = True
            self._open[index] = (timer, host)
            timer.start()
        return self._said(NetworkFault(task=fault.task, host=host, what=what, fault=planned))

    def _heal(self, index: int, host: str) -> None:
        """A partition's end (its timer's thread, or ``close``): the host's network back as it was."""
        if self._open.pop(index, None) is None:
            return  # healed already (the timer and close() raced)
        fault = self.faults[index]
        try:
            self.network.heal(host)
            event = NetworkFault(task=fault.task, host=host, what="healed", fault=fault.model_dump(mode="json"))
        except Exception as err:
            event = NetworkFault(task=fault.task, host=host, what="not_carried_out", error=f"heal: {err}",
                                 fault=fault.model_dump(mode="json"))
        with self._lock:
            self._healed.append(self._said(event))

    @staticmethod
    def _said(event: NetworkFault) -> NetworkFault:
        if event.what == "not_carried_out":
            log.warning("network fault on %s's host %s not carried out: %s", event.task, event.host or "-",
                        event.error)
        else:
            log.warning("network fault: %s's host %s %s%s", event.task, event.host, event.what.replace("_", " "),
                        f" for {event.fault['duration_s']:g}s" if event.what == "partitioned" else "")
        return event
