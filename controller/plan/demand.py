"""Can the cluster ever give the job what it asks for, and what is it doing about it meanwhile. Pure.

A placement group that asks for something no node type offers waits
forever: Ray keeps it pending, the autoscaler logs that it cannot help and
starts nodes for the rest (billed while they idle). So before waiting, the
bundles are matched against the node types of the cluster's autoscaling
config: a bundle that fits none of them fails the job at once, naming what
was asked and what each type offers. A type that does not declare CPU, GPU
or memory (a cloud config whose instance type decides them) is taken to
have enough of those; a custom resource (``spot``, ``on_demand``) exists
only where it is declared, and one that no node type declares is named.
An on-premise (``local``) cluster's one node type declares nothing: each
machine's ``ray start`` says what it has (and Ray adds
``accelerator_type:<GPU>`` where it finds one), so it is taken to offer
anything. Without an autoscaler the nodes there are all there is, so a
bundle that no node could hold is said at once, and the job
waits (a node may still join by hand).

While the group waits, :func:`describe_wait` turns the autoscaler's status
(Ray's ``__autoscaling_status``: launches, nodes setting up, failed nodes,
node types it cannot launch, e.g. for want of quota) into one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.plan.tasks import describe_bundle

IMPLICIT = ("CPU", "GPU", "memory")  # a cloud node type's instance type decides these when they are not declared


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict | None  # None: said by each machine's `ray start`, not by the config (on-premise)
    max_workers: int | None = None  # None: the head (or no limit given)


def node_types(config: dict) -> list[NodeType]:
    """The node types of a `ray up` / autoscaling config (``available_node_types``)."""
    types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    on_premise = (config.get("provider") or {}).get("type") == "local"
    out = []
    for name, body in types.items():
        body = body or {}
        limit = None if name == head else body.get("max_workers", config.get("max_workers"))
        if limit == 0 and name != head:
            continue  # a type the autoscaler may never start
        out.append(NodeType(name, None if on_premise else dict(body.get("resources") or {}), limit))
    return out


def fits(bundle: dict, offered: dict | None, implicit: tuple = IMPLICIT) -> bool:
    """Whether one node with ``offered`` could hold ``bundle`` (undeclared ``implicit`` resources: yes;
    ``offered`` None: not known before the node starts, so yes)."""
    if offered is None:
        return True
    for name, amount in bundle.items():
        if amount <= 0:
            continue
        if name in offered:
            if amount > offered[name] + 1e-9:
                return False
        elif name not in implicit:
            return False
    return True


def _total(bundles: list[dict]) -> dict:
    total: dict = {}
    for bundle in bundles:
        for name, amount in bundle.items():
            total[name] = total.get(name, 0) + amount
    return total


def unfit_bundles(bundles: list[dict], strategy: str, offers: list[dict | None],
                  implicit: tuple = IMPLICIT) -> list[dict]:
    """The bundles no single offer could hold (STRICT_PACK: all of them together, on one node)."""
    if strategy.upper() == "STRICT_PACK":
        whole = _total(bundles)
        return [] if any(fits(whole, offer, implicit) for offer in offers) else [whole]
    return [b for b in bundles if not any(fits(b, offer, implicit) for offer in offers)]


def never_fits_message(bundles: list[dict], strategy: str, types: list[NodeType]) -> str | None:
    """Why the job can never be placed on a cluster of these node types, or None when it could be."""
    unfit = unfit_bundles(bundles, strategy, [t.resources for t in types])
    if not unfit:
        return None
    asked = "; ".join(sorted({describe_bundle(b) for b in unfit}))
    offered = "; ".join(f"{t.name}: {describe_bundle(t.resources) if t.resources else 'resources not declared'}"
                        for t in types)
    together = " (placement strict_pack: all on one node)" if strategy.upper() == "STRICT_PACK" else ""
    return (f"no node type of this cluster can ever hold what the job asks for: {asked}{together}."
            f"{_offered_by_none(unfit, types)} The cluster's node types offer: {offered}. Change the roles' "
            "resources (a custom resource such as spot or on_demand must be one a node type declares), or add a "
            "node type that offers them to the cluster config")


def _offered_by_none(unfit: list[dict], types: list[NodeType]) -> str:
    """The resources asked for that no node type declares at all, named first: the usual reason, and one
    that no amount of waiting or smaller sizes can cure."""
    missing = sorted({name for bundle in unfit for name, amount in bundle.items() if amount > 0
                      and name not in IMPLICIT and all(t.resources is not None and name not in t.resources
                                                       for t in types)})
    if not missing:
        return ""
    said = (f" No node type offers {', '.join(missing)} (the node types: {', '.join(t.name for t in types)}).")
    if any(name.startswith("accelerator_type:") for name in missing):
        said += (" accelerator_type:<GPU> asks for that GPU type (import-vertex writes it from acceleratorType): "
                 "declare it in the resources of the node type with those GPUs, as cluster_configs/ do, or "
                 "remove it from roles.<role>.resources.custom to take any GPU.")
    return said


def static_unfit_message(bundles: list[dict], strategy: str, nodes: list[dict]) -> str | None:
    """Without an autoscaler: what no node now in the cluster could hold (said, not failed: one may join)."""
    unfit = unfit_bundles(bundles, strategy, nodes, implicit=())
    if not unfit:
        return None
    asked = "; ".join(sorted({describe_bundle(b) for b in unfit}))
    have = "; ".join(describe_bundle(n) for n in nodes) or "nothing"
    return (f"no node of this cluster (it has no autoscaler) could hold {asked}; its nodes have {have}. Waiting "
            "for a node that does to join (`ray start --address ...`) until timeouts.scheduling_s")


def describe_wait(status: dict | None) -> str | None:
    """One line of what the autoscaler is doing, from its status report (None when there is nothing)."""
    report = (status or {}).get("autoscaler_report") or {}
    parts = []
    launching = {t: n for t, n in (report.get("pending_launches") or {}).items() if n}
    if launching:
        parts.append("launching " + ", ".join(f"{n} {t}" for t, n in sorted(launching.items())))
    pending = report.get("pending_nodes") or []
    if pending:
        parts.append("setting up " + ", ".join(f"{p[1]} ({p[2]})" for p in pending if len(p) >= 3))
    failed = report.get("failed_nodes") or []
    if failed:
        parts.append("failed to start " + ", ".join(f"{f[1]}" for f in failed if len(f) >= 2))
    availability = ((report.get("node_availability_summary") or {}).get("node_availabilities") or {})
    for name, record in sorted(availability.items()):
        info = (record or {}).get("unavailable_node_information")
        if record and not record.get("is_available") and info:
            parts.append(f"cannot launch {name}: {info.get('category', '')} {info.get('description', '')}".strip())
    return "; ".join(parts) or None
