"""What ``tfray serve`` was asked, checked on this machine before Ray starts: the model, the name, the replicas.

:func:`plan_serve` turns the command's options (:class:`ServeOptions`, the flags or the API's arguments)
and the job spec into one frozen :class:`ServeRequest`, or raises ``SpecError`` naming the flag and what
to do. The model is found as ``tfray predict`` finds it (``controller.predict.request.model_config``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from controller.predict.request import model_config
from controller.spec import JobSpec, SpecError
from protocol.predict import ROW_NUMBER
from protocol.serving import REST_PORT, ServingConfig

NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # a path segment of /v1/models/<name>
MAX_REPLICAS = 1024


@dataclass(frozen=True)
class ServeOptions:
    """What the caller asked, as given (defaults: one replica of one CPU on 127.0.0.1:8501)."""

    model: str | None = None
    checkpoint: str | None = None
    name: str | None = None
    host: str = "127.0.0.1"
    port: int = REST_PORT
    min_replicas: int = 1
    max_replicas: int | None = None  # None: as many as min_replicas (a fixed count)
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    max_batch_size: int = 32
    batch_wait_ms: float = 0.0  # no wait: requests that queue while the model runs make the next batch


@dataclass(frozen=True)
class ServeRequest:
    """One checked endpoint: what each replica is sent, how many, what each reserves, where it listens."""

    config: ServingConfig
    app_name: str
    host: str
    port: int
    min_replicas: int
    max_replicas: int
    cpus_per_replica: float
    gpus_per_replica: float
    model_label: str
    runtime_env: dict | None = None

    @property
    def max_ongoing_requests(self) -> int:
        """Requests a replica holds at once: two batches' worth, so one batch fills while the other runs."""
        return 2 * self.config.max_batch_size


def options_of(options: dict) -> ServeOptions:
    try:
        return ServeOptions(**options)
    except TypeError as err:
        raise SpecError(f"serve: {err}") from None


def plan_serve(spec: JobSpec, options: ServeOptions, sys_path: list[str],
               runtime_env: dict | None = None) -> ServeRequest:
    """The request for ``options`` on ``spec``'s job; SpecError for bad input."""
    name = options.name or spec.name
    if not NAME_RULE.fullmatch(name):
        raise SpecError(f"--name {name!r}: the model's name in /v1/models/<name> takes letters, digits, '.', '_' "
                        "and '-' (up to 128), starting with a letter or digit")
    if not 1 <= options.port <= 65535:
        raise SpecError(f"--port {options.port}: a TCP port, 1 to 65535 (TF Serving's REST port is {REST_PORT})")
    most = options.min_replicas if options.max_replicas is None else options.max_replicas
    if not 1 <= options.min_replicas <= MAX_REPLICAS:
        raise SpecError(f"--replicas/--min-replicas {options.min_replicas}: 1 to {MAX_REPLICAS}")
    if not options.min_replicas <= most <= MAX_REPLICAS:
        raise SpecError(f"--max-replicas {most}: at least --min-replicas ({options.min_replicas}), at most "
                        f"{MAX_REPLICAS}")
    _positive("--cpus-per-replica", options.cpus_per_replica, 0, strict=True)
    _positive("--gpus-per-replica", options.gpus_per_replica, 0, strict=False)
    if not 1 <= options.max_batch_size <= 4096:
        raise SpecError(f"--max-batch-size {options.max_batch_size}: requests per model call, 1 to 4096")
    if not 0 <= options.batch_wait_ms <= 10_000:
        raise SpecError(f"--batch-wait-ms {options.batch_wait_ms:g}: 0 to 10000")
    predictor, label = model_config(spec, options.model, options.checkpoint, id_column=ROW_NUMBER,
                                    sys_path=tuple(sys_path))
    threads = max(1, math.floor(options.cpus_per_replica))
    config = ServingConfig(predictor=predictor, name=name, max_batch_size=options.max_batch_size,
                           batch_wait_s=options.batch_wait_ms / 1000, threads=threads)
    return ServeRequest(config=config, app_name=f"tfray-{name}", host=options.host, port=options.port,
                        min_replicas=options.min_replicas, max_replicas=most,
                        cpus_per_replica=options.cpus_per_replica, gpus_per_replica=options.gpus_per_replica,
                        model_label=label, runtime_env=runtime_env)


def check_room(request: ServeRequest, cpus: float) -> None:
    """SpecError when a local Ray of ``cpus`` CPUs (it cannot grow) cannot hold the least replicas: they would
    wait forever for a CPU."""
    need = request.min_replicas * request.cpus_per_replica
    if need > cpus:
        raise SpecError(f"{request.min_replicas} replica(s) x {request.cpus_per_replica:g} CPU(s) = {need:g} CPUs, "
                        f"but this Ray has {cpus:g}: use fewer replicas, fewer CPUs each, or --num-cpus")


def _positive(flag: str, value: float, least: float, strict: bool) -> None:
    bad = not math.isfinite(value) or (value <= least if strict else value < least)
    if bad:
        raise SpecError(f"{flag} {value:g}: must be {'above' if strict else 'at least'} {least:g}")
