"""Preemption notice: a SIGTERM is a warning to save, not a death.

Clouds send SIGTERM before they reclaim a spot VM (GCP gives 30 s, AWS 2
minutes). A training task that gets one records the notice and keeps
going; its training loop sees ``ctx.preemption_notice``, saves a
checkpoint at the next step boundary (under MultiWorkerMirroredStrategy
every task agrees on that step through an all-reduce; see
``workers.keras.PreemptionCallback``) and raises :class:`TaskPreempted`.
The controller then restarts from that checkpoint, so no completed step is
lost, and counts the event against the preemption budget, not the error
budget. Code that never looks at the notice is killed when the grace
period ends, as the cloud would.
"""

from __future__ import annotations

import os
import signal
import threading
import time


class TaskPreempted(RuntimeError):
    """Raised by training code once it has saved on a preemption notice."""


def install_notice_handler(ctx, grace_s: float, keeps: str = "saves at the next step boundary") -> bool:
    """Make SIGTERM set ``ctx.preemption_notice`` (and arm a hard stop after ``grace_s``); ``keeps`` says
    what the task does meanwhile.

    Returns False when it cannot (not the main thread), leaving the default.
    """
    if threading.current_thread() is not threading.main_thread():
        return False

    def on_sigterm(signum, frame) -> None:
        if ctx.preemption_notice is not None:
            return
        ctx.preemption_notice = time.time()
        print(f"[tfray] {ctx.task} got SIGTERM: a preemption notice; it {keeps} (stopped for good in "
              f"{grace_s:g}s)", flush=True)
        timer = threading.Timer(grace_s, os.kill, args=(os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
