"""TF Serving's REST API, as shapes: the routes, a predict request's body, and the answers (no TensorFlow here).

TF Serving's REST API (its documentation, "RESTful API"): ``POST /v1/models/<name>[/versions/<v>]:predict``
with ``{"instances": [...]}`` (the row format: one entry per example) or ``{"inputs": ...}`` (the columnar
format: one tensor whose first dimension is the batch), answered ``{"predictions": [...]}`` or
``{"outputs": ...}``; ``GET /v1/models/<name>`` (the version's status) and ``GET .../metadata`` (its
signature); an error is ``{"error": "..."}`` with an HTTP status. A client written for TF Serving sends
and reads exactly these, so it works against ``tfray serve`` unchanged.

A model here takes one input tensor (the models that ``tfray predict`` runs): an instance is that tensor's
row (a list, or a number), or an object of one named input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

ROUTE = re.compile(r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<rest>:predict|/metadata)?/?")
UNSUPPORTED_VERBS = (":classify", ":regress")
# TensorFlow's dtype names as its DataType enum spells them (types.proto), where the two differ.
DATA_TYPES = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "float16": "DT_HALF"}


class RestError(Exception):
    """An answer that is an error: its HTTP status and TF Serving's ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Route:
    name: str
    version: str | None
    verb: str  # "predict", "status" or "metadata"


def route(method: str, path: str, name: str, version: str) -> Route:
    """The call a request makes, checked against the model served (``name``, ``version``); RestError if none."""
    if path.endswith(UNSUPPORTED_VERBS):
        raise RestError(400, f"{path}: tfray serve answers :predict only (not :classify or :regress)")
    match = ROUTE.fullmatch(path)
    if match is None:
        raise RestError(404, f"{path}: not a TF Serving route; use /v1/models/{name}:predict, /v1/models/{name} "
                             f"or /v1/models/{name}/metadata")
    if match["name"] != name:
        raise RestError(404, f"Servable not found for request: model {match['name']!r} (this endpoint serves "
                             f"{name!r})")
    if match["version"] is not None and match["version"] != version:
        raise RestError(404, f"Servable not found for request: version {match['version']} of {name!r} (version "
                             f"{version} is served)")
    verb = {":predict": "predict", "/metadata": "metadata", None: "status"}[match["rest"]]
    wanted = "POST" if verb == "predict" else "GET"
    if method != wanted:
        raise RestError(405, f"{method} {path}: this route takes {wanted}")
    return Route(match["name"], match["version"], verb)


def parse_predict(body: bytes) -> tuple[np.ndarray, bool]:
    """The examples of a predict request as one array (first dimension: the examples), and whether the request
    was columnar (``inputs``; else ``instances``). RestError 400 naming what is wrong."""
    try:
        request = json.loads(body or b"null")
    except ValueError as err:
        raise RestError(400, f"the body is not JSON: {err}") from None
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise RestError(400, 'the body must be an object with either "instances" (a list, one entry per example) '
                             'or "inputs" (a tensor whose first dimension is the examples)')
    columnar = "inputs" in request
    data = request["inputs"] if columnar else request["instances"]
    if columnar and isinstance(data, dict):
        data = _only_input(data)
    elif not columnar:
        if not isinstance(data, list) or not data:
            raise RestError(400, '"instances" must be a non-empty list, one entry per example')
        if all(isinstance(row, dict) for row in data):
            data = [_only_input(row) for row in data]
    try:
        array = np.asarray(data, dtype="float64")
    except (TypeError, ValueError):
        raise RestError(400, "the examples must be numbers in lists of one shape (a ragged or non-numeric "
                             "tensor was sent)") from None
    if array.ndim == 0 or len(array) == 0:
        raise RestError(400, "no examples: the first dimension of the input is the examples")
    return array, columnar


def _only_input(named: dict):
    if len(named) != 1:
        raise RestError(400, f"named inputs {sorted(named)}: this model takes one input; send its values "
                             "without names, or as an object of one name")
    return next(iter(named.values()))


def predict_answer(outputs: dict[str, np.ndarray], columnar: bool) -> dict:
    """TF Serving's answer for the model's outputs: one output as a plain value per example, several as an object
    of named outputs (per example in the row format, per output in the columnar one)."""
    if len(outputs) == 1:
        (values,) = outputs.values()
        return {"outputs" if columnar else "predictions": values.tolist()}
    if columnar:
        return {"outputs": {name: values.tolist() for name, values in outputs.items()}}
    rows = len(next(iter(outputs.values())))
    return {"predictions": [{name: values[i].tolist() for name, values in outputs.items()} for i in range(rows)]}


def status_answer(version: str) -> dict:
    """``GET /v1/models/<name>``: the one version served, available."""
    return {"model_version_status": [{"version": version, "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


def metadata_answer(name: str, version: str, inputs: dict[str, tuple], outputs: dict[str, tuple]) -> dict:
    """``GET /v1/models/<name>/metadata``: the ``serving_default`` signature, as TF Serving describes it.
    ``inputs``/``outputs``: name -> (dtype name, shape with None for an unknown size)."""
    def tensors(named: dict[str, tuple]) -> dict:
        return {key: {"dtype": DATA_TYPES.get(dtype, f"DT_{dtype.upper()}"), "name": key,
                      "tensor_shape": {"dim": [{"size": str(-1 if size is None else size), "name": ""}
                                               for size in shape], "unknown_rank": False}}
                for key, (dtype, shape) in named.items()}

    signature = {"inputs": tensors(inputs), "outputs": tensors(outputs), "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": name, "signature_name": "", "version": version},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}}}
