"""An endpoint on Ray Serve: the model's replicas deployed, waited for with a bound, and taken down.

The replicas' class is named by ``protocol.serving.SERVER_CLASS`` (the controller never imports
``workers/``). Ray Serve's proxy listens on ``host:port`` and bounds each request by ``SERVE_REQUEST_S``
(past it the client gets 408, never a hang); a replica that dies is started again by Serve's controller,
and the proxy sends new requests to the replicas alive (docs/design.md §14).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from controller import settings
from controller.predict.serving import ServeRequest
from controller.ray import named_class
from controller.spec import SpecError
from protocol.serving import SERVER_CLASS

QUIET = {"log_level": "WARNING"}  # the replicas' and proxy's request lines stay in Ray's log files


@dataclass(frozen=True)
class Endpoint:
    """A running endpoint: where it answers (``url``: its model's status route), and what was asked."""

    url: str
    request: ServeRequest

    def stop(self) -> None:
        stop_serving(self.request.app_name)


class ServeFailedError(RuntimeError):
    """The endpoint did not come up: Ray Serve's own words on why."""


def deployment_options(request: ServeRequest) -> dict:
    """Ray Serve's options for the replicas: a fixed count, or autoscaling between the least and the most."""
    options = {"name": request.app_name, "max_ongoing_requests": request.max_ongoing_requests,
               "ray_actor_options": {"num_cpus": request.cpus_per_replica, "num_gpus": request.gpus_per_replica,
                                     **({"runtime_env": request.runtime_env} if request.runtime_env else {})}}
    if request.min_replicas == request.max_replicas:
        options["num_replicas"] = request.min_replicas
    else:
        options["autoscaling_config"] = {"min_replicas": request.min_replicas,
                                         "max_replicas": request.max_replicas,
                                         "target_ongoing_requests": request.config.max_batch_size}
    return options


def start_serving(request: ServeRequest, on_wait=None) -> str:
    """Deploy the endpoint and wait until every replica answers; its URL. ServeFailedError if Serve gave up,
    WaitTimeout past ``SERVE_START_S``, SpecError if Serve already listens elsewhere on this cluster."""
    from ray import serve

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # Serve's own progress lines: ours say it
    serve.start(http_options={"host": request.host, "port": request.port,
                              "request_timeout_s": settings.SERVE_REQUEST_S}, logging_config=QUIET)
    listening = serve.context._get_global_client().http_config
    if (listening.host, listening.port) != (request.host, request.port):
        raise SpecError(f"--port {request.port}: Ray Serve already runs on this cluster at {listening.host}:"
                        f"{listening.port}; give --host {listening.host} --port {listening.port}, or stop it")
    app = serve.deployment(named_class(SERVER_CLASS)).options(**deployment_options(request)).bind(request.config)
    serve._run(app, name=request.app_name, route_prefix="/", logging_config=QUIET, _blocking=False)
    try:
        settings.poll_until(lambda: _running(request.app_name), settings.SERVE_START_S, settings.SERVE_POLL_S,
                            f"the {request.min_replicas} replica(s) of {request.app_name} to load the model",
                            on_round=on_wait)
    except BaseException:
        stop_serving(request.app_name)
        raise
    return f"http://{request.host}:{request.port}/v1/models/{request.config.name}"


def _running(app_name: str) -> bool:
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None or app.status in ("NOT_STARTED", "DEPLOYING"):
        return False
    if app.status == "RUNNING":
        return True
    why = [app.message] + [d.message for d in app.deployments.values() if d.message]
    raise ServeFailedError(f"Ray Serve says {app.status}: {' '.join(w for w in why if w)[:2000]}")


def stop_serving(app_name: str) -> None:
    """The endpoint's application gone from the cluster, and Serve itself (its proxy and controller) when no other
    application is left on it (a cluster's Serve may hold others' endpoints)."""
    from ray import serve

    serve.delete(app_name)
    if not serve.status().applications:
        serve.shutdown()
