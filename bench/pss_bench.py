"""The benchmark's parameter-server job (the case Ray Train cannot run): this project vs launched by hand.

The digits MLP trained by a coordinator with a custom loop
(``ClusterCoordinator.schedule`` over per-worker datasets, as
``examples/digits_pss.py:train_ctl``): each epoch schedules a fixed number
of steps, joins, reports and writes a checkpoint. One step is one batch on
one worker (asynchronous training). The coordinator logs each epoch's end
with the optimizer's step count, so the harness can tell how many steps per
second the job made before a worker was killed and while it was gone.

- ``train_ours(ctx, ...)``: the controller's function entrypoint; only the
  chief runs it, ps and worker tasks are served by the task actor;
- ``python -m bench.pss_bench coordinate|serve``: the coordinator, or a ps /
  worker server, as plain processes with hand-written ``TF_CONFIG``
  (``bench/hand.py pss`` starts them and restarts a lost worker in place).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.digits_bench import _import_tf, _log_start
from bench.events import log_event

PSS_DEFAULTS = {"epochs": 12, "steps_per_epoch": 50, "per_worker_batch": 32, "learning_rate": 0.005,
                "hidden_units": 64}


def _loop(tf, strategy, events: str, task: str, report, save, restore, *, epochs: int, steps_per_epoch: int,
          per_worker_batch: int, learning_rate: float, hidden_units: int) -> int:
    from examples.digits import load_data

    x_tr, y_tr, _, _ = load_data()
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.layers.Input(shape=(64,)),
            tf.keras.layers.Dense(hidden_units, activation="relu"),
            tf.keras.layers.Dense(10),
        ])
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))  # holds the optimizer for checkpoints
    optimizer = model.optimizer
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE)
    initial_epoch = restore(model)
    log_event(events, "restored", task=task, step=int(optimizer.iterations.numpy()), epoch=initial_epoch)

    def per_worker_dataset_fn():
        return (tf.data.Dataset.from_tensor_slices((x_tr, y_tr)).shuffle(len(x_tr)).repeat()
                .batch(per_worker_batch).prefetch(2))

    iterator = iter(coordinator.create_per_worker_dataset(per_worker_dataset_fn))

    @tf.function
    def step_fn(iterator):
        def replica_fn(x, y):
            with tf.GradientTape() as tape:
                loss = tf.nn.compute_average_loss(loss_fn(y, model(x, training=True)),
                                                  global_batch_size=per_worker_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        x, y = next(iterator)
        return strategy.run(replica_fn, args=(x, y))

    log_event(events, "fit_begin", task=task, step=int(optimizer.iterations.numpy()))
    for epoch in range(initial_epoch, epochs):
        for _ in range(steps_per_epoch):
            coordinator.schedule(step_fn, args=(iterator,))
        coordinator.join()  # closures lost with a worker are re-run on the others
        step = int(optimizer.iterations.numpy())
        log_event(events, "epoch_end", task=task, epoch=epoch + 1, step=step)
        report({"epoch": epoch + 1}, step)
        save(model, step, epoch + 1)
        log_event(events, "epoch_saved", task=task, epoch=epoch + 1, step=step)
    step = int(optimizer.iterations.numpy())
    log_event(events, "finished", task=task, step=step)
    return step


def _job_args(kwargs: dict) -> dict:
    return {**PSS_DEFAULTS, **{k: v for k, v in kwargs.items() if k in PSS_DEFAULTS}}


def train_ours(ctx, events: str = "", **kwargs) -> dict:
    """Function entrypoint (``bench.pss_bench:train_ours``); the controller runs it in the chief."""
    _log_start(events, ctx.task, "ours")
    tf = _import_tf(events, ctx.task)
    from workers.keras import restore, save

    strategy = ctx.make_strategy()
    log_event(events, "strategy_built", task=ctx.task)
    step = _loop(tf, strategy, events, ctx.task, lambda values, step: ctx.report(values, step=step),
                 lambda model, step, epoch: save(ctx, model, step, epoch=epoch), lambda model: restore(ctx, model),
                 **_job_args(kwargs))
    return {"step": step}


def coordinate(events: str, ckpt_dir: str, **kwargs) -> int:
    """The hand-launched coordinator: identity from TF_CONFIG, checkpoints sealed in ``ckpt_dir``."""
    task = "chief-0"
    _log_start(events, task, "hand")
    tf = _import_tf(events, task)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    strategy = tf.distribute.ParameterServerStrategy(resolver)
    log_event(events, "strategy_built", task=task)
    folder = Path(ckpt_dir)
    checkpoints: dict = {}

    def save(model, step: int, epoch: int) -> None:
        if "c" not in checkpoints:
            checkpoints["c"] = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        path = folder / f"ckpt-{step:09d}"
        checkpoints["c"].write(str(path / "ckpt"))
        (path / "COMPLETE.json").write_text(json.dumps({"step": step, "epoch": epoch}))

    _loop(tf, strategy, events, task, lambda values, step: None, save, lambda model: 0, **_job_args(kwargs))
    return 0


def serve(events: str) -> int:
    """A hand-launched ps or worker: a tf.distribute.Server on its TF_CONFIG address, until killed."""
    config = json.loads(os.environ["TF_CONFIG"])
    task = f"{config['task']['type']}-{config['task']['index']}"
    _log_start(events, task, "hand")
    tf = _import_tf(events, task)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type, task_index=resolver.task_id,
                                  protocol="grpc", start=True)
    log_event(events, "serving", task=task, target=server.target)
    server.join()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The PSS bench job's coordinator or a server, by hand.")
    parser.add_argument("what", choices=["coordinate", "serve"])
    parser.add_argument("--events", required=True)
    parser.add_argument("--ckpt-dir", default="")
    for key, value in PSS_DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args(argv))
    what = args.pop("what")
    if what == "serve":
        return serve(args["events"])
    ckpt_dir = args.pop("ckpt_dir") or str(Path(args["events"]).parent / "ckpt")
    return coordinate(ckpt_dir=ckpt_dir, **args)


if __name__ == "__main__":
    sys.exit(main())
