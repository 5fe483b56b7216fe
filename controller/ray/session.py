"""Joining a Ray cluster or starting a local one, for every command that needs Ray (``tfray run``, ``tfray
predict``, the Python API): a cluster that is not there is said at once, and a local Ray's workers run at
nice 0 (docs/design.md §6). Ray is imported only when a function here is called."""

from __future__ import annotations

import contextlib
import os


class ClusterUnreachableError(RuntimeError):
    """The Ray cluster to join does not answer; the message says where it looked and what to do."""


def init_ray(address: str | None = None, num_cpus: float | None = None, dashboard: bool = False) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), else start a new local Ray (its dashboard on
    127.0.0.1 when asked). A new local Ray is started even when an earlier ``ray start`` left its address
    behind (``ray.init()`` alone would join it, and wait forever when it is gone), and an address to join
    is tried first, so a cluster that is not there is said at once (ClusterUnreachableError)."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
        ray.init(address=address, log_to_driver=True)
    else:
        with local_ray_environment():
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard, dashboard_host="127.0.0.1",
                     log_to_driver=True)


@contextlib.contextmanager
def local_ray_environment():
    """The environment a local Ray starts in (its processes inherit it): Ray's workers at nice 0, not Ray's
    15, so training is not the first to lose the CPU (controller/spec/process.py); a value the user's own
    environment sets wins. Restored afterwards: this process's environment is the user's."""
    name = "RAY_worker_niceness"
    before = os.environ.get(name)
    os.environ.setdefault(name, "0")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ClusterUnreachableError unless the GCS behind ``address`` (host:port, or 'auto': the address the last
    ``ray start`` on this machine left, as ``ray.init`` reads it) accepts a connection."""
    import socket

    from ray._private.utils import read_ray_address

    if address.startswith("ray://"):
        return  # Ray Client: its own connection reports its own errors
    where, target = address, address
    if address == "auto":
        where, target = "the last `ray start` on this machine", read_ray_address()
        if not target:
            return  # Ray looks for any running instance itself, and says so when there is none
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError) as err:
        raise ClusterUnreachableError(
            f"no Ray cluster answers at {target} ({where}): {err}. Is it running (`ray status`)? Leave "
            "--address and $RAY_ADDRESS out to start a local Ray instead.") from None
