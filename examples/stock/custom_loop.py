"""A multi-worker custom training loop as TensorFlow's guide writes it; it knows nothing of tfray.

MultiWorkerMirroredStrategy from TF_CONFIG, a tf.train.CheckpointManager
kept in AIP_CHECKPOINT_DIR (the chief writes the real one, the others a
temporary copy they delete, as the guide's multi-worker saving rule says),
restored at start, so a restart resumes from the last epoch saved.

    python -m controller run cluster_configs/jobs/stock_custom_loop.yaml
"""

import argparse
import json
import os
import shutil
import time

import tensorflow as tf
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--per_replica_batch", type=int, default=32)
parser.add_argument("--seconds_per_epoch", type=float, default=0.0, help="slow each epoch down (demos, tests)")
args = parser.parse_args()

strategy = tf.distribute.MultiWorkerMirroredStrategy()
task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {"type": "chief", "index": 0})
is_chief = task["type"] == "chief" or (task["type"] == "worker" and task["index"] == 0
                                       and "chief" not in json.loads(os.environ.get("TF_CONFIG", "{}"))
                                       .get("cluster", {}))
checkpoint_dir = os.environ.get("AIP_CHECKPOINT_DIR", "/tmp/custom_loop/checkpoints")
write_dir = checkpoint_dir if is_chief else os.path.join(checkpoint_dir, f"workertemp_{task['index']}")

digits = load_digits()
x = (digits.data / 16.0).astype("float32")
y = digits.target.astype("int64")
global_batch = args.per_replica_batch * strategy.num_replicas_in_sync
steps_per_epoch = len(x) // global_batch
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
dataset = strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x)).repeat().batch(global_batch).with_options(options))

with strategy.scope():
    model = tf.keras.Sequential([tf.keras.layers.Input(shape=(64,)), tf.keras.layers.Dense(64, activation="relu"),
                                 tf.keras.layers.Dense(10)])
    optimizer = tf.keras.optimizers.Adam(0.005)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE)

checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
manager = tf.train.CheckpointManager(checkpoint, directory=write_dir, max_to_keep=3)
latest = tf.train.latest_checkpoint(checkpoint_dir)  # every task restores the chief's
if latest:
    checkpoint.restore(latest)
    print(f"restored {latest}: epoch {int(epoch.numpy())}, step {int(optimizer.iterations.numpy())}", flush=True)


@tf.function
def train_step(iterator):
    def step(inputs):
        features, labels = inputs
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(loss_fn(labels, model(features, training=True)),
                                              global_batch_size=global_batch)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(step, args=(next(iterator),)), axis=None)


iterator = iter(dataset)
while int(epoch.numpy()) < args.epochs:
    total = 0.0
    for _ in range(steps_per_epoch):
        total += float(train_step(iterator))
    epoch.assign_add(1)
    print(f"Epoch: {int(epoch.numpy())}, train_loss: {total / steps_per_epoch:.4f}", flush=True)
    manager.save()
    if not is_chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    time.sleep(args.seconds_per_epoch)
