"""Every interval and bound that is not part of a job spec, and the one helper that polls.

A running job is watched in one place: each ``Running`` step asks the
observer (:meth:`controller.machine.observer.Observer.observe`), which waits at
most ``POLL_INTERVAL_S`` on the tasks' ends and the report inbox
(docs/design.md §3, "One step"). The task actors get their intervals from
here too, through :class:`protocol.wire.ActorConfig`, so there is one place
to tune how quickly something is noticed against how often everything wakes
up (their own loops are in ``workers/``, which never imports this module).
Every other wait on the driver's side that polls (a replacement's start, a
placement group, a node's death, a stop's save, a submitted job's agent and
end, ``tfray logs --follow``) goes through :func:`poll_until`, which says
what it waited for when it gives up, and is bounded unless its caller
passes no bound (only ``tfray logs --follow``, which follows a job for as
long as its driver lives).

Every number here can be overridden through the environment, as Ray's own
constants are: ``TFRAY_FAILURE_SETTLE_S=0.5`` sets ``FAILURE_SETTLE_S``
(read once, when this module is first imported; the tests use it to shorten
waits). A value that is not a positive number of the same kind is refused
with :class:`SettingsError` naming the variable (by :func:`check_env`,
which the CLI and the API call before anything starts). docs/design.md §11 says why
each default is what it is.
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable, Mapping, TypeVar

T = TypeVar("T")

# ---------------------------------------------------------------- the controller
POLL_INTERVAL_S = 0.5  # how long one RUNNING step waits for a task to end
FAILURE_SETTLE_S = 2.0  # after a bare error, how long to gather other ends that may be its cause
DRAIN_POLL_S = 2.0  # how often the controller asks Ray which nodes are being drained (preemption notice)
ELASTIC_PROBE_S = 5.0  # an elastic job waits this long for each smaller size once the full size did not fit
TENSORBOARD_FLUSH_S = 5.0  # how often the driver's TensorBoard event files are synced to disk while the job runs
STOP_SAVE_S = 20.0  # a stop waits at most this long (and the spec's preemption_grace_s) for the tasks to save
METRICS_EXPORT_S = 1.0  # how often the job's gauges go to Ray's metrics (Prometheus) while nothing changes
STORAGE_SYNC_S = 10.0  # how often a job stored at a URI uploads its metrics and job state while it runs

# ------------------------------------------------------------------ the Ray seam
NODE_DEATH_CONFIRM_S = 20.0  # a replacement that dies at once: how long to wait for Ray to call its node dead
NODE_POLL_S = 0.5  # how often node liveness is read while waiting on it
REPLACE_POLL_S = 1.0  # how often a replacement's start is checked against its node's liveness
REPORT_DRAIN_TIMEOUT_S = 30.0  # bound on one fetch of the report inbox
REPORT_BATCH_S = 0.04  # a report wakes the driver at once, but not sooner than this after the last one did
REPORT_CALL_SLACK_S = 0.05  # the inbox's waiting call answers this much before the poll would time out
STOP_RUN_TIMEOUT_S = 20.0  # bound on ending a task's run for a restart (kill its process, collect its end)
STOP_RUN_SLACK_S = 5.0  # the driver's wait for stop_run beyond the actor's own bound
DEMAND_CHECK_S = 2.0  # while a placement group waits: how often the autoscaler's report is read
DEMAND_REPORT_S = 15.0  # ... and how often an unchanged report is said again
GATHER_TIMEOUT_S = 300.0  # bound on sending one checkpoint's files to the head (storage without shared disk)
GATHER_SLACK_S = 5.0  # the driver gives up on a gather this long after the head's writer stopped by its bound

# ------------------------------------------------------------ the job-folder commands
LOGS_FOLLOW_POLL_S = 0.5  # `tfray logs --follow`: how often the log files are read
LOGS_FOLLOW_QUIET_S = 3.0  # ... and how long they stay quiet, once the job's driver is gone, before it ends
TENSORBOARD_STOP_S = 10.0  # bound on TensorBoard's exit after `tfray tensorboard` is stopped (Ctrl-C, SIGTERM, SIGHUP)

# ------------------------------------------------------------------ tfray predict
PREDICT_PROGRESS_S = 5.0  # on a pipe, how often a prediction run prints a line of its progress
SERVE_START_S = 300.0  # `tfray serve`: bound on every replica loading its model and the endpoint answering
SERVE_POLL_S = 1.0  # ... how often the deployment's status is read meanwhile
SERVE_REQUEST_S = 60.0  # Ray Serve's bound on one request (its proxy answers 408 past it: a client never hangs)

# ------------------------------------------------------ a cluster's Jobs API (tfray submit)
STATUS_POLL_S = 1.0  # how often a followed job's status is read
STATUS_SETTLE_S = 30.0  # after the log stream ends, how long the job may take to report a terminal status
REMOTE_STATUS_S = 60.0  # how long `tfray status --address` (and `jobs --address`) waits for its short job on the head
AGENT_WAIT_S = 60.0  # how long a just-started head's job agent may take to accept submissions
AGENT_RETRY_S = 2.0  # how often a submission is tried again meanwhile

# ------------------------------------------------------------ the task actors
HEARTBEAT_INTERVAL_S = 1.0  # how often a task tells the controller it is alive
HEARTBEAT_REPLY_TIMEOUT_S = 5.0  # bound on waiting for the inbox's answer to a heartbeat
ALIVE_INTERVAL_S = 1.0  # how often the training process tells its actor it is alive
SIDECAR_POLL_S = 1.0  # how often a side-car's actor asks whether training is over
INBOX_CALL_TIMEOUT_S = 30.0  # bound on one call from a task actor to the inbox
OUTPUT_TAIL_LINES = 40  # lines of a failed task's output kept for its error
EXIT_HANDLERS_S = 30.0  # bound on a training process's own atexit handlers once its entrypoint ended
OUTPUT_FLUSH_S = 0.2  # how often a task sends the lines its training process printed to the driver
TASK_LOG_MAX_BYTES = 20 * 2**20  # a task's log file is rotated past this size ...
TASK_LOG_BACKUPS = 3  # ... keeping this many older ones
SERVER_PROBE_MAX_S = 2.0  # one gRPC readiness probe of a PSS server waits at most this long
# gpu_memory: share leaves this much of the task's share of a GPU outside TensorFlow's allocator: the CUDA
# context and cuDNN/cuBLAS workspaces of each process live there, and two tasks whose limits add up to the
# whole device would run out of memory at start.
GPU_CONTEXT_RESERVE_MB = 1024
NVIDIA_SMI_TIMEOUT_S = 10.0  # bound on reading the GPUs' memory (gpu_memory: share) when a task actor starts

# Set in every task process before TensorFlow is imported (docs/design.md §4):
# tf-keras instead of Keras 3 (multi-worker fit needs it), and SO_REUSEPORT for
# TF's gRPC server so it can bind the port the task actor keeps reserved.
TASK_ENV = {
    "TF_USE_LEGACY_KERAS": "1",
    "TF_GRPC_REUSE_PORT": "true",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",
}

# Every ParameterServerStrategy task needs these (docs/design.md §4, "A host that goes silent"):
# - GRPC_FAIL_FAST: a call to a lost server fails at once instead of waiting, so the coordinator can re-queue it.
# - TF_GRPC_DEFAULT_OPTIONS, TensorFlow's own channel arguments (tsl's grpc_channel.cc reads it once a process).
#   A host that goes silent refuses nothing: without keepalive, a closure in flight on it waits forever and the
#   coordinator's join() with it (checked). A ping after 5 s without a read, and 5 s for its answer, fail that
#   call, so the coordinator re-queues it. gRPC gives a connect attempt at least grpc.min_reconnect_backoff_ms
#   (20 s by default, subchannel.cc): each new tf.function is registered on every worker, the lost one too, and
#   each checkpoint's save is a new function, so every save would wait 20 s for the lost host; 1 s is a connect
#   within a data centre many times over. A spec's env may set its own.
PSS_TASK_ENV = {"GRPC_FAIL_FAST": "use_caller",
                "TF_GRPC_DEFAULT_OPTIONS": "grpc.keepalive_time_ms=5000,grpc.keepalive_timeout_ms=5000,"
                                           "grpc.min_reconnect_backoff_ms=1000"}


class WaitTimeout(TimeoutError):
    """A bounded wait ran out; the message says what was waited for and for how long."""


def poll_until(predicate: Callable[[], T], timeout_s: float | None, interval_s: float, what: str, *,
               wait: Callable[[float], object] = time.sleep, clock: Callable[[], float] = time.monotonic,
               on_round: Callable[[float], None] | None = None) -> T:
    """Ask ``predicate`` until it answers something true, and return that answer; raise :class:`WaitTimeout`
    (naming ``what``) once ``timeout_s`` has passed.

    Between two asks it calls ``wait`` with ``interval_s``, or what is left of the bound when that is less:
    ``time.sleep``, or a wait that ends early when news comes (``ray.wait`` on what the predicate looks for,
    the observer). ``on_round(seconds since the start)`` runs after each wait that did not end it while time
    is left: a long wait says meanwhile what it waits on. ``timeout_s=None`` is no bound (``tfray logs
    --follow`` follows a job for as long as its driver lives).
    """
    started = clock()
    deadline = math.inf if timeout_s is None else started + timeout_s
    answer = predicate()
    while not answer:
        left = deadline - clock()
        if left <= 0:
            raise WaitTimeout(f"{what} did not happen within {timeout_s:g}s")
        wait(min(interval_s, left))
        answer = predicate()
        now = clock()
        if not answer and on_round is not None and now < deadline:
            on_round(now - started)
    return answer


class SettingsError(ValueError):
    """A ``TFRAY_<NAME>`` override that is not a number of the setting's kind; the message names it."""


def overridable() -> dict[str, int | float]:
    """Every setting an environment variable may override: the module's numbers, by name."""
    return {name: value for name, value in globals().items()
            if name.isupper() and isinstance(value, (int, float)) and not isinstance(value, bool)}


def env_overrides(environ: Mapping[str, str]) -> dict[str, int | float]:
    """The settings ``environ`` overrides (``TFRAY_<NAME>``), parsed as their defaults' kind."""
    found = {}
    for name, default in overridable().items():
        raw = environ.get(f"TFRAY_{name}")
        if raw is None:
            continue
        try:
            value = type(default)(raw)
        except ValueError:
            value = None
        if value is None or value <= 0:
            kind = "a whole number" if isinstance(default, int) else "a number"
            raise SettingsError(f"TFRAY_{name}={raw!r}: must be {kind} above 0 (the default is {default})")
        found[name] = value
    return found


def check_env() -> None:
    """Raise the :class:`SettingsError` of a bad override found at import (the CLI exits 2 with it, the API
    raises it before anything starts); the defaults stand until it is fixed."""
    if ENV_ERROR is not None:
        raise SettingsError(ENV_ERROR)


try:
    globals().update(env_overrides(os.environ))
    ENV_ERROR: str | None = None
except SettingsError as bad:
    ENV_ERROR = str(bad)
