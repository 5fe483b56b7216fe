"""Ray's nodes as the controller needs them: alive or dead, being drained, free room.

Liveness comes from ``ray.nodes()``, Ray's public API. Two things have no
public API in Ray 2.60 (``ray.util.state``'s ``NodeState`` carries neither
drain state nor free resources, and needs the dashboard, which a local run
does not start): the list of nodes being drained, read as Ray Train's own
preemption watcher reads it, and each node's free resources. Both go
through ``ray._private.state``, pinned by the Ray version in
``pyproject.toml``. The decisions on top (first-fit of bundles, the cause of
an actor's death) are pure functions, unit-tested without Ray.
"""

from __future__ import annotations

import logging

import ray

from controller import settings
from protocol.wire import FailureCause

log = logging.getLogger("tfray")


def node_alive(node_id: str) -> bool:
    return any(n["NodeID"] == node_id and n.get("Alive") for n in ray.nodes())


def node_dies_within(node_id: str, within_s: float) -> bool:
    """Whether Ray calls the node dead within ``within_s`` (a task on it died at once: is the node dying?)."""
    try:
        settings.poll_until(lambda: not node_alive(node_id), within_s, settings.NODE_POLL_S,
                            f"node {node_id[:12]} to be reported dead")
    except settings.WaitTimeout:
        return False
    return True


def draining_nodes() -> dict[str, float]:
    """Nodes being drained (a spot VM about to go): node id -> deadline in epoch seconds (0: none given)."""
    try:
        return {node: ms / 1000 for node, ms in ray._private.state.state.get_draining_nodes().items()}
    except Exception as err:  # an older or busy GCS: no notice this time, node loss is still handled
        log.debug("draining nodes: %s", err)
        return {}


def free_per_node(leave_out: set[str] | frozenset[str] = frozenset()) -> list[dict[str, float]]:
    """Free resources of every alive node now, but those left out (e.g. draining ones)."""
    return [dict(resources) for node, resources in ray._private.state.available_resources_per_node().items()
            if node not in leave_out]


def first_fit(bundles: list[dict], free: list[dict[str, float]]) -> bool:
    """Whether every bundle fits on some node, each taking its room from that node (first fit)."""
    free = [dict(node) for node in free]
    for bundle in bundles:
        node = next((n for n in free if all(n.get(k, 0) >= v for k, v in bundle.items())), None)
        if node is None:
            return False
        for k, v in bundle.items():
            node[k] -= v
    return True


def cause_of_death(error_text: str, node_is_alive: bool) -> FailureCause:
    """An actor died: with its node (node lost) or alone (process died)."""
    if "node has died" in error_text or not node_is_alive:
        return FailureCause.NODE_LOST
    return FailureCause.PROCESS_DIED
