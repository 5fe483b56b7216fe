"""The batch-prediction actor's class: the model loaded once per actor, then one batch of rows at a time.

Ray Data's ``map_batches`` builds one :class:`Predictor` per actor of its pool from a
``protocol.predict.PredictorConfig`` (``tfray predict``, docs/design.md §14). It reads NumPy batches (Ray
Data turns tensor and list columns into arrays) and returns one Arrow table per batch: the id column, the
model's outputs as plain list columns (any Parquet reader takes them, Ray or not), and with labels the
label, whether the predicted class is right, and the model's own loss of each row.

Keras models are loaded with tf-keras (``TF_USE_LEGACY_KERAS=1``, as in the tasks), which keeps a model's
compiled loss; any other SavedModel is called through its ``serving_default`` signature.
"""

from __future__ import annotations

import importlib
import inspect
import os
import signal
import sys
from pathlib import Path

import numpy as np

from protocol.layout import CKPT_PREFIX
from protocol.predict import CORRECT, LABEL, LOSS, OUTPUTS, PREDICTED, PredictorConfig


class Predictor:
    """One actor's model. ``threads``: TensorFlow's thread pools, the CPUs the actor reserved (TF does not read
    ``OMP_NUM_THREADS``, which is all Ray sets)."""

    def __init__(self, config: PredictorConfig, threads: int = 0):
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        if threads > 0:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.config = config
        self.batches = 0
        self.keras, self.signature_fn, self.loss = None, None, None
        if config.build_function:
            self.keras = self._from_checkpoint(tf)
        elif _is_keras(config.model_path):
            self.keras = tf.keras.models.load_model(config.model_path, compile=True)
        else:
            self.signature_fn = tf.saved_model.load(config.model_path).signatures["serving_default"]
        if self.keras is not None and config.labels_column and getattr(self.keras, "loss", None):
            loss = tf.keras.losses.get(self.keras.loss)
            if hasattr(loss, "reduction"):  # a Loss object: one value per row, not the batch's mean
                loss = loss.__class__.from_config({**loss.get_config(), "reduction": "none"})
            self.loss = loss

    def _from_checkpoint(self, tf):
        """The job's model-building function's model with a checkpoint's weights (the optimizer's are left)."""
        for path in self.config.sys_path:
            if path not in sys.path:
                sys.path.insert(0, path)
        module, _, name = self.config.build_function.partition(":")
        build = getattr(importlib.import_module(module), name)
        params = inspect.signature(build).parameters
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        model = build(**{k: v for k, v in self.config.build_args.items() if takes_all or k in params})
        prefix = self.config.checkpoint
        if Path(prefix).is_dir():
            prefix = str(Path(prefix) / CKPT_PREFIX)
        tf.train.Checkpoint(model=model).read(prefix).expect_partial()
        return model

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        self.batches += 1
        if self.config.kill_at_batch == self.batches and _first_to_claim(self.config.fault_marker):
            os.kill(os.getpid(), signal.SIGKILL)  # the batch in flight: Ray Data must retry it elsewhere
        features = self._features(batch)
        outputs = self.predict_array(features)
        columns = {self.config.id_column: pa.array(batch[self.config.id_column])}
        for name, values in outputs.items():
            columns[name] = _arrow(values)
        main = outputs.get(OUTPUTS)
        predicted = None
        if main is not None and main.ndim == 2 and main.shape[1] > 1:
            predicted = main.argmax(axis=1)
            columns[PREDICTED] = pa.array(predicted)
        if self.config.labels_column:
            labels = batch[self.config.labels_column]
            columns[LABEL] = pa.array(labels)
            if predicted is not None:
                columns[CORRECT] = pa.array((predicted == labels.astype(predicted.dtype)).astype("int8"))
            if self.loss is not None and main is not None:
                columns[LOSS] = pa.array(np.asarray(self.loss(labels, main), dtype="float64").reshape(-1))
        return pa.table(columns)

    def _features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        skip = {self.config.id_column, self.config.labels_column}
        names = self.config.feature_columns or tuple(c for c in batch if c not in skip)
        arrays = [_dense(batch[name]) for name in names]
        x = arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=1)
        return x.astype(self.input_dtype(), copy=False)

    def input_dtype(self) -> str:
        if self.keras is not None:
            return self.keras.inputs[0].dtype.name if getattr(self.keras, "inputs", None) else "float32"
        spec = next(iter(self.signature_fn.structured_input_signature[1].values()))
        return spec.dtype.name

    def signature(self) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """The model's inputs and outputs: name -> (dtype name, shape with None for a size not fixed)."""
        if self.keras is not None:
            def named(tensors) -> dict[str, tuple]:
                return {t.name.split(":")[0]: (t.dtype.name, tuple(t.shape)) for t in tensors}

            return named(self.keras.inputs), named(self.keras.outputs)

        def specs(named: dict) -> dict[str, tuple]:
            return {name: (spec.dtype.name, tuple(spec.shape)) for name, spec in named.items()}

        return specs(self.signature_fn.structured_input_signature[1]), specs(self.signature_fn.structured_outputs)

    def predict_array(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.keras is not None:
            out = self.keras.predict_on_batch(x)
            if isinstance(out, dict):
                return {f"{OUTPUTS}_{k}": np.asarray(v) for k, v in out.items()}
            if isinstance(out, (list, tuple)):
                return {f"{OUTPUTS}_{i}": np.asarray(v) for i, v in enumerate(out)}
            return {OUTPUTS: np.asarray(out)}
        (name,) = self.signature_fn.structured_input_signature[1]
        out = {k: v.numpy() for k, v in self.signature_fn(**{name: x}).items()}
        return {OUTPUTS: next(iter(out.values()))} if len(out) == 1 else {f"{OUTPUTS}_{k}": v for k, v in out.items()}


def _is_keras(path: str) -> bool:
    """A Keras model: a .keras/.h5 file, or a SavedModel that tf-keras wrote (its metadata beside it)."""
    p = Path(path)
    return p.suffix in (".keras", ".h5") or (p / "keras_metadata.pb").exists()


def _dense(column: np.ndarray) -> np.ndarray:
    """A column as a dense array: a column of arrays (Ray Data's lists, variable-shaped tensors) stacked."""
    return np.stack(list(column)) if column.dtype == object else column


def _arrow(values: np.ndarray):
    """A model output as an Arrow column: numbers for one value a row, a fixed-size list for several."""
    import pyarrow as pa

    if values.ndim == 1:
        return pa.array(values)
    flat = values.reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def _first_to_claim(marker: str | None) -> bool:
    """True for the one process that creates ``marker`` (a fault fires once a run, not once an actor's life;
    the marker's folder is the driver's, made here on another node: there the fault fires once more)."""
    if marker is None:
        return True
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False
