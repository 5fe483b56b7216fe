"""Digits as a plain TensorFlow script: reads TF_CONFIG, as under Kubeflow TFJob or Vertex AI.

Run by the controller (``entrypoint: {script: ...}``) it gets TF_CONFIG and
its task context from the environment; run by hand without TF_CONFIG it
trains alone. Flags: ``--epochs``, ``--per_replica_batch``, ``--learning_rate``.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported: tf-keras for multi-worker fit

import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from examples.digits import fit  # noqa: E402
from workers import get_context  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--per_replica_batch", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.005)
    args = parser.parse_args()
    multi_worker = bool(json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster"))
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if multi_worker else tf.distribute.get_strategy()
    result = fit(get_context(), strategy, epochs=args.epochs, per_replica_batch=args.per_replica_batch,
                 learning_rate=args.learning_rate)
    print(f"final validation accuracy {result['val_accuracy']:.4f} at step {result['step']}")


if __name__ == "__main__":
    main()
