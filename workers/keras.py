"""Keras glue: a callback that reports and checkpoints through the task context,
and ``restore`` to resume a model from the job's newest complete checkpoint.

Import this module only in task processes: it imports TensorFlow, so
``TF_USE_LEGACY_KERAS=1`` must already be set (the task actor sets it) for
``tf.keras`` to be tf-keras, which multi-worker ``fit`` needs (docs/design.md §4).
"""

from __future__ import annotations

import os
import time

import tensorflow as tf

from workers.context import CheckpointUnreadable, TaskContext

CKPT_PREFIX = "ckpt"
# What reading a torn or altered checkpoint raises: TF's data errors, and a short read ("Read less bytes
# than requested") surfaces as IndexError.
DATA_ERRORS = (tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.OutOfRangeError,
               tf.errors.InvalidArgumentError, IndexError)


_checkpoints: dict[int, tf.train.Checkpoint] = {}


def _checkpoint(model) -> tf.train.Checkpoint:
    """One Checkpoint object per model: a new one per save retraces TF's save function every time."""
    key = id(model)
    if key not in _checkpoints:
        _checkpoints[key] = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    return _checkpoints[key]


def restore(ctx: TaskContext, model) -> int:
    """Load the newest complete checkpoint into ``model`` (compiled, built); return the epoch to start at."""
    if not ctx.latest_checkpoint:
        return 0
    try:
        _checkpoint(model).read(os.path.join(ctx.latest_checkpoint, CKPT_PREFIX)).expect_partial()
    except DATA_ERRORS as err:  # a torn or altered file: the controller falls back to the checkpoint before
        raise CheckpointUnreadable(f"{ctx.latest_checkpoint}: {type(err).__name__}: {err}") from err
    return int(ctx.latest_checkpoint_epoch or 0)


def save(ctx: TaskContext, model, step: int, epoch: int | None = None, metrics: dict | None = None) -> None:
    """Write a checkpoint of ``model`` and its optimizer for ``step`` through the context.

    Under MultiWorkerMirroredStrategy every task must call it (the save runs
    collectives); under ParameterServerStrategy only the coordinator does.
    """
    path = ctx.checkpoint_dir(step)
    _checkpoint(model).write(os.path.join(path, CKPT_PREFIX))
    ctx.commit_checkpoint(step, epoch=epoch, metrics=metrics)


class ControllerCallback(tf.keras.callbacks.Callback):
    """Reports epoch metrics and writes checkpoints (epoch-level only, so it also works under
    ParameterServerStrategy, which refuses batch-level callbacks).

    ``step`` is the optimizer's iteration count, which a checkpoint restores,
    so steps keep counting across a resume. Every task must use the callback
    under MultiWorkerMirroredStrategy: saving runs collectives on all tasks;
    the context sends the chief's copy to the real folder and discards the rest.
    """

    def __init__(self, ctx: TaskContext, global_batch_size: int | None = None,
                 checkpoint_every_n_epochs: int | None = None):
        super().__init__()
        self.ctx = ctx
        self.global_batch_size = global_batch_size
        self.every_n_epochs = checkpoint_every_n_epochs or ctx.checkpoint_every_n_epochs
        self._mark = (time.perf_counter(), 0)

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _throughput(self, step: int) -> dict:
        now = time.perf_counter()
        since, at_step = self._mark
        self._mark = (now, step)
        if not self.global_batch_size or step <= at_step or now <= since:
            return {}
        return {"examples_per_s": (step - at_step) * self.global_batch_size / (now - since)}

    def on_train_begin(self, logs=None):
        self._mark = (time.perf_counter(), self._step())

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        values = {"epoch": epoch + 1, **(logs or {}), **self._throughput(step)}
        self.ctx.report(values, step=step)
        if (epoch + 1) % self.every_n_epochs == 0:
            save(self.ctx, self.model, step, epoch=epoch + 1, metrics=logs)


class PreemptionCallback(tf.keras.callbacks.Callback):
    """Saves at a step boundary when any task got a preemption notice, then stops with TaskPreempted.

    Every so many batches the tasks all-reduce their notice flags, so under
    MultiWorkerMirroredStrategy they all see the notice at the same step and
    all take part in the save (it runs collectives). The controller restarts
    from that checkpoint: no completed step is lost. A mid-epoch checkpoint
    resumes at the start of its epoch with the optimizer's step count intact
    (the rest of that epoch's data is seen again). Batch-level: not for
    ParameterServerStrategy, where Keras refuses batch hooks.

    The first check comes after ``check_every_n_steps`` batches; each check
    also all-reduces the seconds since the previous one, so every task
    computes the same next interval: about ``check_every_s`` (capped at a
    tenth of the notice's grace period). Training is not slowed by more than
    one small all-reduce a second, and the batch hook never makes Keras wait
    for a step's logs (``_supports_tf_logs``).
    """

    def __init__(self, ctx: TaskContext, check_every_n_steps: int = 10, check_every_s: float = 1.0):
        super().__init__()
        self._supports_tf_logs = True  # the logs are not read: Keras need not turn them into numbers every step
        self.ctx = ctx
        self.every = check_every_n_steps
        self.target_s = min(check_every_s, ctx.preemption_grace_s / 10)
        self._epoch = 0
        self._batches = 0
        self._checked_at = 0.0

    def on_train_begin(self, logs=None):
        from workers.preemption import install_notice_handler

        strategy = self.model.distribute_strategy

        @tf.function  # eager collectives are slow and warn on every call
        def agree(values):
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: values), axis=None)

        self._agree = agree
        self._replicas = strategy.num_replicas_in_sync
        self._checked_at = time.monotonic()

        # MultiWorkerMirroredStrategy's coordination service installs its own SIGTERM handler
        # (TF's preemption notifier) when the strategy is built, after the task's own.
        install_notice_handler(self.ctx, self.ctx.preemption_grace_s)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self._batches < self.every:
            return
        now = time.monotonic()
        local = 1.0 if self.ctx.preemption_notice is not None else 0.0
        notices, seconds = self._agree(tf.constant([local, now - self._checked_at])).numpy().tolist()
        # Identical inputs on every task (the all-reduce's result), so the same next interval everywhere.
        per_step = seconds / self._replicas / self._batches
        self.every = max(1, min(10_000, int(self.target_s / per_step) if per_step > 0 else 10_000))
        self._batches = 0
        self._checked_at = now
        if notices == 0:
            return
        from workers.preemption import TaskPreempted

        step = int(self.model.optimizer.iterations.numpy())
        save(self.ctx, self.model, step, epoch=self._epoch)
        whose = "this task's" if local else "a peer's"
        raise TaskPreempted(f"{self.ctx.task}: saved at step {step} on {whose} preemption notice")
