"""A task's heartbeat: from a thread of its actor, to the job's inbox, about once a second.

While a process trains, a beat goes out only if that process said it is
alive since the last beat, so a stopped (SIGSTOP) or wedged training
process stops the beats and the controller sees the task as hung. Each
beat names the process that trains now and whether it got a preemption
notice; the inbox's answer says whether the controller sent the task one
(its node is being drained).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

from protocol.wire import ActorConfig, HeartbeatReport


class Heartbeat:
    def __init__(self, config: ActorConfig, inbox, now: Callable[[], tuple[int | None, int, float | None]],
                 on_notice: Callable[[], None]):
        """``now()`` gives (pid of the training process or None, its alive count, when it got a notice);
        ``on_notice`` is called when the controller sent this task a preemption notice."""
        self.config = config
        self.inbox = inbox
        self.now = now
        self.on_notice = on_notice

    def start(self) -> None:
        threading.Thread(target=self._beat, name="tfray-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        import ray

        sent = -1
        while True:
            child, count, notice = self.now()
            if child is None or count != sent:
                sent = count
                reply = self.inbox.heartbeat.remote(HeartbeatReport(self.config.key, child or os.getpid(), notice))
                try:
                    told = ray.get(reply, timeout=self.config.heartbeat_reply_timeout_s)
                except Exception:  # a slow inbox: the heartbeat is sent anyway, the answer waits
                    told = False
                if told:
                    self.on_notice()
            time.sleep(self.config.heartbeat_interval_s)
