"""The wire protocol between the controller and the task actors (no Ray, no TensorFlow).

Everything that crosses from the driver to a task, or back, is defined
here and nowhere else, each as one frozen class:

* a task's name: ``role-index`` (``worker-1``), formatted and parsed by
  :class:`TaskKey` only;
* what an actor is built with (:class:`ActorConfig`, with its GPUs'
  :class:`DevicePlan`) and what each run of
  it is sent (:class:`TaskLaunch`: its :class:`Entrypoint`, its
  :class:`StoragePlan` and the :class:`RestorePoint` it restores);
* how a run ended (:class:`TaskEnd`), with its cause as one enum,
  :class:`FailureCause`, from the training process to the policy (and
  ``protocol.keras3.KERAS3_UNSUPPORTED``, the one sentence for Keras 3 in a
  multi-task job, alone in its module so that validate need not import this one);
* the reports a task sends to the job's inbox (:data:`Report`: metrics,
  checkpoint, folder, output, heartbeat, event), with their one JSON form.

Both sides import this module; neither imports the other. The controller
names the task actor's class by :data:`TASK_ACTOR_CLASS`. ``TaskKey`` (with
``ROLES``) and ``DevicePlan`` (with its environment variables) are defined in
``protocol.task_key`` and ``protocol.devices`` and taken from here by
everything but the job spec and the plan, which import them alone: reading a
spec or planning a dry run then builds none of this module's dataclasses.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, get_args

# Parts of the protocol defined apart, so the job spec and the plan can import them alone (see there).
from protocol.breakdown import Breakdown
from protocol.devices import COLLECTIVE_ENV, GPU_MEMORY_LIMIT_ENV, DevicePlan  # noqa: F401
from protocol.task_key import ROLES, TaskKey  # noqa: F401

# Each task's launcher process (workers/zygote.py) imports TensorFlow as soon as its actor starts,
# overlapping the import with the other actors' start and the TF_CONFIG round trip. A job whose
# code does not use TensorFlow sets this to "0" in its spec's env to skip the import.
PREIMPORT_ENV = "TFRAY_PREIMPORT_TF"
TASK_ACTOR_CLASS = "workers.task_actor:TaskActor"  # module:class of every task's Ray actor


class TaskIdentity:
    """For anything with ``role`` and ``index``: its key and its name."""

    role: str
    index: int

    @property
    def key(self) -> TaskKey:
        return TaskKey(self.role, self.index)

    @property
    def task(self) -> str:
        return str(self.key)


class FailureCause(str, enum.Enum):
    """Why a task's run ended badly: one enum from the training process to the failure policy."""

    USER_ERROR = "user_error"  # the entrypoint raised / the script exited non-zero
    PROCESS_DIED = "process_died"  # the training process or the task actor died (signal, OOM) on a live node
    NODE_LOST = "node_lost"  # the task's node is gone (spot reclaim, crash)
    STOPPED_ON_NOTICE = "stopped_on_notice"  # saved on a preemption notice (SIGTERM, drain) and stopped
    HUNG = "hung"  # no heartbeat within timeouts.heartbeat_s (set by the controller)
    INFRASTRUCTURE = "infrastructure"  # Ray or gRPC failed under the task (a server it used is gone)
    START_FAILED = "start_failed"  # a replacement could not be started (set by the controller)
    CHECKPOINT_UNREADABLE = "checkpoint_unreadable"  # restoring the checkpoint failed with a data error
    GPU_OOM = "gpu_oom"  # the task ran out of GPU memory (classified from its error by the controller)
    DEVICE_LOST = "device_lost"  # the task's GPU failed under it: a launch failure, an ECC error, the device gone



@dataclass(frozen=True)
class TaskEnd:
    """One run of a task reached its end: finished with a result, or failed with a cause and an error."""

    key: TaskKey
    finished: bool
    result: Any = None
    cause: FailureCause | None = None
    error: str | None = None

    @classmethod
    def done(cls, key: TaskKey, result: Any = None) -> "TaskEnd":
        return cls(key, True, result=result)

    @classmethod
    def failed(cls, key: TaskKey, cause: FailureCause, error: str) -> "TaskEnd":
        return cls(key, False, cause=cause, error=error)



@dataclass(frozen=True)
class ActorConfig(TaskIdentity):
    """What a task actor is built with: who it is, the job's environment, and its intervals
    (from ``controller.settings``, so every interval has one home)."""

    role: str
    index: int
    env: dict
    heartbeat_interval_s: float
    heartbeat_reply_timeout_s: float
    alive_interval_s: float
    sidecar_poll_s: float
    inbox_call_timeout_s: float
    stop_run_timeout_s: float
    gather_timeout_s: float
    output_tail_lines: int
    server_probe_max_s: float
    exit_handlers_s: float
    output_flush_s: float
    log_max_bytes: int
    log_backups: int
    devices: DevicePlan = DevicePlan()  # its GPUs: what its launcher and training processes may see and take
    gpu_context_reserve_mb: int = 1024  # gpu_memory: share leaves this much of its share to the CUDA context
    nvidia_smi_timeout_s: float = 10.0  # bound on reading the GPUs' memory for gpu_memory: share
    niceness: int | None = 0  # the nice value its processes run at, where the system allows (None: Ray's)


@dataclass(frozen=True)
class Entrypoint:
    """What a run's training process runs, and with what: the launcher's request is made of it."""

    kind: str  # function | script | module
    target: str  # 'pkg.mod:fn', a script path or a module name
    args: dict = field(default_factory=dict)  # a function's keywords (a script's are in argv as --key=value)
    argv: tuple = ()  # a script's or module's command line after its name
    env: dict = field(default_factory=dict)  # the job's environment for every task (TF settings, the spec's)
    sys_path: tuple = ()  # folders put first on the import path
    cwd: str | None = None  # the training process's folder; None: the actor's (Ray's copy of a working_dir)
    keras_backup: bool = False  # a script's or module's Keras fit gets a BackupAndRestore (workers/keras_backup.py)


@dataclass(frozen=True)
class RestorePoint:
    """The checkpoint a run restores (the newest complete one when the run was planned)."""

    path: str  # its folder on the head's storage path (a task that does not share it gets a copy)
    step: int
    epoch: int | None = None
    batch: int | None = None  # it was saved mid-epoch, after this batch of ``epoch``


@dataclass(frozen=True)
class StoragePlan:
    """Where the job's files are, and how a task finds out whether it can write there."""

    job_dir: str  # the job's folder under the storage path, as the head sees it
    mode: str = "shared"  # shared | gather | auto (see controller/store/storage.py)
    token: str | None = None  # in job_dir/TOKEN_FILE when the task sees the head's storage (auto mode)


@dataclass(frozen=True)
class TaskLaunch(TaskIdentity):
    """Everything one run of a task needs (sent to its actor as is): who it is in which run of the cluster,
    what it runs, where its files go, what it restores, and (PSS) the servers it serves or waits for."""

    job_name: str
    attempt: int
    strategy: str
    role: str
    index: int
    is_chief: bool
    num_workers: int  # tasks in the training cluster (chief + workers)
    tf_config: dict | None
    entrypoint: Entrypoint
    storage: StoragePlan
    restore: RestorePoint | None = None  # None: the run starts from scratch
    run: int = 0  # which run of the cluster in this attempt: 0, then 1 after the first restart, ...
    checkpoint_every_n_epochs: int = 1
    runs_server: bool = False  # PSS ps/worker: serve a tf.distribute.Server until torn down
    servers: tuple = ()  # (task, host:port) it must reach before its code runs (PSS, the tf.data service)
    server_wait_s: float = 60.0  # bound on that wait
    faults: tuple = ()  # faults to inject into this run (dicts of controller.spec.running.FaultSpec)
    preemption_grace_s: float = 30.0  # after a SIGTERM notice, how long the task may take to save
    address: str = ""  # its own host:port, the port its actor reserved (a tf.data service server binds it)
    data_service: str | None = None  # the tf.data service's dispatcher, 'grpc://host:port', when the job has one
    cpu_affinity: tuple = ()  # the CPUs its training process may run on (empty: all of its node's)


# ------------------------------------------------------------------ reports
# A task's reports to the job's inbox, and from there to the driver: one frozen class per kind. Ray pickles
# them as they are; the ones a training process makes (metrics, checkpoint, event) cross its pipe to its actor
# as JSON, and a metrics report is a row of metrics.jsonl: ``to_json`` and ``report_from_json`` are the only
# conversion. The pipe's other messages never leave the task and stay plain dicts ``{"kind": ALIVE | RESULT |
# ERROR, ...}`` (workers/zygote.py), as does the launcher's request file the actor writes for each run.
ALIVE, RESULT, ERROR = "alive", "result", "error"


@dataclass(frozen=True)
class _Report:
    key: TaskKey
    kind: ClassVar[str]

    @property
    def task(self) -> str:
        return str(self.key)

    def to_json(self) -> dict:
        """The report as one JSON object: ``kind``, ``task`` and its fields."""
        return {"kind": self.kind, "task": self.task,
                **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "key"}}


@dataclass(frozen=True)
class MetricsReport(_Report):
    """Metrics the task's code reported at ``step`` (``ctx.report``)."""

    kind: ClassVar[str] = "metrics"
    step: int
    values: dict
    task_time: float = field(default_factory=time.time)  # when the task reported them
    # How many epochs the training runs in all, when it knows (Keras' fit does): the progress line's "7/15".
    total_epochs: int | None = None
    breakdown: Breakdown | None = None  # where the task's time went since its last report (protocol/breakdown.py)

    def to_json(self) -> dict:  # metrics.jsonl's rows have the task's role and index too
        row = {**super().to_json(), "role": self.key.role, "index": self.key.index}
        for name in ("total_epochs", "breakdown"):
            if row[name] is None:
                del row[name]  # a row without them keeps the keys rows always had
        if self.breakdown is not None:
            row["breakdown"] = self.breakdown.to_json()
        return row


@dataclass(frozen=True)
class CheckpointReport(_Report):
    """The chief sealed the checkpoint of ``step`` at ``path``; ``node_copy``: that path is on the task's node,
    which does not share the storage path, and the job's inbox streams it from there."""

    kind: ClassVar[str] = "checkpoint"
    step: int
    path: str
    node_copy: bool = False


@dataclass(frozen=True)
class FolderReport(_Report):
    """One of the job's folders (``model``, ``backups``, a task's logs...) at ``path`` on a node that does not
    share the storage path: the job's inbox streams it from the task and the head's copy takes its place."""

    kind: ClassVar[str] = "folder"
    name: str
    path: str


@dataclass(frozen=True)
class OutputReport(_Report):
    """Lines a task's training process printed (the task's log file has them all)."""

    kind: ClassVar[str] = "output"
    lines: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))  # frozen, whatever sequence it was given


@dataclass(frozen=True)
class HeartbeatReport(_Report):
    """The task is alive; ``pid`` is the process that trains now; ``notice`` when it got a SIGTERM."""

    kind: ClassVar[str] = "heartbeat"
    pid: int
    notice: float | None = None


@dataclass(frozen=True)
class EventReport(_Report):
    """Something a task did that the job's record keeps (a PSS server serving, the model saved, a fault fired),
    with its details (flat beside ``event`` in JSON)."""

    kind: ClassVar[str] = "event"
    event: str
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"kind": self.kind, "task": self.task, "event": self.event, **self.details}


Report = MetricsReport | CheckpointReport | FolderReport | OutputReport | HeartbeatReport | EventReport
REPORTS: dict[str, type] = {cls.kind: cls for cls in get_args(Report)}


def report_from_json(data: dict) -> Report:
    """A report from its ``to_json`` object; ValueError for anything else."""
    given, data = data, dict(data)
    cls = REPORTS.get(data.pop("kind", None))
    try:
        key = TaskKey.parse(data.pop("task"))
        if cls is EventReport:
            return EventReport(key, data.pop("event"), data)
        if cls is MetricsReport:  # role and index are the key's
            data.pop("role", None), data.pop("index", None)
            if "breakdown" in data:
                data["breakdown"] = Breakdown.from_json(data["breakdown"])
        return cls(key, **data)
    except (KeyError, TypeError) as err:  # no such kind, or its fields are not the report's
        raise ValueError(f"not a report: {given} ({type(err).__name__}: {err})") from None
