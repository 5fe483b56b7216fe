"""`tfray predict` on a real Ray with a real TensorFlow model: every input row predicted and written once, even
when a prediction actor is SIGKILLed with a batch in flight (docs/design.md §14).

The model is a tiny Keras MLP trained for one epoch on sklearn's digits, saved once for the module where a
job's exported model lives (``<job>/model``); the runs are small (1,797 rows), so the module's cost is
mostly each actor's TensorFlow import.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from controller import api
from controller.spec import parse_spec
from tests.integration.conftest import REPO, assert_nothing_left

pytestmark = pytest.mark.integration


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target.astype("int64")


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A job spec whose job folder holds an exported model (as ctx.save_model leaves it), and the digits as
    Parquet (pixels as one list column, labels, no id) and as CSV (64 columns, an id column)."""
    root = tmp_path_factory.mktemp("predict")
    spec = parse_spec({"name": "digits-predict", "strategy": "multi_worker_mirrored",
                       "roles": {"worker": {"count": 1, "resources": {"cpu": 1}}},
                       "entrypoint": {"function": "examples.digits:train"}, "storage_path": str(root / "runs"),
                       "predict": {"concurrency": 2, "batch_size": 64, "price_per_node_hour": 3.6}},
                      base_dir=REPO)
    x, y = digits()
    save_tiny_model(x, y, spec.job_dir / "model")
    pq.write_table(pa.table({"pixels": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 64),
                             "label": y}), root / "digits.parquet", row_group_size=300)
    columns = {f"p{i}": x[:, i] for i in range(64)}
    import pandas as pd

    pd.DataFrame({"digit_id": np.arange(len(x)) * 7 + 3, **columns}).to_csv(root / "digits.csv", index=False)
    return spec, root, x, y


def save_tiny_model(x, y, path: Path) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Input(shape=(64,)), tf.keras.layers.Dense(16, activation="relu"),
                                 tf.keras.layers.Dense(10)])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    model.save(str(path))


def test_a_killed_actor_costs_a_retry_and_no_row_is_lost_or_written_twice(local_ray, job):
    spec, root, x, y = job
    out = root / "killed"
    result = api.predict(spec, str(root / "digits.parquet"), str(out), labels="label", fault="kill@batch=2")
    table = pq.read_table(out)
    rows = table.column("row").to_pylist()
    assert sorted(rows) == list(range(len(x))), "every input row once, by its number in the input"
    assert result.rows == len(x) and result.restarts >= 1, result
    by_row = dict(zip(rows, table.column("label").to_pylist()))
    assert [by_row[i] for i in range(len(x))] == y.tolist(), "each row's number names its own input row"
    assert result.metrics["accuracy"] > 0.5 and result.metrics["loss"] > 0
    assert result.cost == pytest.approx(result.node_s / 3600 * 3.6)
    assert_nothing_left()


def test_the_jobs_exported_model_over_a_csv_with_its_own_ids(local_ray, job):
    spec, root, x, _ = job
    out = root / "csv"
    result = api.predict(spec, str(root / "digits.csv"), str(out), id_column="digit_id", concurrency=1)
    table = pq.read_table(out)
    assert sorted(table.column("digit_id").to_pylist()) == (np.arange(len(x)) * 7 + 3).tolist()
    assert len(table.column("outputs")[0].as_py()) == 10 and "predicted_class" in table.column_names
    assert result.actors == 1 and result.model.endswith("digits-predict/model")
    with pytest.raises(api.SpecError, match="--output .*exists"):
        api.predict(spec, str(root / "digits.csv"), str(out), id_column="digit_id")


def test_a_checkpoint_predicts_through_the_jobs_model_function(job, tmp_path):
    """--checkpoint: the weights of a checkpoint as tfray's jobs write it (tf.train.Checkpoint(model=...,
    optimizer=...), prefix ckpt) in the model the job's own function builds; the actor's class, without Ray."""
    import tensorflow as tf

    from protocol.predict import PredictorConfig
    from workers.predictor import Predictor

    spec, _, x, y = job
    trained = tf.keras.models.load_model(str(spec.job_dir / "model"))
    folder = tmp_path / "ckpt-000000042"
    tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).write(str(folder / "ckpt"))
    config = PredictorConfig(model_path=str(folder), checkpoint=str(folder), id_column="row", labels_column="label",
                             build_function="examples.digits:build_model", build_args={"hidden_units": 16,
                                                                                      "epochs": 3},
                             sys_path=(str(REPO),))
    table = Predictor(config)({"row": np.arange(50), "label": y[:50], "pixels": x[:50]})
    expected = trained.predict_on_batch(x[:50]).argmax(axis=1)
    assert table.column("predicted_class").to_pylist() == expected.tolist()
    assert "correct" in table.column_names and "loss" not in table.column_names  # built uncompiled: no loss
