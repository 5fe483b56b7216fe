"""`tfray serve`'s pure parts: TF Serving's routes and bodies (workers/serving_rest.py, NumPy only) and what the
command refuses before Ray starts (controller/predict/serving.py, the CLI's exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from controller.predict.serving import ServeOptions, check_room, plan_serve
from controller.spec import SpecError, parse_spec
from workers.serving_rest import RestError, metadata_answer, parse_predict, predict_answer, route, status_answer

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("method", "path", "verb"), [
    ("POST", "/v1/models/digits:predict", "predict"), ("POST", "/v1/models/digits/versions/1:predict", "predict"),
    ("GET", "/v1/models/digits", "status"), ("GET", "/v1/models/digits/", "status"),
    ("GET", "/v1/models/digits/metadata", "metadata"), ("GET", "/v1/models/digits/versions/1/metadata", "metadata")])
def test_tf_servings_routes(method, path, verb):
    assert route(method, path, "digits", "1").verb == verb


@pytest.mark.parametrize(("method", "path", "status", "words"), [
    ("POST", "/v1/models/other:predict", 404, "model 'other'"),
    ("POST", "/v1/models/digits/versions/2:predict", 404, "version 2"),
    ("GET", "/v1/models/digits:predict", 405, "takes POST"),
    ("POST", "/v1/models/digits", 405, "takes GET"),
    ("POST", "/v1/models/digits:classify", 400, ":predict only"),
    ("GET", "/predict", 404, "not a TF Serving route")])
def test_a_wrong_route_is_answered_with_tf_servings_status_and_why(method, path, status, words):
    with pytest.raises(RestError, match=words) as caught:
        route(method, path, "digits", "1")
    assert caught.value.status == status


def test_the_row_and_columnar_formats_and_named_inputs():
    rows, columnar = parse_predict(json.dumps({"instances": [[1, 2], [3, 4]]}).encode())
    assert rows.shape == (2, 2) and not columnar
    named, _ = parse_predict(json.dumps({"instances": [{"x": [1, 2]}, {"x": [3, 4]}]}).encode())
    assert np.array_equal(named, rows)
    columns, columnar = parse_predict(json.dumps({"inputs": {"x": [[1, 2]]}}).encode())
    assert columns.shape == (1, 2) and columnar


@pytest.mark.parametrize(("body", "words"), [
    (b"{", "not JSON"), (b"[1]", "either"), (b'{"instances": [], "inputs": []}', "either"),
    (b'{"instances": []}', "non-empty"), (b'{"instances": [[1, 2], [3]]}', "ragged"),
    (b'{"instances": [{"a": 1, "b": 2}]}', "one input"), (b'{"inputs": 3}', "no examples")])
def test_a_bad_body_is_refused_with_why(body, words):
    with pytest.raises(RestError, match=words) as caught:
        parse_predict(body)
    assert caught.value.status == 400


def test_answers_as_tf_serving_gives_them():
    one = {"outputs": np.array([[0.5, 1.5]])}
    assert predict_answer(one, columnar=False) == {"predictions": [[0.5, 1.5]]}
    assert predict_answer(one, columnar=True) == {"outputs": [[0.5, 1.5]]}
    two = {"a": np.array([1, 2]), "b": np.array([3, 4])}
    assert predict_answer(two, columnar=False) == {"predictions": [{"a": 1, "b": 3}, {"a": 2, "b": 4}]}
    assert predict_answer(two, columnar=True) == {"outputs": {"a": [1, 2], "b": [3, 4]}}
    assert status_answer("1")["model_version_status"][0]["state"] == "AVAILABLE"
    meta = metadata_answer("m", "1", {"x": ("float32", (None, 64))}, {"y": ("int64", (None,))})
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["x"]["dtype"] == "DT_FLOAT" and signature["outputs"]["y"]["dtype"] == "DT_INT64"
    assert [d["size"] for d in signature["inputs"]["x"]["tensor_shape"]["dim"]] == ["-1", "64"]


@pytest.fixture
def spec(tmp_path):
    model = tmp_path / "runs" / "j" / "model"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"")
    return parse_spec({"name": "j", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 1}},
                       "entrypoint": {"function": "examples.digits:train"}, "storage_path": str(tmp_path / "runs")},
                      base_dir=REPO)


def test_the_plan_takes_the_jobs_model_and_the_replica_range(spec):
    request = plan_serve(spec, ServeOptions(min_replicas=1, max_replicas=3, cpus_per_replica=2), [str(REPO)])
    assert request.config.name == "j" and request.app_name == "tfray-j" and request.config.threads == 2
    assert request.config.predictor.model_path.endswith("runs/j/model") and request.max_replicas == 3
    with pytest.raises(SpecError, match="this Ray has 2"):
        check_room(plan_serve(spec, ServeOptions(min_replicas=3), []), cpus=2)


@pytest.mark.parametrize(("options", "words"), [
    ({"name": "a/b"}, "--name"), ({"port": 70000}, "--port 70000"), ({"min_replicas": 0}, "--min-replicas 0"),
    ({"min_replicas": 3, "max_replicas": 2}, "--max-replicas 2"), ({"cpus_per_replica": 0}, "--cpus-per-replica"),
    ({"gpus_per_replica": -1}, "--gpus-per-replica"), ({"max_batch_size": 0}, "--max-batch-size"),
    ({"batch_wait_ms": -1}, "--batch-wait-ms"), ({"model": "/nowhere"}, "--model /nowhere: it does not exist")])
def test_bad_options_are_refused_naming_the_flag(spec, options, words):
    with pytest.raises(SpecError, match=words):
        plan_serve(spec, ServeOptions(**options), [])


def test_the_command_refuses_bad_input_before_ray_with_exit_2(spec, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"name": "j", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 1}},
                               "entrypoint": {"function": "examples.digits:train"},
                               "storage_path": str(tmp_path / "runs")}))
    for flags, words in ((["--replicas", "2", "--min-replicas", "1"], "both given"), (["--for", "0"], "--for 0"),
                         (["--port", "0"], "--port 0")):
        done = subprocess.run([sys.executable, "-m", "controller", "serve", str(job), *flags], cwd=REPO, check=False,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
