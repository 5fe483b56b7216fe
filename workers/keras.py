"""Keras glue: the job's checkpoints in TensorFlow's own format, and the one callback that does it all.

``JobCallback(ctx)`` in ``model.fit`` reports each epoch's metrics, writes
the job's checkpoints, saves at an agreed step when any task gets a
preemption notice, and resumes ``fit`` where the newest checkpoint left off:
at the next epoch, or mid-epoch after the batches already done (none
repeated, none lost). No ``restore`` call and no ``initial_epoch`` are
needed; ``restore(ctx, model)`` is there for custom loops.

A checkpoint is a ``tf.train.Checkpoint(model=..., optimizer=...)`` written
with prefix ``ckpt`` into its sealed folder, with TensorFlow's ``checkpoint``
state file beside it (and one in the job's ``checkpoints`` folder, kept by
the controller), so ``tf.train.latest_checkpoint``, ``CheckpointManager`` and
TF's side-car evaluator read them as they are. A save holds training only
while TensorFlow copies the variables (its asynchronous checkpointing); the
files are written in the background, and the checkpoint is sealed and
reported once they are all there. A save waits for the one before it, a
save on a preemption notice waits for its own files, and the process does
not exit before every save in flight is sealed; a process killed meanwhile
(a restart of the cluster) loses that save, never a sealed one.

Import this module only in task processes: it imports TensorFlow, so
``TF_USE_LEGACY_KERAS=1`` must already be set (the task actor sets it) for
``tf.keras`` to be tf-keras, which multi-worker ``fit`` needs (docs/design.md §4).
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import tensorflow as tf

from protocol.atomic_files import write_tf_state
from protocol.layout import CKPT_PREFIX
from workers import step_clock
from workers.context import CheckpointUnreadable, TaskContext
from workers.preemption import TaskPreempted, install_notice_handler
from workers.sealer import Sealer

# What reading a torn or altered checkpoint raises: TF's data errors, and a short read ("Read less bytes
# than requested") surfaces as IndexError.
DATA_ERRORS = (tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.OutOfRangeError,
               tf.errors.InvalidArgumentError, IndexError)

_checkpoints: dict[int, tf.train.Checkpoint] = {}
_restored: set[int] = set()  # models restored from the job's checkpoint in this process
# TensorFlow copies the variables, then writes the files from a thread of its own (bench/checkpoints.py:
# 100 MB of state held training 0.012-0.016 s, where a synchronous write took 0.11-0.36 s).
ASYNC_SAVE = tf.train.CheckpointOptions(enable_async=True)


_sealer = Sealer()


def _checkpoint(model) -> tf.train.Checkpoint:
    """One Checkpoint object per model: a new one per save retraces TF's save function every time."""
    key = id(model)
    if key not in _checkpoints:
        _checkpoints[key] = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    return _checkpoints[key]


def restore(ctx: TaskContext, model) -> int:
    """Load the newest complete checkpoint into ``model`` (compiled); return the epoch to start at."""
    if not ctx.latest_checkpoint:
        return 0
    if id(model) not in _restored:
        try:
            _checkpoint(model).read(os.path.join(ctx.latest_checkpoint, CKPT_PREFIX)).expect_partial()
        except DATA_ERRORS as err:  # a torn or altered file: the controller falls back to the checkpoint before
            raise CheckpointUnreadable(f"{ctx.latest_checkpoint}: {type(err).__name__}: {err}") from err
        _restored.add(id(model))
    return int(ctx.latest_checkpoint_epoch or 0)


def save(ctx: TaskContext, model, step: int, epoch: int | None = None, metrics: dict | None = None,
         batch: int | None = None, wait: bool = False) -> None:
    """Write a checkpoint of ``model`` and its optimizer for ``step`` through the context (``batch``: saved
    mid-epoch, after that batch of epoch ``epoch``). Returns once the variables are copied; the checkpoint
    is sealed and reported when its files are written, in the background, or before returning if ``wait``
    (a save before stopping; the process's exit waits for every save anyway).

    Under MultiWorkerMirroredStrategy every task must call it (the save runs
    collectives); under ParameterServerStrategy only the coordinator does.
    """
    held_from = time.perf_counter()
    path = ctx.checkpoint_dir(step)
    checkpoint = _checkpoint(model)
    checkpoint.write(os.path.join(path, CKPT_PREFIX), options=ASYNC_SAVE)  # waits for the write before it

    def seal() -> None:
        # A write can end without its files: under ParameterServerStrategy a ps killed during the save leaves
        # the background write with nothing to write, and sync() returns. Sealed, such a folder passed every
        # check (the seal lists what is there) and failed only at the restore, spending a corrupt-checkpoint
        # budget; unsealed, the job keeps its newest complete checkpoint and the folder goes at reconcile.
        if not os.path.exists(os.path.join(path, CKPT_PREFIX + ".index")):
            print(f"[tfray] the checkpoint of step {step} was not written ({CKPT_PREFIX}.index is missing in "
                  f"{path}): it is not sealed; the job keeps its newest complete checkpoint", file=sys.stderr,
                  flush=True)
            return
        write_tf_state(path, [CKPT_PREFIX])
        ctx.commit_checkpoint(step, epoch=epoch, metrics=metrics, batch=batch)

    _sealer.after(checkpoint, seal)
    if wait:
        wait_for_saves()
    if getattr(ctx, "windows", None) is not None:
        ctx.windows.held(time.perf_counter() - held_from)


def wait_for_saves() -> None:
    """Until every checkpoint saved so far in this process is written and sealed."""
    _sealer.wait()


class _ResumePoint:
    """What Keras' ``fit`` asks a model's ``_training_state`` for (as ``BackupAndRestore`` provides it): the
    epoch and the step within it to start at."""

    def __init__(self, epoch: int, batch: int | None):
        self.epoch, self.batch = epoch, batch

    def maybe_load_initial_counters_from_ckpt(self, steps_per_epoch, initial_epoch, mode=None):
        if self.batch is None:
            return self.epoch, 0
        if steps_per_epoch and self.batch >= steps_per_epoch - 1:
            return self.epoch + 1, 0
        return self.epoch, self.batch + 1


class JobCallback(tf.keras.callbacks.Callback):
    """Reports, checkpoints, saves on a preemption notice, and resumes ``fit`` where the job left off.

    Every task must use it under MultiWorkerMirroredStrategy: saving and the
    notice agreement run collectives. About once a second (at most a tenth
    of the notice's grace; first after ``check_every_n_steps`` batches) the
    tasks all-reduce their notice flags with the seconds since the last
    check, so all of them see a notice at the same step and compute the same
    next interval. Under ParameterServerStrategy (which refuses batch hooks)
    the notice is looked at each epoch's end. ``step`` is the optimizer's
    iteration count, which a checkpoint restores.
    """

    resumes_fit = True  # it restores fit's place itself: a script's fit with it gets no automatic backup

    def __init__(self, ctx: TaskContext, global_batch_size: int | None = None,
                 checkpoint_every_n_epochs: int | None = None, check_every_n_steps: int = 10,
                 check_every_s: float = 1.0, *, report: bool = True, notices: bool = True):
        super().__init__()
        self._supports_tf_logs = True  # the batch hook never reads logs: Keras need not turn them into numbers
        self.ctx = ctx
        self.global_batch_size = global_batch_size
        self.every_n_epochs = checkpoint_every_n_epochs or ctx.checkpoint_every_n_epochs
        self.reporting = report  # report and checkpoint each epoch
        self.notices = notices  # save on a preemption notice
        self.every = check_every_n_steps
        self.target_s = min(check_every_s, ctx.preemption_grace_s / 10)
        self._epoch, self._batches, self._checked_at = 0, 0, 0.0
        self._mark = (time.perf_counter(), 0)
        self._clock: step_clock.StepClock | None = None

    def _pss(self) -> bool:
        return isinstance(self.model.distribute_strategy, tf.distribute.ParameterServerStrategy)

    def _implements_train_batch_hooks(self):
        return self.notices and not self._pss()

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        if self.ctx.latest_checkpoint and id(self.model) not in _restored:
            if self.model.built and callable(getattr(self.model.optimizer, "build", None)):
                self.model.optimizer.build(self.model.trainable_variables)  # its slots, to restore into
            restore(self.ctx, self.model)
        if self.ctx.latest_checkpoint and getattr(self.model, "_training_state", None) is None:
            self.model._training_state = _ResumePoint(int(self.ctx.latest_checkpoint_epoch or 0),
                                                      self.ctx.latest_checkpoint_batch)
        self._mark = (time.perf_counter(), self._step())
        windows = getattr(self.ctx, "windows", None) if self.reporting else None
        # The parts of each step, timed inside it (workers/step_clock.py); the epochs' windows start here.
        self._clock = step_clock.clock_for(self.model, self._pss()) if windows is not None else None
        if windows is not None:
            windows.begin(self._mark[1])
        if self.notices and not self._pss():
            strategy = self.model.distribute_strategy

            @tf.function  # eager collectives are slow and warn on every call
            def agree(values):
                return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: values), axis=None)

            self._agree, self._replicas = agree, strategy.num_replicas_in_sync
            self._checked_at = time.monotonic()
        # MultiWorkerMirroredStrategy installs TF's own SIGTERM handler when it is built, after the task's.
        install_notice_handler(self.ctx, self.ctx.preemption_grace_s)

    def on_train_end(self, logs=None):
        if isinstance(getattr(self.model, "_training_state", None), _ResumePoint):
            del self.model._training_state
        wait_for_saves()  # fit returns with the job's checkpoints sealed

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._clock is not None:
            self._clock.epoch_begins()

    def on_train_batch_end(self, batch, logs=None):
        if not self._implements_train_batch_hooks():  # Keras calls every callback's hook once one has it
            return
        self._batches += 1
        if self._batches < self.every:
            return
        now = time.monotonic()
        local = 1.0 if self.ctx.preemption_notice is not None else 0.0
        notices, seconds = self._agree(tf.constant([local, now - self._checked_at])).numpy().tolist()
        # Identical inputs on every task (the all-reduce's result), so the same next interval everywhere.
        per_step = seconds / self._replicas / self._batches
        self.every = max(1, min(10_000, int(self.target_s / per_step) if per_step > 0 else 10_000))
        self._batches, self._checked_at = 0, now
        if notices:
            self._stop(batch, "this task's" if local else "a peer's")

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        if self.reporting:
            # The epochs fit runs in all, a resumed fit too (Keras sets `params` in fit; a hand call has none).
            total = (getattr(self, "params", None) or {}).get("epochs")
            timed = self._clock.read() if self._clock is not None else None
            window = self.ctx.windows.close(step, timed) if getattr(self.ctx, "windows", None) else None
            self.ctx.report({"epoch": epoch + 1, **(logs or {}), **self._throughput(step)}, step=step,
                            total_epochs=total, breakdown=window)
            if (epoch + 1) % self.every_n_epochs == 0:
                save(self.ctx, self.model, step, epoch=epoch + 1, metrics=logs)
        if self.notices and self._pss() and self.ctx.preemption_notice is not None:
            if not (self.reporting and (epoch + 1) % self.every_n_epochs == 0):
                save(self.ctx, self.model, step, epoch=epoch + 1)
            wait_for_saves()
            raise TaskPreempted(f"{self.ctx.task}: saved at step {step} on a preemption notice")

    def _stop(self, batch: int, whose: str) -> None:
        step = self._step()
        save(self.ctx, self.model, step, epoch=self._epoch, batch=batch, wait=True)
        raise TaskPreempted(f"{self.ctx.task}: saved at step {step} on {whose} preemption notice")

    def _throughput(self, step: int) -> dict:
        now = time.perf_counter()
        since, at_step = self._mark
        self._mark = (now, step)
        if not self.global_batch_size or step <= at_step or now <= since:
            return {}
        return {"examples_per_s": (step - at_step) * self.global_batch_size / (now - since)}


class ControllerCallback(JobCallback):
    """Deprecated: ``JobCallback`` does this and saves on a preemption notice too."""

    def __init__(self, ctx: TaskContext, global_batch_size: int | None = None,
                 checkpoint_every_n_epochs: int | None = None):
        warnings.warn("workers.keras.ControllerCallback is deprecated and goes in the next release: use "
                      "workers.keras.JobCallback(ctx), which also saves on a preemption notice",
                      DeprecationWarning, stacklevel=2)
        super().__init__(ctx, global_batch_size, checkpoint_every_n_epochs, notices=False)


class PreemptionCallback(JobCallback):
    """Deprecated: ``JobCallback`` does this and reports and checkpoints too."""

    def __init__(self, ctx: TaskContext, check_every_n_steps: int = 10, check_every_s: float = 1.0):
        warnings.warn("workers.keras.PreemptionCallback is deprecated and goes in the next release: use "
                      "workers.keras.JobCallback(ctx) alone", DeprecationWarning, stacklevel=2)
        super().__init__(ctx, check_every_n_steps=check_every_n_steps, check_every_s=check_every_s, report=False)
