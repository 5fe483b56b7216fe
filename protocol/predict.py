"""What the driver sends each batch-prediction actor, and the columns it writes back: one copy of the contract.

``tfray predict`` (``controller/predict/``, ``controller/ray/batch.py``) runs Ray Data's ``map_batches`` with
the class :data:`PREDICTOR_CLASS` names, one instance per actor, each built from one
:class:`PredictorConfig`. The controller names the class by a string, as it names the task actor's
(``protocol.wire.TASK_ACTOR_CLASS``): it never imports ``workers/``, where TensorFlow is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PREDICTOR_CLASS = "workers.predictor:Predictor"  # module:class of the callable class map_batches runs

ROW_NUMBER = "row"  # the id column when the input has none of its own: the row's number in the input, from 0
OUTPUTS = "outputs"  # the model's output for the row (a list of numbers; one column per output if it has several)
PREDICTED = "predicted_class"  # argmax of a 2-D output with more than one column (a classifier's answer)
LABEL = "label"  # the input's --labels column, copied
CORRECT = "correct"  # 1 where predicted_class equals the label, else 0 (a classifier with --labels)
LOSS = "loss"  # the model's own compiled loss of the row (a Keras model compiled with one, with --labels)


@dataclass(frozen=True)
class PredictorConfig:
    """Everything one prediction actor needs to load the model and turn a batch into rows of output.

    The model is ``model_path`` (a SavedModel or Keras model folder, or a ``.keras``/``.h5`` file), or, when
    ``build_function`` is set, the Keras model that function returns with the weights of the checkpoint
    ``checkpoint`` (a ``tf.train.Checkpoint(model=...)`` prefix, as tfray's jobs write them).
    ``feature_columns`` empty: every column but the id and the labels.
    ``kill_at_batch``: a fault (``--fault kill@batch=N``): the actor's process SIGKILLs itself while its Nth
    batch is in flight, once per run (the first actor to create ``fault_marker`` does it)."""

    model_path: str
    id_column: str
    feature_columns: tuple[str, ...] = ()
    labels_column: str | None = None
    checkpoint: str | None = None
    build_function: str | None = None
    build_args: dict = field(default_factory=dict)
    sys_path: tuple[str, ...] = ()
    kill_at_batch: int | None = None
    fault_marker: str | None = None
