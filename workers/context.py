"""What user code sees: the task context.

A :class:`TaskContext` tells the code who it is (role, index, ``is_chief``),
where to write checkpoints (the chief's real folder; a unique ``workertemp``
folder for every other task, removed once the save is done), which
checkpoint to restore, and lets it ``report`` metrics to the job's central
collector. Function entrypoints receive it as their first argument; scripts
get it from :func:`get_context`, which reads it from the environment the
task actor sets (and, when the script runs without this controller, e.g.
under Kubeflow TFJob, returns a stand-alone context that only logs).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any, Callable

from protocol.breakdown import Breakdown
from protocol.layout import BACKUPS_DIR, CODE_TENSORBOARD_DIR, MODEL_DIR, checkpoint_dir, workertemp_dir
from protocol.seal import seal
from protocol.wire import CheckpointReport, EventReport, MetricsReport, Report, TaskIdentity
from workers import breakdown
from workers.faults import FaultInjector
from workers.preemption import install_notice_handler

log = logging.getLogger("tfray.task")

CONTEXT_ENV = "TFRAY_CONTEXT"  # JSON of the context's fields, in the training process's environment
STOP_FILE_ENV = "TFRAY_STOP_FILE"  # appears when a side-car task should finish (training is over)

class CheckpointUnreadable(RuntimeError):
    """The checkpoint to restore cannot be read (cut short, altered, a file missing). Raised by
    ``workers.keras.restore``; raise it from your own restore code too: the controller then sets that
    checkpoint aside and restarts from the one before, instead of failing the job as a bug."""


_current: "TaskContext | None" = None
# Set by the launcher (workers/zygote.py) in the training process: where reports go (the actor's pipe).
REPORT_SENDER: Callable[[Report], None] | None = None


class TaskContext(TaskIdentity):
    """The running task's identity, its checkpoint folders and its report channel."""

    def __init__(
        self,
        *,
        job_name: str,
        job_dir: str,
        attempt: int,
        strategy: str,
        role: str,
        index: int,
        is_chief: bool,
        num_workers: int,
        args: dict | None = None,
        checkpoint_every_n_epochs: int = 1,
        restore_from: str | None = None,
        restore_step: int | None = None,
        restore_epoch: int | None = None,
        restore_batch: int | None = None,
        send: Callable[[Report], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
        faults: list | tuple = (),
        preemption_grace_s: float = 30.0,
        address: str = "",
        data_service: str | None = None,
    ):
        self.job_name = job_name
        self.job_dir = job_dir
        self.attempt = attempt
        self.strategy = strategy
        self.role = role
        self.index = index
        self.is_chief = is_chief
        self.num_workers = num_workers
        self.args = dict(args or {})
        self.checkpoint_every_n_epochs = checkpoint_every_n_epochs
        self.latest_checkpoint = restore_from
        self.latest_checkpoint_step = restore_step
        self.latest_checkpoint_epoch = restore_epoch
        self.latest_checkpoint_batch = restore_batch  # set when it was saved mid-epoch (after this batch)
        self._send = send or (lambda record: log.info("report %s", record))
        self._stop_requested = stop_requested or (lambda: False)
        self.faults = [dict(f) for f in faults]
        self.preemption_grace_s = preemption_grace_s
        self.address = address  # this task's host:port
        self.data_service = data_service  # the job's tf.data service, 'grpc://host:port', or None
        self._injector: FaultInjector | None = None
        self._notice: float | None = None
        self._notice_handled = False  # SIGTERM is this context's preemption notice
        # Where the time goes between reports (workers/breakdown.py): training tasks, unless turned off.
        self._windows = breakdown.Windows() if breakdown.enabled() and role != "evaluator" else None
        if self._windows is not None:
            self._windows.begin(restore_step or 0)

    # ------------------------------------------------------------- reporting

    def report(self, values: dict[str, Any], step: int, total_epochs: int | None = None, *,
               breakdown: Breakdown | None = None) -> None:
        """Send metrics for ``step`` to the job's collector (never blocks on the driver); ``total_epochs``: how
        many epochs the training runs in all, when known, so the progress line can say "epoch 7/15" and when
        it will end. Each report closes the task's window: where its time went since the last one (its
        ``breakdown``, measured here unless given) goes with it."""
        clean = {k: (float(v) if hasattr(v, "__float__") and not isinstance(v, (bool, int)) else v)
                 for k, v in values.items()}
        total = int(total_epochs) if total_epochs is not None else None
        if breakdown is None and self._windows is not None:
            breakdown = self._windows.close(int(step))
        self._send(MetricsReport(self.key, int(step), clean, total_epochs=total, breakdown=breakdown))
        if self._injector is not None:
            self._injector.on_step(int(step))

    @property
    def windows(self) -> "breakdown.Windows | None":
        """This task's reporting windows (workers/breakdown.py); None when its breakdown is turned off."""
        return self._windows

    def timed_input(self, batches):
        """``batches`` (a dataset, an iterator) as they come, the time the loop waits for each counted as this
        task's input time in its next report: ``for x, y in ctx.timed_input(dataset): ...`` in a custom loop."""
        return self._windows.timed_input(batches) if self._windows is not None else iter(batches)

    def arm_faults(self) -> None:
        """Start injecting this task's faults in this process (the one that trains)."""
        if self._injector is None and self.faults:
            self._injector = FaultInjector(self.task, self.faults, report=self._send)
            self._injector.start()

    @property
    def preemption_notice(self) -> float | None:
        """When this task got a preemption notice (SIGTERM), or None: save at the next step
        boundary and raise ``workers.preemption.TaskPreempted``."""
        return self._notice

    @preemption_notice.setter
    def preemption_notice(self, when: float | None) -> None:
        self._notice = when

    def should_stop(self) -> bool:
        """True once training is over: side-car tasks (the evaluator) finish their work and return."""
        return self._stop_requested()

    # ----------------------------------------------------------- checkpoints

    def checkpoint_dir(self, step: int) -> str:
        """The folder this task writes the checkpoint of ``step`` to.

        Under MultiWorkerMirroredStrategy every task must take part in a save
        (it runs collectives); only the chief's copy is kept.
        """
        path = checkpoint_dir(self.job_dir, step) if self.is_chief else workertemp_dir(self.job_dir, self.task, step)
        os.makedirs(path, exist_ok=True)
        return str(path)

    def commit_checkpoint(self, step: int, epoch: int | None = None, metrics: dict | None = None,
                          batch: int | None = None) -> None:
        """Call after writing to ``checkpoint_dir(step)``: the chief seals and registers it, every other task
        deletes its temporary copy. ``batch``: saved mid-epoch, after this batch of epoch ``epoch``."""
        path = self.checkpoint_dir(step)
        if self._injector is not None:
            self._injector.on_save(step)  # a fault here leaves a checkpoint without its seal
        if not self.is_chief:
            shutil.rmtree(path, ignore_errors=True)
            return
        clean = {k: float(v) for k, v in (metrics or {}).items() if hasattr(v, "__float__")}
        seal(path, step, epoch, clean, batch=batch)
        self._send(CheckpointReport(self.key, int(step), path))

    # ----------------------------------------------------------- outputs

    @property
    def model_dir(self) -> str:
        """Where this task saves the model (``AIP_MODEL_DIR``): the job's ``model`` folder for the chief, a
        temporary one for the others (under MultiWorkerMirroredStrategy every task saves; one copy is kept)."""
        return os.environ.get("AIP_MODEL_DIR") or os.path.join(self.job_dir, MODEL_DIR)

    @property
    def backup_dir(self) -> str:
        """The job's folder for the code's own checkpoints (``AIP_CHECKPOINT_DIR``): kept across restarts."""
        return os.environ.get("AIP_CHECKPOINT_DIR") or os.path.join(self.job_dir, BACKUPS_DIR)

    @property
    def tensorboard_dir(self) -> str:
        """The job's folder for the code's own TensorBoard logs (``AIP_TENSORBOARD_LOG_DIR``)."""
        return os.environ.get("AIP_TENSORBOARD_LOG_DIR") or os.path.join(self.job_dir, CODE_TENSORBOARD_DIR)

    def save_model(self, model) -> str:
        """Save ``model`` (a Keras model, TensorFlow's SavedModel format) into ``model_dir``. Every task of a
        MultiWorkerMirroredStrategy job must call it (saving runs collectives); the chief's copy is the job's
        ``model`` folder, named in the job's summary. Returns the folder."""
        path = self.model_dir
        model.save(path)
        if self.is_chief:
            self._send(EventReport(self.key, "model_saved", {"path": path}))
        return path

    # -------------------------------------------------------------- strategy

    def make_strategy(self):
        """Build the job's ``tf.distribute`` strategy (TF_CONFIG is already set). Mirrored strategies train one
        replica per GPU the task sees (its ``CUDA_VISIBLE_DEVICES``); MultiWorkerMirroredStrategy all-reduces
        with the spec's ``collective``."""
        import tensorflow as tf

        if self.strategy == "multi_worker_mirrored":
            from workers.gpus import communication_options

            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication_options())
        if self.strategy == "parameter_server":
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
            return tf.distribute.ParameterServerStrategy(resolver)
        if self.strategy == "mirrored":
            return tf.distribute.MirroredStrategy()
        if self.strategy == "one_device":
            gpus = tf.config.list_logical_devices("GPU")
            return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
        raise ValueError(f"strategy {self.strategy!r} cannot be built by make_strategy()")

    # ------------------------------------------------------------ transport

    def to_env(self) -> str:
        """The context as JSON for a script entrypoint's environment."""
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        fields["restore_from"] = fields.pop("latest_checkpoint")
        fields["restore_step"] = fields.pop("latest_checkpoint_step")
        fields["restore_epoch"] = fields.pop("latest_checkpoint_epoch")
        fields["restore_batch"] = fields.pop("latest_checkpoint_batch")
        return json.dumps(fields)


def _standalone_context() -> TaskContext:
    """A context for a script run outside this controller: identity from TF_CONFIG, reports logged."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {"type": "chief", "index": 0})
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    role, index = task.get("type", "chief"), int(task.get("index", 0))
    is_chief = role == "chief" or ("chief" not in cluster and role == "worker" and index == 0)
    return TaskContext(
        job_name="standalone", job_dir=os.path.abspath("runs/standalone"), attempt=1,
        strategy="multi_worker_mirrored" if cluster else "one_device", role=role, index=index,
        is_chief=is_chief, num_workers=len(cluster.get("chief", [])) + len(cluster.get("worker", [])) or 1,
    )


def context_from_env(send: Callable[[Report], None] | None) -> TaskContext:
    """The context the task actor put into this process's environment, reporting through ``send``."""
    stop_file = os.environ.get(STOP_FILE_ENV)
    return TaskContext(**json.loads(os.environ[CONTEXT_ENV]), send=send,
                       stop_requested=(lambda: os.path.exists(stop_file)) if stop_file else None)


def attach(send: Callable[[Report], None] | None, handle_notice: bool = True) -> TaskContext:
    """Make this process the task's training process: its context, its faults armed, and (unless
    ``handle_notice`` is false: a script that never asks for its context keeps SIGTERM's default) SIGTERM
    a preemption notice."""
    global _current
    if _current is None:
        _current = context_from_env(send)
        _current.arm_faults()
    if handle_notice and not _current._notice_handled:
        _current._notice_handled = install_notice_handler(_current, _current.preemption_grace_s)
    return _current


def current() -> TaskContext | None:
    """This process's context if it has one yet (no stand-alone one is made)."""
    return _current


def get_context() -> TaskContext:
    """The running task's context: the one the controller sent, or a stand-alone one outside it."""
    global _current
    if os.environ.get(CONTEXT_ENV):
        return attach(REPORT_SENDER)
    if _current is None:
        _current = _standalone_context()
    return _current
