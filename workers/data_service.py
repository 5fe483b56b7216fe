"""The tf.data service's servers, each in its task's process (docs/design.md §15).

``data_dispatcher`` serves a ``DispatchServer`` in fault-tolerant mode, its
journal in the job's folder (``protocol.data_service.WORK_DIR``): a
dispatcher started again at the same address, after its process died or the
cluster restarted, reads the journal and takes up the jobs and workers it
had. ``data_worker`` serves a ``WorkerServer`` that registers with the
dispatcher under this task's own address, so a replacement at the same
host:port is the same worker to it. Both bind the port their actor reserved.
Each serves until its process is torn down; the server's threads do the
work, and the main thread sleeps in Python, where a signal still reaches it.
"""

from __future__ import annotations

import os
import time

from protocol import wire
from protocol.data_service import WORK_DIR, dispatcher_address


def serve(ctx) -> None:
    """Serve this task's tf.data service server until the process is torn down (never returns)."""
    import tensorflow as tf

    service = tf.data.experimental.service
    port = int(ctx.address.rsplit(":", 1)[1])
    if ctx.role == "data_dispatcher":
        work_dir = os.path.join(ctx.job_dir, WORK_DIR)
        os.makedirs(work_dir, exist_ok=True)
        server = service.DispatchServer(service.DispatcherConfig(port=port, work_dir=work_dir,
                                                                 fault_tolerant_mode=True))
    else:
        server = service.WorkerServer(service.WorkerConfig(dispatcher_address=dispatcher_address(ctx.data_service),
                                                           worker_address=ctx.address, port=port))
    ctx._send(wire.EventReport(ctx.key, "serving", {"target": ctx.address, "pid": os.getpid()}))
    print(f"{ctx.task} serving the tf.data service's {ctx.role.split('_')[1]} at {ctx.address}", flush=True)
    while server is not None:  # held: a server that is collected stops
        time.sleep(3600)
