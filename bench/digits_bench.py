"""The benchmark's MultiWorkerMirroredStrategy job, one training for all three ways of launching it.

The digits MLP of ``examples/digits.py`` (sklearn's ``load_digits``, the
same split, Dense 64 relu + Dense 10, Adam 0.005) trained with tf-keras
``fit`` for a fixed number of steps per epoch on the global batch
(per-replica batch x replicas), reporting metrics and writing a checkpoint
(``tf.train.Checkpoint`` of model and optimizer) every epoch. Only the
launcher-facing glue differs:

- ``train_ours(ctx, ...)``: this project's function entrypoint; reports and
  checkpoints through ``workers.keras`` (``JobCallback``, ``restore``), as
  ``examples/digits.py`` does;
- ``python -m bench.digits_bench ...``: a plain TF script reading
  ``TF_CONFIG``, started by ``bench/hand.py`` with hand-written ``TF_CONFIG``;
  its report is a line in the event log, its checkpoint a folder sealed by a
  marker file;
- ``train_raytrain(config)``: Ray Train's ``train_loop_per_worker``;
  ``ray.train.report`` every epoch with the checkpoint from rank 0.

Every way logs the same events (``bench/events.py``) from the same
callbacks, and injects faults the same way: a ``FaultAt`` callback sends
SIGKILL or SIGTERM to its own process once the given task has completed the
given global step (a marker file makes each fault fire once per run, across
restarts). The project's own fault seam (``faults:`` in a spec) fires on
``ctx.report``, i.e. at epoch ends only in this job, and the other two ways
have no seam; one mechanism for all three keeps the comparison fair.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import conv_model
from bench.events import EVENTS_ENV, log_event

JOB_DEFAULTS = {"epochs": 10, "steps_per_epoch": 50, "per_replica_batch": 32, "learning_rate": 0.005,
                "hidden_units": 64, "model": "mlp"}  # model: mlp (digits) | conv (synthetic images, bench/gpu.py)
CKPT_PREFIX = "ckpt"  # the same file prefix as workers.keras
SEAL = "COMPLETE.json"  # the hand-launched way's "this checkpoint is complete" marker


# ----------------------------------------------------------------- faults

def parse_faults(text: str) -> list[dict]:
    """``kill:worker-1:175,term:worker-1:325:2`` -> [{action, task, at_step, grace_s, index}].

    ``term`` is a preemption with notice: SIGTERM, then SIGKILL ``grace_s``
    seconds later (default 2) unless the process is gone by then, as a cloud
    reclaims a spot VM at its deadline (GCP gives 30 s, AWS 120 s; a short
    grace keeps the run short, and what is measured is whether the notice is
    used at all: TensorFlow's own MultiWorkerMirroredStrategy takes SIGTERM
    and ignores it, so a plain script trains on until the deadline's SIGKILL).
    """
    faults = []
    for i, part in enumerate(p for p in (text or "").split(",") if p.strip()):
        action, task, step, *grace = part.strip().split(":")
        if action not in ("kill", "term"):
            raise ValueError(f"fault action {action!r}: use kill or term")
        faults.append({"action": action, "task": task, "at_step": int(step),
                       "grace_s": float(grace[0]) if grace else 2.0, "index": i})
    return faults


def _fault_marker(events: str, index: int) -> Path:
    return Path(events).parent / f"fault-{index}.fired"


# ---------------------------------------------------------- the training

def _log_start(events: str, task: str, way: str) -> None:
    try:
        import psutil

        created = psutil.Process().create_time()
    except ImportError:  # the bench extra is not installed: the breakdown lacks process start
        created = None
    log_event(events, "start", task=task, way=way, process_created=created,
              tf_loaded_before="tensorflow" in sys.modules, omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
              niceness=os.getpriority(os.PRIO_PROCESS, 0), cpus=len(os.sched_getaffinity(0)),
              tf_intra_op=os.environ.get("TF_NUM_INTRAOP_THREADS"),
              tf_inter_op=os.environ.get("TF_NUM_INTEROP_THREADS"))


def _import_tf(events: str, task: str):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf-keras (docs/design.md §4); set by every launcher anyway
    began = time.time()
    import tensorflow as tf

    log_event(events, "tf_imported", task=task, seconds=time.time() - began)
    return tf


def build(tf, strategy, events: str, task: str, *, steps_per_epoch: int, per_replica_batch: int,
          learning_rate: float, hidden_units: int, model: str = "mlp", **_):
    """(model, dataset, global batch): the digits MLP (or the GPU check's conv net) compiled under ``strategy``
    and its input; the devices the task trains on go to the event log."""
    from examples.digits import load_data

    conv_model.log_devices(tf, strategy, events, task)
    if model == "conv":
        return conv_model.build(tf, strategy, events, task, per_replica_batch=per_replica_batch,
                                learning_rate=learning_rate)

    x_tr, y_tr, _, _ = load_data()
    log_event(events, "data_loaded", task=task)
    global_batch = per_replica_batch * strategy.num_replicas_in_sync
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = (tf.data.Dataset.from_tensor_slices((x_tr, y_tr)).shuffle(len(x_tr), seed=1).repeat()
               .batch(global_batch).with_options(options))
    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.layers.Input(shape=(64,)),
            tf.keras.layers.Dense(hidden_units, activation="relu"),
            tf.keras.layers.Dense(10),
        ])
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    log_event(events, "model_built", task=task)
    return model, dataset, global_batch


def _timed(callback, spent: dict) -> None:
    """Make ``callback``'s epoch-end and batch-end hooks add their seconds to ``spent``.

    Only hooks the callback's class defines are wrapped: Keras calls batch
    hooks (and waits for every step's logs to do so) only when some
    callback has them, and a wrapper would look like one.
    """
    for hook, key in (("on_epoch_end", "epoch_hooks_s"), ("on_train_batch_end", "batch_hooks_s")):
        inner = getattr(callback, hook)
        if getattr(inner, "_is_default", False):  # tf-keras marks the base class's no-op hooks
            continue

        def wrapped(*args, _inner=inner, _key=key, **kwargs):
            began = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent[_key] = spent.get(_key, 0.0) + time.perf_counter() - began

        setattr(callback, hook, wrapped)


def _callbacks(tf, events: str, task: str, faults: list[dict], own: list) -> list:
    """The way's own report/checkpoint callbacks (timed) between the bench's logging ones."""
    spent: dict[str, float] = {}
    for callback in own:
        _timed(callback, spent)

    def step_of(model) -> int:
        return int(model.optimizer.iterations.numpy())

    class EpochEnd(tf.keras.callbacks.Callback):
        """An epoch's last step is done (logged before it is reported or saved)."""

        def on_train_begin(self, logs=None):
            log_event(events, "fit_begin", task=task, step=step_of(self.model))

        def on_epoch_end(self, epoch, logs=None):
            log_event(events, "epoch_end", task=task, epoch=epoch + 1, step=step_of(self.model),
                      batch_hooks_s=spent.pop("batch_hooks_s", 0.0))

    class EpochSaved(tf.keras.callbacks.Callback):
        """The way's report and checkpoint of this epoch returned: the checkpoint is complete."""

        def on_epoch_end(self, epoch, logs=None):
            log_event(events, "epoch_saved", task=task, epoch=epoch + 1, step=step_of(self.model),
                      epoch_hooks_s=spent.pop("epoch_hooks_s", 0.0))

    class FaultAt(tf.keras.callbacks.Callback):
        """SIGKILL / SIGTERM this process once it completed a step (once per run, across restarts)."""

        def __init__(self, mine: list[dict]):
            super().__init__()
            self.mine = mine
            self.last_step = 0  # the newest completed step, for the deadline's record

        def on_train_batch_end(self, batch, logs=None):
            step = self.last_step = step_of(self.model)
            for fault in self.mine:
                marker = _fault_marker(events, fault["index"])
                if step >= fault["at_step"] and not marker.exists():
                    marker.write_text(json.dumps({"time": time.time(), "step": step}))
                    log_event(events, "fault", task=task, action=fault["action"], step=step, index=fault["index"])
                    if fault["action"] == "kill":
                        os.kill(os.getpid(), signal.SIGKILL)
                    deadline = threading.Timer(fault["grace_s"], self._deadline, args=(fault,))
                    deadline.daemon = True
                    deadline.start()
                    os.kill(os.getpid(), signal.SIGTERM)

        def _deadline(self, fault: dict) -> None:
            log_event(events, "deadline", task=task, step=self.last_step, index=fault["index"])
            os.kill(os.getpid(), signal.SIGKILL)

    mine = [f for f in faults if f["task"] == task]
    return [EpochEnd(), *own, EpochSaved()] + ([FaultAt(mine)] if mine else [])


def _fit(tf, model, dataset, events: str, task: str, initial_epoch: int, epochs: int, steps_per_epoch: int,
         callbacks: list) -> int:
    log_event(events, "restored", task=task, step=int(model.optimizer.iterations.numpy()), epoch=initial_epoch)
    model.fit(dataset, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch, verbose=0,
              callbacks=callbacks)
    step = int(model.optimizer.iterations.numpy())
    conv_model.log_gpu_memory(tf, events, task)
    log_event(events, "finished", task=task, step=step)
    return step


def _job_args(kwargs: dict) -> dict:
    return {**JOB_DEFAULTS, **{k: v for k, v in kwargs.items() if k in JOB_DEFAULTS}}


# ------------------------------------------------------- 1. this project

def train_ours(ctx, events: str = "", faults: str = "", notice_check: bool = True, **kwargs) -> dict:
    """Function entrypoint (``bench.digits_bench:train_ours``) for the controller.

    ``notice_check=False`` turns off ``JobCallback``'s notice check (a diagnostic: what the
    per-step notice check costs; without it a SIGTERM is not turned into a save)."""
    job = _job_args(kwargs)
    _log_start(events, ctx.task, "ours")
    tf = _import_tf(events, ctx.task)
    from workers.keras import JobCallback, restore

    strategy = ctx.make_strategy()
    log_event(events, "strategy_built", task=ctx.task)
    model, dataset, global_batch = build(tf, strategy, events, ctx.task, **job)
    initial_epoch = restore(ctx, model)
    own = [JobCallback(ctx, global_batch_size=global_batch, notices=notice_check)]
    callbacks = _callbacks(tf, events, ctx.task, parse_faults(faults), own)
    step = _fit(tf, model, dataset, events, ctx.task, initial_epoch, job["epochs"], job["steps_per_epoch"],
                callbacks)
    return {"step": step, "initial_epoch": initial_epoch}


# ------------------------------------------------ 2. launched by hand

class _HandCheckpoint:
    """Per-epoch checkpoints the way a hand-written script does it: every task writes (the save
    runs collectives), the chief into ``ckpt-<step>`` sealed by a marker, the others into a
    temporary folder they delete."""

    @staticmethod
    def newest(ckpt_dir: Path) -> tuple[Path, dict] | None:
        sealed = sorted(p for p in ckpt_dir.glob("ckpt-*") if (p / SEAL).exists())
        return (sealed[-1], json.loads((sealed[-1] / SEAL).read_text())) if sealed else None

    @staticmethod
    def callback(tf, ckpt_dir: Path, task: str, is_chief: bool):
        class HandCheckpoint(tf.keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer)

            def on_epoch_end(self, epoch, logs=None):
                step = int(self.model.optimizer.iterations.numpy())
                folder = ckpt_dir / (f"ckpt-{step:09d}" if is_chief else f"tmp-{task}-{step:09d}")
                self.checkpoint.write(str(folder / CKPT_PREFIX))
                if is_chief:
                    tmp = folder / (SEAL + ".tmp")
                    tmp.write_text(json.dumps({"step": step, "epoch": epoch + 1}))
                    os.replace(tmp, folder / SEAL)
                else:
                    shutil.rmtree(folder, ignore_errors=True)

        return HandCheckpoint()


def train_hand(events: str, ckpt_dir: str, faults: str = "", **kwargs) -> int:
    """A plain TF script's training: identity from ``TF_CONFIG``, checkpoints in ``ckpt_dir``."""
    job = _job_args(kwargs)
    config = json.loads(os.environ["TF_CONFIG"])
    role, index = config["task"]["type"], int(config["task"]["index"])
    task = f"{role}-{index}"
    is_chief = role == "chief" or ("chief" not in config["cluster"] and index == 0)
    _log_start(events, task, "hand")
    tf = _import_tf(events, task)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    log_event(events, "strategy_built", task=task)
    model, dataset, _ = build(tf, strategy, events, task, **job)
    folder = Path(ckpt_dir)
    folder.mkdir(parents=True, exist_ok=True)
    initial_epoch = 0
    newest = _HandCheckpoint.newest(folder)
    if newest is not None:
        path, seal = newest
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).read(str(path / CKPT_PREFIX)).expect_partial()
        initial_epoch = int(seal["epoch"])
    own = [_HandCheckpoint.callback(tf, folder, task, is_chief)]
    callbacks = _callbacks(tf, events, task, parse_faults(faults), own)
    return _fit(tf, model, dataset, events, task, initial_epoch, job["epochs"], job["steps_per_epoch"], callbacks)


# ------------------------------------------------------- 3. Ray Train

def train_raytrain(config: dict) -> None:
    """Ray Train ``train_loop_per_worker``: the same training, reported with ``ray.train.report``."""
    import ray.train

    events, faults = config.get("events", ""), config.get("faults", "")
    job = _job_args(config)
    rank = ray.train.get_context().get_world_rank()
    task = f"worker-{rank}"
    _log_start(events, task, "raytrain")
    tf = _import_tf(events, task)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    log_event(events, "strategy_built", task=task)
    model, dataset, _ = build(tf, strategy, events, task, **job)
    initial_epoch = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            tf.train.Checkpoint(model=model, optimizer=model.optimizer).read(
                os.path.join(folder, CKPT_PREFIX)).expect_partial()
            initial_epoch = int(json.loads(Path(folder, "epoch.json").read_text())["epoch"])

    class RayTrainReport(tf.keras.callbacks.Callback):
        """Every rank writes (the save runs collectives); rank 0's folder goes with the report."""

        def on_train_begin(self, logs=None):
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer)

        def on_epoch_end(self, epoch, logs=None):
            step = int(self.model.optimizer.iterations.numpy())
            folder = tempfile.mkdtemp(prefix="tfr-rt-")
            self.checkpoint.write(os.path.join(folder, CKPT_PREFIX))
            Path(folder, "epoch.json").write_text(json.dumps({"epoch": epoch + 1, "step": step}))
            metrics = {"epoch": epoch + 1, "step": step, "task_time": time.time(),
                       **{k: float(v) for k, v in (logs or {}).items()}}
            report_checkpoint = ray.train.Checkpoint.from_directory(folder) if rank == 0 else None
            ray.train.report(metrics, checkpoint=report_checkpoint)
            shutil.rmtree(folder, ignore_errors=True)

    callbacks = _callbacks(tf, events, task, parse_faults(faults), [RayTrainReport()])
    _fit(tf, model, dataset, events, task, initial_epoch, job["epochs"], job["steps_per_epoch"], callbacks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The bench job as a plain TF script (reads TF_CONFIG).")
    parser.add_argument("--ckpt-dir", required=True)
    parser.add_argument("--events", default=os.environ.get(EVENTS_ENV, ""))
    parser.add_argument("--faults", default="")
    for key, value in JOB_DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    train_hand(**vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
