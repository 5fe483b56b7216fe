"""The serving replica's class: the model loaded once per replica, TF Serving's REST routes, requests batched.

``tfray serve`` deploys :class:`ModelServer` on Ray Serve (``protocol.serving.SERVER_CLASS``; docs/design.md
§14). Each replica loads the model as a prediction actor does (``workers.predictor.Predictor``: a Keras
model through tf-keras, any other SavedModel through its ``serving_default`` signature), then answers
TF Serving's routes (``workers.serving_rest``). Requests that arrive together are stacked into one call of
the model by Ray Serve's ``@serve.batch``: up to ``max_batch_size`` requests, waiting at most
``batch_wait_s`` for more, so many small clients cost one model call, not one each.
"""

from __future__ import annotations

import numpy as np
from ray import serve

from protocol.serving import VERSION, ServingConfig
from workers.predictor import Predictor
from workers.serving_rest import RestError, metadata_answer, parse_predict, predict_answer, route, status_answer


class ModelServer:
    """One replica: ``config.predictor``'s model answering as TF Serving's model ``config.name``."""

    def __init__(self, config: ServingConfig):
        self.name = config.name
        self.model = Predictor(config.predictor, threads=config.threads)
        self.inputs, self.outputs = self.model.signature()
        self.dtype = self.model.input_dtype()
        self.example_shape = next(iter(self.inputs.values()))[1][1:] if self.inputs else ()
        self._batched.set_max_batch_size(config.max_batch_size)
        self._batched.set_batch_wait_timeout_s(config.batch_wait_s)

    async def __call__(self, request):
        from starlette.responses import JSONResponse

        try:
            called = route(request.method, request.url.path, self.name, VERSION)
            if called.verb == "status":
                return JSONResponse(status_answer(VERSION))
            if called.verb == "metadata":
                return JSONResponse(metadata_answer(self.name, VERSION, self.inputs, self.outputs))
            examples, columnar = parse_predict(await request.body())
            self._check_shape(examples)
            return JSONResponse(predict_answer(await self._batched(examples.astype(self.dtype)), columnar))
        except RestError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)

    def _check_shape(self, examples: np.ndarray) -> None:
        """A request whose examples the model cannot take is refused alone, before it joins a batch (one bad
        request would fail every request batched with it)."""
        got = examples.shape[1:]
        fits = len(got) == len(self.example_shape) and all(
            want is None or want == size for want, size in zip(self.example_shape, got))
        if not fits:
            want = "x".join("?" if size is None else str(size) for size in self.example_shape) or "a number"
            raise RestError(400, f"each example must be {want} (the model's input), not "
                                 f"{'x'.join(map(str, got)) or 'a number'}")

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)  # set again from the config in __init__
    async def _batched(self, requests: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """The examples of every request batched here, through the model at once, split back per request."""
        outputs = self.model.predict_array(np.concatenate(requests))
        ends = np.cumsum([len(examples) for examples in requests])[:-1]
        split = {name: np.split(values, ends) for name, values in outputs.items()}
        return [{name: parts[i] for name, parts in split.items()} for i in range(len(requests))]
