"""Multi-worker Keras training at its plainest: a `fit` that saves nothing; it knows nothing of tfray.

No checkpoint, no backup, no model saved: under tfray its `fit` still goes
on after a restart from the epoch after the last one finished, because
tfray gives every `fit` of a script TensorFlow's BackupAndRestore
(`entrypoint.keras_backup`, on by default). The data ships with scikit-learn.
"""

import argparse
import time

import tensorflow as tf
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--per_replica_batch", type=int, default=32)
parser.add_argument("--seconds_per_epoch", type=float, default=0.0, help="slow each epoch down (demos, tests)")
args = parser.parse_args()

strategy = tf.distribute.MultiWorkerMirroredStrategy()
digits = load_digits()
x = (digits.data / 16.0).astype("float32")
y = digits.target.astype("int64")
global_batch = args.per_replica_batch * strategy.num_replicas_in_sync
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
# One pass over the data per epoch: fit makes a fresh iterator each epoch (docs/design.md §4 says why).
dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(global_batch, drop_remainder=True)
           .with_options(options))

with strategy.scope():
    model = tf.keras.Sequential([
        tf.keras.layers.Input(shape=(64,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(10),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.005),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

slow = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: time.sleep(args.seconds_per_epoch))
model.fit(dataset, epochs=args.epochs, callbacks=[slow], verbose=2)
