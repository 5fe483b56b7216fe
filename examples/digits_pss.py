"""Digits under ParameterServerStrategy, written both ways users write PSS training.

- ``train_fit``: Keras ``model.fit`` with ``tf.keras.utils.experimental.DatasetCreator``
  (tf-keras only) and ``steps_per_epoch``;
- ``train_ctl``: a custom training loop with ``ClusterCoordinator.schedule`` and
  per-worker datasets.

Only the chief (the coordinator) runs these; ps and worker tasks serve a
``tf.distribute.Server`` started by the task actor. When the task is the
evaluator, both functions run side-car evaluation of the job's checkpoints
on the held-out split instead. Each worker batch is ``per_worker_batch``
examples; a step is one batch on one worker (asynchronous training).
"""

from __future__ import annotations

import time

from examples.digits import load_data


def _model(tf, hidden_units: int):
    return tf.keras.Sequential([
        tf.keras.layers.Input(shape=(64,)),
        tf.keras.layers.Dense(hidden_units, activation="relu"),
        tf.keras.layers.Dense(10),
    ])


def _score(tf, model, x, y) -> dict:
    """Accuracy and loss of ``model`` on (x, y), computed locally (no strategy)."""
    logits = model(x, training=False)
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    accuracy = tf.reduce_mean(tf.cast(tf.argmax(logits, axis=1) == y, tf.float32))
    return {"val_accuracy": float(accuracy), "val_loss": float(loss)}


def _evaluate_fn(hidden_units: int):
    """A function that scores a checkpoint folder on the validation split (in the evaluator process)."""
    import os

    import tensorflow as tf

    from workers.keras import CKPT_PREFIX

    _, _, x_val, y_val = load_data()
    model = _model(tf, hidden_units)

    def evaluate(path: str) -> dict:
        tf.train.Checkpoint(model=model).read(os.path.join(path, CKPT_PREFIX)).expect_partial()
        return _score(tf, model, x_val, y_val)

    return evaluate


def _sidecar(ctx, hidden_units: int) -> dict:
    from workers.evaluator import sidecar_evaluate

    return {"evaluated": sidecar_evaluate(ctx, _evaluate_fn(hidden_units))}


def _final_validation(ctx, model, hidden_units: int, step: int, initial_epoch: int) -> dict:
    """Score the trained weights on the held-out split in the coordinator, report it, and export the model.
    The export is the local copy: a SavedModel of the training model would hold variables that live on the
    ps tasks (sharded ones, with a variable_partitioner, do not load with tf.saved_model.load, TensorFlow's
    parameter-server tutorial says), while this one loads anywhere (`tfray predict`)."""
    import tensorflow as tf

    _, _, x_val, y_val = load_data()
    local = _model(tf, hidden_units)
    local.set_weights(model.get_weights())
    accuracy = _score(tf, local, x_val, y_val)["val_accuracy"]
    ctx.report({"final_val_accuracy": accuracy}, step=step)
    ctx.save_model(local)  # only the coordinator runs this: the job folder's model/
    return {"val_accuracy": accuracy, "step": step, "initial_epoch": initial_epoch}


def train_fit(ctx, epochs: int = 10, steps_per_epoch: int = 30, per_worker_batch: int = 32,
              learning_rate: float = 0.005, hidden_units: int = 64) -> dict:
    """PSS with Keras ``fit`` and a ``DatasetCreator``."""
    if ctx.role == "evaluator":
        return _sidecar(ctx, hidden_units)
    import tensorflow as tf

    from workers.keras import JobCallback

    x_tr, y_tr, _, _ = load_data()
    strategy = ctx.make_strategy()
    with strategy.scope():
        model = _model(tf, hidden_units)
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    initial_epoch = int(ctx.latest_checkpoint_epoch or 0)

    def dataset_fn(input_context):
        ds = tf.data.Dataset.from_tensor_slices((x_tr, y_tr))
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return ds.shuffle(len(x_tr)).repeat().batch(per_worker_batch).prefetch(2)

    model.fit(tf.keras.utils.experimental.DatasetCreator(dataset_fn), epochs=epochs, steps_per_epoch=steps_per_epoch,
              verbose=2, callbacks=[JobCallback(ctx, global_batch_size=per_worker_batch)])  # a line per epoch
    step = int(model.optimizer.iterations.numpy())
    return _final_validation(ctx, model, hidden_units, step, initial_epoch)


def train_ctl(ctx, epochs: int = 10, steps_per_epoch: int = 30, per_worker_batch: int = 32,
              learning_rate: float = 0.005, hidden_units: int = 64, notice_check_steps: int = 10) -> dict:
    """PSS with a custom loop: ``ClusterCoordinator.schedule`` over per-worker datasets. Every
    ``notice_check_steps`` steps it waits for them and looks for a preemption notice (any task's notice
    reaches the coordinator): it saves that step and stops, so the restart loses no completed step."""
    if ctx.role == "evaluator":
        return _sidecar(ctx, hidden_units)
    import tensorflow as tf

    from workers.keras import restore, save

    x_tr, y_tr, _, _ = load_data()
    strategy = ctx.make_strategy()
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():
        model = _model(tf, hidden_units)
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))  # holds the optimizer for checkpoints
        train_loss = tf.keras.metrics.Mean()
        train_accuracy = tf.keras.metrics.SparseCategoricalAccuracy()
    optimizer = model.optimizer
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                            reduction=tf.keras.losses.Reduction.NONE)
    initial_epoch = restore(ctx, model)

    def per_worker_dataset_fn():
        return (tf.data.Dataset.from_tensor_slices((x_tr, y_tr)).shuffle(len(x_tr)).repeat()
                .batch(per_worker_batch).prefetch(2))

    iterator = iter(coordinator.create_per_worker_dataset(per_worker_dataset_fn))

    @tf.function
    def step_fn(iterator):
        def replica_fn(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = tf.nn.compute_average_loss(loss_fn(y, logits), global_batch_size=per_worker_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            train_loss.update_state(loss)
            train_accuracy.update_state(y, logits)
            return loss

        x, y = next(iterator)
        return strategy.run(replica_fn, args=(x, y))

    from workers.preemption import TaskPreempted

    for epoch in range(initial_epoch, epochs):
        started = time.perf_counter()
        for done in range(0, steps_per_epoch, notice_check_steps):
            for _ in range(min(notice_check_steps, steps_per_epoch - done)):
                coordinator.schedule(step_fn, args=(iterator,))
            coordinator.join()  # lost closures are re-run on the remaining workers
            if ctx.preemption_notice is not None:  # any task's notice reaches the coordinator: save, then stop
                step = int(optimizer.iterations.numpy())
                save(ctx, model, step, epoch=epoch, wait=True)
                raise TaskPreempted(f"{ctx.task}: saved at step {step} on a preemption notice")
        step = int(optimizer.iterations.numpy())
        values = {"epoch": epoch + 1, "loss": float(train_loss.result()), "accuracy": float(train_accuracy.result()),
                  "examples_per_s": steps_per_epoch * per_worker_batch / (time.perf_counter() - started)}
        ctx.report(values, step=step)
        if (epoch + 1) % ctx.checkpoint_every_n_epochs == 0:
            save(ctx, model, step, epoch=epoch + 1, metrics=values)
        train_loss.reset_state()
        train_accuracy.reset_state()
    step = int(optimizer.iterations.numpy())
    return _final_validation(ctx, model, hidden_units, step, initial_epoch)
