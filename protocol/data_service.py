"""The tf.data service as the controller and the tasks both see it (docs/design.md §15).

A job with the roles ``data_dispatcher`` and ``data_worker`` runs TensorFlow's
tf.data service beside its training: the dispatcher is a
``tf.data.experimental.service.DispatchServer`` that keeps its journal in the
job's folder, each data worker a ``WorkerServer`` that registers with it, each
on the port its actor reserved. Every other task is told where the
dispatcher is, in its context (``ctx.data_service``) and in its environment,
so a stock script can hand it to ``tf.data.experimental.service.distribute``.
"""

from __future__ import annotations

DATA_SERVICE_ENV = "TFRAY_DATA_SERVICE"  # 'grpc://host:port' of the job's dispatcher, in every task's environment
WORK_DIR = "data_service"  # the dispatcher's journal, under the job's folder: a restarted dispatcher reads it


def service_url(address: str) -> str:
    """What ``distribute(service=...)`` takes: the dispatcher's 'host:port' with gRPC's scheme."""
    return f"grpc://{address}"


def dispatcher_address(url: str) -> str:
    """What a ``WorkerConfig`` takes: the dispatcher's 'host:port', without the scheme."""
    return url.split("://", 1)[-1]
