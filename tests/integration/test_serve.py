"""`tfray serve` on a real Ray Serve with a real TensorFlow model: TF Serving's REST API answered as TF Serving
answers it, and a replica SIGKILLed under load costs no hang and no wrong answer (docs/design.md §14).

The model is test_predict's tiny Keras MLP on sklearn's digits, exported where a job's model lives. Two
replicas on the shared local Ray; the module's cost is mostly their TensorFlow imports.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import ray

from controller import api
from controller.settings import poll_until
from tests.integration.conftest import assert_nothing_left, free_port
from tests.integration.test_predict import job  # noqa: F401 - the module's model and data

pytestmark = pytest.mark.integration
CLIENT_TIMEOUT_S = 30.0  # far past any answer here: a request that takes this long has hung
SERVE_ACTORS = ("ServeController", "ProxyActor", "ServeReplica")


def call(url: str, body: dict | bytes | None = None) -> tuple[int, dict | str]:
    """(HTTP status, answer) of a GET, or of a POST of ``body``: JSON as TF Serving answers, else its text (Ray
    Serve's proxy answers a request whose replica died in plain text)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=CLIENT_TIMEOUT_S) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def live_serve_actors() -> list[dict]:
    return [a for a in ray._private.state.actors().values()
            if a["State"] == "ALIVE" and a["ActorClassName"].startswith(SERVE_ACTORS)]


def test_the_model_answers_as_tf_serving_and_a_killed_replica_costs_no_hang(local_ray, job):  # noqa: F811
    import tensorflow as tf

    spec, _, x, _ = job
    expected = tf.keras.models.load_model(str(spec.job_dir / "model")).predict_on_batch(x)
    endpoint = api.serve(spec, name="digits", port=free_port(), min_replicas=2, max_batch_size=8)
    try:
        url = endpoint.url
        assert call(url) == (200, {"model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
        status, meta = call(url + "/metadata")
        signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
        (tensor,) = signature["inputs"].values()
        assert status == 200 and tensor["dtype"] == "DT_FLOAT" and tensor["tensor_shape"]["dim"][1]["size"] == "64"
        status, rows = call(url + ":predict", {"instances": x[:5].tolist()})
        assert status == 200 and np.allclose(rows["predictions"], expected[:5], atol=1e-5)
        status, columns = call(url + "/versions/1:predict", {"inputs": x[5:7].tolist()})
        assert status == 200 and np.allclose(columns["outputs"], expected[5:7], atol=1e-5)
        assert call(url.replace("/digits", "/other") + ":predict", {"instances": [x[0].tolist()]})[0] == 404
        status, wrong = call(url + ":predict", {"instances": [[1.0, 2.0]]})
        assert status == 400 and "64" in wrong["error"]
        assert call(url + ":predict", b"not json")[0] == 400

        # Under load from 4 clients, one replica is SIGKILLed: each answer is right or a clear error, none hangs.
        answers, errors = [], []

        def client(first: int) -> None:
            for i in range(first, first + 60):
                try:
                    status, body = call(url + ":predict", {"instances": [x[i].tolist()]})
                except Exception as err:  # noqa: BLE001 - a hang (timeout) or a dropped connection: what we count
                    errors.append(f"{type(err).__name__}: {err}")
                    continue
                answers.append((i, status, body))

        clients = [threading.Thread(target=client, args=(k * 60,)) for k in range(4)]
        for thread in clients:
            thread.start()
        poll_until(lambda: len(answers) >= 20, 60, 0.05, "the first 20 answers under load")
        (victim, *_) = [a for a in live_serve_actors() if a["ActorClassName"].startswith("ServeReplica")]
        os.kill(victim["Pid"], signal.SIGKILL)
        for thread in clients:
            thread.join(4 * 60 * CLIENT_TIMEOUT_S)
        assert not errors, errors
        assert len(answers) == 240
        for i, status, body in answers:
            if status == 200:
                assert np.allclose(body["predictions"], expected[i:i + 1], atol=1e-5), i
            else:
                assert status == 500 and body, (i, status, body)  # Ray Serve's proxy: the replica died
        assert sum(status == 200 for _, status, _ in answers) >= 200
        # The endpoint stays up: Serve starts the replica again, and every request is answered.
        poll_until(lambda: sum(a["ActorClassName"].startswith("ServeReplica") for a in live_serve_actors()) == 2,
                   120, 0.5, "the killed replica to be replaced")
        assert all(call(url + ":predict", {"instances": [x[i].tolist()]})[0] == 200 for i in range(10))
    finally:
        endpoint.stop()
    poll_until(lambda: not live_serve_actors(), 30, 0.2, "Serve's actors to go")
    assert_nothing_left()
