"""Digits: a Keras MLP on sklearn's 8x8 digit images under MultiWorkerMirroredStrategy.

The data ships inside scikit-learn (1,797 images), so nothing is downloaded.
``train(ctx, ...)`` is the function entrypoint (``examples.digits:train``);
``examples/digits_script.py`` is the same training as a plain TF script that
reads ``TF_CONFIG``. The dataset batch is the *global* batch: per-replica
batch x ``strategy.num_replicas_in_sync``. The trained model is exported
(``ctx.save_model``) as a SavedModel in the job folder's ``model/``.
"""

from __future__ import annotations

import numpy as np

VALIDATION_FRACTION = 0.2


def digits_table() -> tuple[np.ndarray, np.ndarray]:
    """(pixels 0-16, labels) of the 1,797 images, read from the file that ships inside scikit-learn: the same
    numbers ``sklearn.datasets.load_digits`` returns, without importing sklearn. That import (scipy with it)
    takes about 2 s of CPU in every training process, at every start and restart, against 0.2 s for the file;
    on the 2-core CI machine that was minutes of the suite. ``load_digits`` is the fallback if the file moves."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else ""
    if not os.path.exists(path):
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data, digits.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


def load_data(seed: int = 0):
    """(x_train, y_train, x_val, y_val) from sklearn's digits, scaled to [0, 1], split 80/20."""
    pixels, labels = digits_table()
    x = (pixels / 16.0).astype("float32")
    y = labels.astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(len(x) * VALIDATION_FRACTION)
    val, tr = order[:n_val], order[n_val:]
    return x[tr], y[tr], x[val], y[val]


def save_parquet(path: str) -> str:
    """Every digit as one Parquet file for `tfray predict` (README): ``pixels`` (64 numbers in [0, 1]) and
    ``label``; no id column, so the output numbers the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw, labels = digits_table()
    pixels = (raw / 16.0).astype("float32")
    table = pa.table({"pixels": pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), 64),
                      "label": labels.astype("int64")})
    pq.write_table(table, path)
    return path


def build_model(hidden_units: int = 64):
    """The model, untrained and uncompiled: the job's model-building function (the spec's
    ``predict.model_function``: `tfray predict --checkpoint` loads a checkpoint's weights into it)."""
    import tensorflow as tf

    return tf.keras.Sequential([
        tf.keras.layers.Input(shape=(64,)),
        tf.keras.layers.Dense(hidden_units, activation="relu"),
        tf.keras.layers.Dense(10),
    ])


def fit(ctx, strategy, epochs: int = 15, per_replica_batch: int = 32, learning_rate: float = 0.005,
        hidden_units: int = 64) -> dict:
    """Train and evaluate under ``strategy``, reporting and checkpointing through ``ctx``."""
    import tensorflow as tf

    from workers.keras import JobCallback

    x_tr, y_tr, x_val, y_val = load_data()
    global_batch = per_replica_batch * strategy.num_replicas_in_sync
    options = tf.data.Options()
    # In-memory data cannot be sharded by file: every worker reads the whole
    # set and keeps its share of each global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # One pass over the data per epoch, not repeat() with steps_per_epoch: fit then makes a fresh iterator
    # each epoch, while a repeated dataset's lives the whole of fit, and deleting a long-lived tf.data
    # iterator when fit returns can block for tens of seconds (docs/design.md §4).
    train_ds = (tf.data.Dataset.from_tensor_slices((x_tr, y_tr)).shuffle(len(x_tr), seed=1)
                .batch(global_batch, drop_remainder=True).with_options(options))
    val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(global_batch).with_options(options)

    with strategy.scope():
        model = build_model(hidden_units)
        model.compile(
            optimizer=tf.keras.optimizers.Adam(learning_rate),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    # JobCallback resumes where the newest checkpoint left off (mid-epoch too), reports, checkpoints, and
    # saves on a preemption notice: no restore call, no initial_epoch. verbose=2: each task's log gets one
    # `Epoch N/M` line and one line of its loss, accuracy and validation numbers per epoch (no bar redrawn at
    # each step); the console shows the chief's alone, as it shows only the chief's Keras progress.
    model.fit(train_ds, epochs=epochs, validation_data=val_ds, verbose=2,
              callbacks=[JobCallback(ctx, global_batch_size=global_batch)])
    initial_epoch = int(ctx.latest_checkpoint_epoch or 0)
    result = model.evaluate(val_ds, verbose=0, return_dict=True)
    step = int(model.optimizer.iterations.numpy())
    final = {"val_accuracy": float(result["accuracy"]), "val_loss": float(result["loss"]), "step": step,
             "initial_epoch": initial_epoch, "replicas": strategy.num_replicas_in_sync}
    ctx.report({"final_val_accuracy": final["val_accuracy"], "final_val_loss": final["val_loss"]}, step=step)
    # The trained model, for whoever runs the job to load: every task saves (under MWMS saving runs collectives),
    # the chief's SavedModel is the job folder's model/, the others' temporary copies are removed.
    ctx.save_model(model)
    return final


def train(ctx, **kwargs) -> dict:
    """Function entrypoint: the controller calls this in every task with TF_CONFIG set."""
    return fit(ctx, ctx.make_strategy(), **kwargs)
