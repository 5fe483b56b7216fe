"""The GPU check's job (``bench/gpu.py``): a small convolutional net on synthetic images, and what each task
logs about the devices it trains on.

Used through ``bench/digits_bench.py`` with ``model="conv"``, so the three
ways of launching it (this project, by hand, Ray Train) train it the same
way. The images are random (seeded) 32x32x3 arrays with random labels: what
is measured is steps per second and recovery on a GPU, not accuracy, and
nothing is downloaded. The devices a task sees (``CUDA_VISIBLE_DEVICES``,
TensorFlow's GPUs, their memory limit) and its GPU memory's peak go to the
event log, where the check reads them.
"""

from __future__ import annotations

import os

from bench.events import log_event

IMAGES = 2048  # synthetic examples (repeated): enough for any batch the check uses
SHAPE = (32, 32, 3)
CLASSES = 10


def build(tf, strategy, events: str, task: str, *, per_replica_batch: int, learning_rate: float):
    """(model, dataset, global batch): the conv net compiled under ``strategy`` and its synthetic input."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((IMAGES, *SHAPE), dtype=np.float32)
    y = rng.integers(0, CLASSES, IMAGES)
    log_event(events, "data_loaded", task=task)
    global_batch = per_replica_batch * strategy.num_replicas_in_sync
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = (tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(global_batch).prefetch(2)
               .with_options(options))
    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.layers.Input(shape=SHAPE),
            tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            tf.keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            tf.keras.layers.Conv2D(128, 3, strides=2, padding="same", activation="relu"),
            tf.keras.layers.GlobalAveragePooling2D(),
            tf.keras.layers.Dense(CLASSES),
        ])
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    log_event(events, "model_built", task=task)
    return model, dataset, global_batch


def log_devices(tf, strategy, events: str, task: str) -> None:
    """What this task trains on: its CUDA_VISIBLE_DEVICES, TensorFlow's GPUs and their memory limits."""
    limits = []
    for gpu in tf.config.list_physical_devices("GPU"):
        configured = tf.config.get_logical_device_configuration(gpu)
        limits.append(configured[0].memory_limit if configured else None)
    log_event(events, "devices", task=task, cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
              gpus=[d.name for d in tf.config.list_logical_devices("GPU")], memory_limits_mb=limits,
              memory_growth=os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"), replicas=strategy.num_replicas_in_sync)


def log_gpu_memory(tf, events: str, task: str) -> None:
    """The peak GPU memory TensorFlow's allocator held on each of this task's GPUs (MiB)."""
    peaks = [tf.config.experimental.get_memory_info(d.name)["peak"] / 2**20
             for d in tf.config.list_logical_devices("GPU")]
    if peaks:
        log_event(events, "gpu_memory", task=task, peak_mb=peaks)
