"""Waiting for a placement group with eyes open: the Ray side of ``controller/plan/demand.py``.

Before the wait, the job's bundles are checked against the node types of
the cluster's autoscaling config, found where the autoscaler itself reads
it: ``$TFRAY_AUTOSCALING_CONFIG``, else the ``--autoscaling-config`` of this
cluster's autoscaler process when it runs on this node (``ray start
--autoscaling-config``, the fake multi-node cluster), else
``~/ray_bootstrap_config.yaml`` (where `ray up` puts it on the head, where a
submitted job's driver runs). While waiting, what the autoscaler reports
(Ray's ``__autoscaling_status``, written by its monitor every update) is
said whenever it changes, at most every ``settings.DEMAND_REPORT_S``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import ray
import yaml

from controller import settings
from controller.plan import demand
from controller.states.task_group import InfeasibleDemandError

log = logging.getLogger("tfray")

CONFIG_ENV = "TFRAY_AUTOSCALING_CONFIG"
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"
STATUS_KEY = "__autoscaling_status"  # ray_constants.DEBUG_AUTOSCALING_STATUS: the monitor's report


def autoscaler_status() -> dict | None:
    """The autoscaler's last report, or None when no autoscaler runs (or it wrote none yet). The v1
    autoscaler's own report, else the v2 autoscaler's state (`ray up` turns v2 on in Ray 2.60) in its shape."""
    import json

    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_initialized

    if not _internal_kv_initialized():
        return None
    raw = _internal_kv_get(STATUS_KEY)
    if raw:
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return _v2_status()


def _v2_status() -> dict | None:
    try:
        from ray.autoscaler.v2.sdk import get_cluster_status
        from ray.autoscaler.v2.utils import is_autoscaler_v2

        if not is_autoscaler_v2(fetch_from_server=True):
            return None
        status = get_cluster_status(ray.get_runtime_context().gcs_address)
    except Exception as err:  # noqa: BLE001 -- a view for people: without it the wait is only quieter
        log.debug("the autoscaler's state cannot be read: %s", err)
        return None
    launching: dict = {}
    for launch in status.pending_launches:
        launching[launch.ray_node_type_name] = launching.get(launch.ray_node_type_name, 0) + launch.count
    unavailable = {launch.ray_node_type_name: {"is_available": False, "unavailable_node_information": {
        "category": "launch failed", "description": launch.details or ""}} for launch in status.failed_launches}
    return {"autoscaler_report": {
        "pending_launches": launching,
        "pending_nodes": [[n.ip_address, n.ray_node_type_name, n.node_status or "pending"]
                          for n in status.pending_nodes],
        "failed_nodes": [[n.ip_address, n.ray_node_type_name] for n in status.failed_nodes],
        "node_availability_summary": {"node_availabilities": unavailable}}}


def _monitor_config(gcs_address: str) -> str | None:
    """The --autoscaling-config of this cluster's autoscaler, if it runs on this node."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not any(a.endswith("monitor.py") for a in args) or f"--gcs-address={gcs_address}" not in args:
            continue
        for arg in args:
            if arg.startswith("--autoscaling-config="):
                return arg.split("=", 1)[1]
    return None


def autoscaling_config() -> dict | None:
    """The cluster's autoscaling config (see the module's docstring), or None when none is found here."""
    gcs = ray.get_runtime_context().gcs_address
    for path in (os.environ.get(CONFIG_ENV), _monitor_config(gcs), BOOTSTRAP_CONFIG):
        if not path:
            continue
        path = Path(path).expanduser()
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(config, dict) and config.get("available_node_types"):
            return config
    return None


def check_feasible(bundles: list[dict], strategy: str) -> None:
    """InfeasibleDemandError when no node type can ever hold the job; a warning when no node now can and
    the cluster has no autoscaler."""
    status = autoscaler_status()
    config = autoscaling_config()
    if config is not None:
        message = demand.never_fits_message(bundles, strategy, demand.node_types(config))
        if message:
            raise InfeasibleDemandError(message)
    elif status is None:
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        message = demand.static_unfit_message(bundles, strategy, nodes)
        if message:
            log.warning("%s", message)


def wait_for(ready_ref, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for the placement group; say what the autoscaler does meanwhile."""
    said, said_at = None, 0.0  # the last line said, and when (seconds into the wait)

    def say_what_the_autoscaler_does(waited_s: float) -> None:
        nonlocal said, said_at
        line = demand.describe_wait(autoscaler_status())
        if line and (line != said or waited_s - said_at >= settings.DEMAND_REPORT_S):
            log.warning("waiting for the job's resources (%.0fs of %gs): the autoscaler is %s", waited_s,
                        timeout_s, line)
            said, said_at = line, waited_s

    try:
        settings.poll_until(lambda: bool(ray.wait([ready_ref], timeout=0)[0]), timeout_s, settings.DEMAND_CHECK_S,
                            "the job's placement group", wait=lambda wait_s: ray.wait([ready_ref], timeout=wait_s),
                            on_round=say_what_the_autoscaler_does)
    except settings.WaitTimeout:
        return False
    return True
