"""Parameter-server training as TensorFlow's guide writes it; it knows nothing of tfray.

Under Kubeflow TFJob or Vertex AI every task runs this script and the ps and
worker tasks start their servers below; under tfray the ps and workers are
served by tfray and only the coordinator (the chief) runs it. It resolves
the cluster from TF_CONFIG, trains with a ClusterCoordinator, keeps a
CheckpointManager in AIP_CHECKPOINT_DIR (resuming from it), and saves the
model in AIP_MODEL_DIR.

    python -m controller run cluster_configs/jobs/stock_parameter_server.yaml
"""

import argparse
import os
import time

import tensorflow as tf
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--steps_per_epoch", type=int, default=50)
parser.add_argument("--per_worker_batch", type=int, default=32)
args = parser.parse_args()

resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
if resolver.task_type in ("worker", "ps"):  # a server: it serves until the job is torn down
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                  task_index=resolver.task_id, protocol=resolver.rpc_layer or "grpc", start=True)
    server.join()

strategy = tf.distribute.ParameterServerStrategy(resolver)
coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
digits = load_digits()
x = (digits.data / 16.0).astype("float32")
y = digits.target.astype("int64")

with strategy.scope():
    model = tf.keras.Sequential([tf.keras.layers.Input(shape=(64,)), tf.keras.layers.Dense(64, activation="relu"),
                                 tf.keras.layers.Dense(10)])
    optimizer = tf.keras.optimizers.Adam(0.005)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.NONE)

checkpoint_dir = os.environ.get("AIP_CHECKPOINT_DIR", "/tmp/parameter_server/checkpoints")
checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
manager = tf.train.CheckpointManager(checkpoint, directory=checkpoint_dir, max_to_keep=3)
if manager.restore_or_initialize():
    print(f"restored {manager.latest_checkpoint}: epoch {int(epoch.numpy())}", flush=True)


def dataset_fn():
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x)).repeat().batch(args.per_worker_batch)


iterator = iter(coordinator.create_per_worker_dataset(dataset_fn))


@tf.function
def train_step(iterator):
    def step(features, labels):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(loss_fn(labels, model(features, training=True)),
                                              global_batch_size=args.per_worker_batch)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    features, labels = next(iterator)
    return strategy.run(step, args=(features, labels))


while int(epoch.numpy()) < args.epochs:
    started = time.perf_counter()
    for _ in range(args.steps_per_epoch):
        coordinator.schedule(train_step, args=(iterator,))
    coordinator.join()
    epoch.assign_add(1)
    manager.save()
    print(f"Epoch {int(epoch.numpy())}: step {int(optimizer.iterations.numpy())}, "
          f"{args.steps_per_epoch / (time.perf_counter() - started):.1f} steps/s", flush=True)
model.save(os.environ.get("AIP_MODEL_DIR", "/tmp/parameter_server/model"))
