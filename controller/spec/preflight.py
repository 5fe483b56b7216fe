"""Checks on this machine before anything starts: the storage path, a host network for network faults,
and what a run exposes.

A storage path like ``/proc/x`` or a read-only mount passes the spec's model
and would fail after Ray started, with a traceback from every task. Here it
is tried for real, in the nearest folder that exists, with a temporary
folder that is removed at once. A storage URI is not checked (the head's
mirror is).

TensorFlow's gRPC servers listen on every interface: ``GrpcServer::Init``
(tensorflow/core/distributed_runtime/rpc/grpc_server_lib.cc) binds
``"0.0.0.0:" + port`` and takes no address, and they have no
authentication. Nothing here can narrow that, so a run that starts them
says so once (README, "What a run exposes").
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from controller.spec.job import JobSpec, SpecError


def check_storage(spec: JobSpec) -> None:
    """SpecError naming ``storage_path`` when the job's folder could not be created and written here."""
    if spec.storage_uri is not None:
        return
    folder = spec.job_dir
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    where = f"storage_path: {spec.storage_path} ({folder})"
    if existing is None:
        raise SpecError(f"{where}: no part of it exists")
    if not existing.is_dir():
        raise SpecError(f"{where}: {existing} is a file, not a folder; choose another storage_path")
    try:
        Path(tempfile.mkdtemp(prefix=".tfray-check-", dir=existing)).rmdir()
    except OSError as err:
        raise SpecError(f"{where}: cannot create folders in {existing} ({err.strerror or err}); choose a "
                        "storage_path this user can write") from None
    if folder.exists() and not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        raise SpecError(f"{where}: this user cannot read and write it")


HOST_NETWORK_ENV = "TFRAY_HOST_NETWORK"  # module:factory of the host network a run's network faults act on


def check_host_network(spec: JobSpec, network: object | None) -> None:
    """SpecError naming the first network fault when there is no host network to carry it out: no task can
    cut its own host off, so the controller does it through one (``controller/states/network.py``)."""
    index, fault = next(((i, f) for i, f in enumerate(spec.faults) if f.action.on_network), (None, None))
    if fault is not None and network is None:
        raise SpecError(f"faults.{index}.action: '{fault.action.value}' acts on the network of {fault.task}'s host, "
                        "which needs a multi-host harness to carry it out, and none is registered: pass network= "
                        f"to the API, or set {HOST_NETWORK_ENV}=bench.netns:attached beside a running "
                        "`python -m bench.netns up`")


def exposure_warning(spec: JobSpec, joining_cluster: bool) -> str | None:
    """The one warning of a local run whose tasks serve TensorFlow's gRPC (None when there are none)."""
    if joining_cluster or not spec.strategy.is_multi_task:
        return None
    return ("TensorFlow's gRPC servers (one port per task) listen on every network interface with no "
            "authentication: TensorFlow binds 0.0.0.0 and has no setting for it. On a machine a network you do "
            "not trust can reach, block those ports with a firewall (README, \"What a run exposes\").")
