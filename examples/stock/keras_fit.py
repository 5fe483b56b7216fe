"""Multi-worker Keras training as TensorFlow's and Vertex AI's guides write it; it knows nothing of tfray.

It reads TF_CONFIG through MultiWorkerMirroredStrategy, keeps its own
backups with BackupAndRestore (it resumes from them after a restart),
checkpoints weights with ModelCheckpoint, logs to TensorBoard, and saves
the model at the end, all in the folders Vertex AI names in AIP_MODEL_DIR,
AIP_CHECKPOINT_DIR and AIP_TENSORBOARD_LOG_DIR (with local defaults so it
also runs alone). The data ships with scikit-learn.

    python -m controller run cluster_configs/jobs/stock_keras_fit.yaml
"""

import argparse
import os

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--per_replica_batch", type=int, default=32)
parser.add_argument("--seconds_per_epoch", type=float, default=0.0, help="slow each epoch down (demos, tests)")
args = parser.parse_args()

model_dir = os.environ.get("AIP_MODEL_DIR", "/tmp/keras_fit/model")
checkpoint_dir = os.environ.get("AIP_CHECKPOINT_DIR", "/tmp/keras_fit/checkpoints")
tensorboard_dir = os.environ.get("AIP_TENSORBOARD_LOG_DIR", "/tmp/keras_fit/logs")

strategy = tf.distribute.MultiWorkerMirroredStrategy()
digits = load_digits()
x = (digits.data / 16.0).astype("float32")
y = digits.target.astype("int64")
global_batch = args.per_replica_batch * strategy.num_replicas_in_sync
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).repeat().batch(global_batch)
           .with_options(options))
steps_per_epoch = len(x) // global_batch

with strategy.scope():
    model = tf.keras.Sequential([
        tf.keras.layers.Input(shape=(64,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(10),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.005),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


class SlowEpochs(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if args.seconds_per_epoch:
            import time

            time.sleep(args.seconds_per_epoch)


callbacks = [
    tf.keras.callbacks.BackupAndRestore(backup_dir=os.path.join(checkpoint_dir, "backup")),
    tf.keras.callbacks.ModelCheckpoint(filepath=os.path.join(checkpoint_dir, "weights-{epoch:02d}"),
                                       save_weights_only=True),
    tf.keras.callbacks.TensorBoard(log_dir=tensorboard_dir),
    SlowEpochs(),
]
model.fit(dataset, epochs=args.epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=2)
print(f"trained to step {int(model.optimizer.iterations.numpy())}; accuracy "
      f"{float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y)):.4f}")
model.save(model_dir)
