"""The way out of every job, whatever its ending: final reports in, every actor and the placement group out,
the record written, the lease given back.

The order matters. The last reports are collected while the actors still serve them; the folders still on
their way from the tasks' nodes are waited for before the actors that serve those gathers end; the job's
record is written once nothing can change it; the lease goes last, so no second driver takes the job while
this one is still writing. A failure in one step (a dead cluster, Ctrl-C while waiting) is logged and the
steps after it still run: an ending must always release the cluster.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.machine.controller import Controller

log = logging.getLogger("tfray")


def release(ctl: Controller) -> None:
    """What every ending does, once (the controller keeps it from running twice)."""
    try:
        for event in ctl.network_faults.close():  # a partition still open heals with the job's end
            ctl.attempt.add(event)
        if ctl.watch is not None:
            try:
                ctl.watch.take(ctl.watch.observer.collect(final=True))
            except Exception as err:  # the inbox may be gone with a dead cluster
                log.warning("could not fetch the last reports: %s", err)
    finally:
        try:  # the actors serve the gathers: they end first
            ctl.store.wait_for_gathers("the job ends")
        except KeyboardInterrupt:
            log.warning("not waiting for the folders still on their way from the tasks' nodes")
        except Exception as err:  # as the last reports: a dead cluster must not keep it from being released
            log.warning("could not wait for the folders on their way from the tasks' nodes: %s", err)
        ctl.group.shutdown()
        ctl.store.adopt_sealed()
        if ctl.collector is not None:
            ctl.collector.close()
        if ctl.attempt.number:
            ctl.store.write(ctl.attempt.snapshot(ctl.state.name, ctl.message, ctl.tasks))
            ctl.store.close()
        ctl.store.lease.release()
