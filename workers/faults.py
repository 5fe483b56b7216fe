"""Fault injection inside a task process: the seam that tests, benchmarks and users share.

The controller hands each task the faults aimed at it (from the spec's
``faults`` or ``tfray run --fault``). A step-triggered fault fires when the
task reports that step (``ctx.report``); a save-triggered one while it writes
a checkpoint, after the files and before the seal; a time-triggered one
from a timer after the task starts running. Faults are real: SIGKILL and SIGTERM
are sent to the task's own process, ``hang`` stops it with SIGSTOP (so its
heartbeats stop too), ``raise`` raises :class:`InjectedFault` in the
training code at its next report.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable

from protocol.wire import EventReport, Report, TaskKey


class InjectedFault(RuntimeError):
    """Raised into user code by a ``raise`` fault."""


class FaultInjector:
    """Fires the faults of one task (each at most once)."""

    def __init__(self, task: str, faults: list[dict] | tuple = (), report: Callable[[Report], None] | None = None):
        self.task = task
        self.faults = [dict(f) for f in faults]
        self.report = report  # tells the controller a fault fired (the job's summary lists them)
        self._pending_raise: dict | None = None
        self._timers: list[threading.Timer] = []

    def start(self) -> None:
        """Arm the time-triggered faults."""
        for fault in self.faults:
            if fault.get("after_s") is not None:
                timer = threading.Timer(fault["after_s"], self._fire, args=(fault,))
                timer.daemon = True
                timer.start()
                self._timers.append(timer)

    def on_step(self, step: int) -> None:
        """Called on every report: fire step-triggered faults that are due."""
        self._fire_due("at_step", step)

    def on_save(self, step: int) -> None:
        """Called between writing a checkpoint's files and sealing it: fire save-triggered faults."""
        self._fire_due("at_save", step)

    def _fire_due(self, trigger: str, step: int) -> None:
        for fault in self.faults:
            if fault.get(trigger) is not None and not fault.get("fired") and step >= fault[trigger]:
                self._fire(fault)
        if self._pending_raise is not None:  # a raise fault (due now, or fired by a timer) lands here
            fault, self._pending_raise = self._pending_raise, None
            raise InjectedFault(f"injected fault in {self.task}: {fault}")

    def _fire(self, fault: dict) -> None:
        planned = {k: v for k, v in fault.items() if k != "fired"}
        fault["fired"] = True
        action = fault["action"]
        print(f"[tfray] injecting fault '{action}' into {self.task} (pid {os.getpid()})", flush=True)
        if self.report is not None:  # before the fault: a killed process reports nothing after it
            self.report(EventReport(TaskKey.parse(self.task), "fault_fired", {"fault": planned}))
        if action == "raise":
            self._pending_raise = fault
        elif action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        elif action == "hang":
            os.kill(os.getpid(), signal.SIGSTOP)
        else:
            raise ValueError(f"unknown fault action {action!r}")
