"""A task's reports on their way to the job's inbox: queued, in order, sent in batches by one thread.

The thread that reads the training process's report pipe only parses and
queues (``protocol.wire`` reports, sent as they are: Ray pickles them), so
it never waits on Ray and the pipe never fills (a full pipe would block
``ctx.report`` in the training step). The sender thread sends
whatever has queued as one inbox call: one report at a time while they are
rare (no added latency), and a task reporting every few milliseconds costs
one Ray call per batch instead of one per report. ``flush`` returns once
the inbox has every report queued before it: a run's end waits for that,
so the driver, seeing the end, finds its last reports already in.
"""

from __future__ import annotations

import logging
import queue
import threading

from protocol.wire import Report

log = logging.getLogger("tfray.task")

MAX_BATCH = 1000  # reports in one inbox call at most


class _Flush:
    """A marker in the queue: everything before it is sent, then the caller is told."""

    def __init__(self) -> None:
        self.done = threading.Event()


class InboxSender:
    def __init__(self, inbox, call_timeout_s: float):
        self.inbox = inbox
        self.call_timeout_s = call_timeout_s
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._send_forever, name="tfray-reports", daemon=True).start()

    def send(self, report: Report) -> None:
        self._queue.put(report)

    def flush(self) -> bool:
        """Wait (bounded) until the inbox has every report queued so far; False if it did not answer."""
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(2 * self.call_timeout_s)

    def _send_forever(self) -> None:
        while True:
            batch, marker = [], None
            item = self._queue.get()
            while True:
                if isinstance(item, _Flush):
                    marker = item
                    break
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            call = self.inbox.report_many.remote(batch) if batch else None
            if marker is not None:
                self._confirm(call)
                marker.done.set()

    def _confirm(self, call) -> None:
        """Calls from one process to one actor run in the order they were made: one answered means every
        report sent before it is in."""
        import ray

        try:
            ray.get(call if call is not None else self.inbox.report_many.remote([]), timeout=self.call_timeout_s)
        except Exception as err:  # a slow or lost inbox: the run ends anyway, the driver's drain decides
            log.warning("the job's inbox did not confirm this task's reports: %s", err)
