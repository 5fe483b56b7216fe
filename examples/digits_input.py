"""Digits, input-bound: an expensive ``map`` before a small model, with or without the tf.data service.

Each image goes through a deliberately costly augmentation (``map_cost``
rounds of a 64x64 matrix product and a ``tanh``, standing in for parsing or
image augmentation) before the MLP of ``examples/digits.py`` trains on it.
The model is cheap and the map is not, so the training task's CPU is spent
on its input: the job is input-bound.

- ``service=false``: the pipeline runs in the training process, tuned as it
  should be (``num_parallel_calls=AUTOTUNE``, ``prefetch(AUTOTUNE)``);
- ``service=true``: the same pipeline is handed to the job's tf.data service
  (``ctx.data_service``: the roles ``data_dispatcher`` and ``data_worker``),
  whose workers run it on their own CPUs and stream batches to the trainer.

``train`` reads one iterator for the whole fit, passes repeated: each
iterator of a dataset on the service is a job of the service, and its client
finds the job's tasks up to a second after it starts. ``visits`` is the same
pipeline under a custom loop with a fresh iterator, so a job of the service,
for each epoch, and it writes down which images each epoch saw:
``distributed_epoch`` splits a pass across the data workers (each image at
most once; exactly once when no data worker is lost), ``parallel_epochs``
has every data worker produce the whole pass (docs/design.md §15).
"""

from __future__ import annotations

import json
import os
import time

from examples.digits import build_model, load_data

VISITS_FILE = "visits.jsonl"  # under the job folder: one line per epoch of `visits`
SHARD = 64  # images a shard of the source


def pipeline(x, y, per_replica_batch: int, map_cost: int, service: str | None, processing_mode: str,
             repeat: bool = False):
    """(image, label, index) examples, augmented, batched, passes repeated if ``repeat``; through the tf.data
    service when ``service`` is its address. The augmentation runs where the pipeline runs: here, or on the
    data workers."""
    import numpy as np
    import tensorflow as tf

    weights = tf.constant(np.random.default_rng(0).normal(0, 0.125, (64, 64)).astype("float32"))

    def augment(image, label, index):
        h = image
        for _ in range(map_cost):  # unrolled: map_cost small ops per image, as a parser or augmenter has
            h = tf.tanh(tf.linalg.matvec(weights, h))
        return image + 0.01 * h, label, index

    # The images in shards of SHARD, as files would hold them: distributed_epoch hands the data workers one
    # split of the source at a time, each a call to the dispatcher, and a split of from_tensor_slices is one
    # image (a third of a data worker's time here; docs/design.md §15).
    images, labels, indices = tf.constant(x), tf.constant(y), tf.range(len(x), dtype=tf.int64)

    def shard(i):
        window = slice(i * SHARD, tf.minimum((i + 1) * SHARD, len(x)))
        return tf.data.Dataset.from_tensor_slices((images[window], labels[window], indices[window]))

    ds = (tf.data.Dataset.range(-(-len(x) // SHARD)).shuffle(len(x), seed=1).flat_map(shard)
          .shuffle(4 * SHARD, seed=2)
          .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False).batch(per_replica_batch))
    if repeat:
        ds = ds.repeat()
    if service:
        # compression=None: the trainer's CPU would otherwise undo the workers' compression of every batch
        ds = ds.apply(tf.data.experimental.service.distribute(processing_mode=processing_mode, service=service,
                                                              compression=None))
    return ds.prefetch(tf.data.AUTOTUNE)


def train(ctx, epochs: int = 5, per_replica_batch: int = 32, map_cost: int = 40, service: bool = True,
          processing_mode: str = "distributed_epoch", learning_rate: float = 0.005, hidden_units: int = 64) -> dict:
    """Function entrypoint (one training task: ``one_device``): Keras fit on the input-bound pipeline
    (``hidden_units``: a wider model, for a job whose steps rather than its input bound it)."""
    import tensorflow as tf

    from workers.keras import JobCallback

    if service and not ctx.data_service:
        raise ValueError("service=true needs the job's tf.data service: add roles.data_dispatcher and "
                         "roles.data_worker, or set args.service: false")
    x_tr, y_tr, x_val, y_val = load_data()
    strategy = ctx.make_strategy()
    # One iterator for the whole fit, passes repeated, steps_per_epoch a pass: each iterator of a dataset on
    # the service is a job of its own, which its client finds up to a second later (docs/design.md §15).
    ds = pipeline(x_tr, y_tr, per_replica_batch, map_cost, ctx.data_service if service else None, processing_mode,
                  repeat=True)
    train_ds = ds.map(lambda image, label, index: (image, label))
    steps = -(-len(x_tr) // per_replica_batch)
    with strategy.scope():
        model = build_model(hidden_units)
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(train_ds, epochs=epochs, steps_per_epoch=steps, verbose=2,
              callbacks=[JobCallback(ctx, global_batch_size=per_replica_batch)])
    seconds = time.perf_counter() - started
    val = model.evaluate(tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(256), verbose=0,
                         return_dict=True)
    step = int(model.optimizer.iterations.numpy())
    return {"val_accuracy": float(val["accuracy"]), "step": step, "seconds": seconds,
            "steps_per_s": step / seconds if seconds else 0.0}


def visits(ctx, epochs: int = 8, per_replica_batch: int = 32, map_cost: int = 20,
           processing_mode: str = "distributed_epoch") -> dict:
    """A custom loop over the service's pipeline that appends, for each epoch, the images it saw to the job
    folder's ``visits.jsonl`` (with the epoch's start and end and the process), reports every step and
    checkpoints every epoch, so a restart resumes at the next one."""
    import tensorflow as tf

    from workers.keras import restore, save

    x_tr, y_tr, _, _ = load_data()
    model = build_model()
    model.compile(optimizer=tf.keras.optimizers.Adam(0.005))  # holds the optimizer for checkpoints
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    initial_epoch = restore(ctx, model)
    ds = pipeline(x_tr, y_tr, per_replica_batch, map_cost, ctx.data_service, processing_mode)

    @tf.function
    def step_fn(image, label):
        with tf.GradientTape() as tape:
            loss = loss_fn(label, model(image, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for epoch in range(initial_epoch, epochs):
        began, seen = time.time(), []
        for image, label, index in ds:  # a fresh iterator: a new job of the service
            step_fn(image, label)
            seen += index.numpy().tolist()
            ctx.report({"images": len(seen)}, step=int(model.optimizer.iterations.numpy()))
        step = int(model.optimizer.iterations.numpy())
        record = {"epoch": epoch + 1, "began": began, "ended": time.time(), "pid": os.getpid(), "ids": seen}
        with open(os.path.join(ctx.job_dir, VISITS_FILE), "a") as f:
            f.write(json.dumps(record) + "\n")
        ctx.report({"epoch": epoch + 1}, step=step, total_epochs=epochs)
        save(ctx, model, step, epoch=epoch + 1)
    return {"step": int(model.optimizer.iterations.numpy()), "initial_epoch": initial_epoch}
