"""What the driver sends each serving replica: one copy of the contract for ``tfray serve``.

``tfray serve`` (``controller/predict/serving.py``, ``controller/ray/serving.py``) deploys the class that
:data:`SERVER_CLASS` names as a Ray Serve deployment; each replica is built from one :class:`ServingConfig`.
The controller names the class by a string, as it names the prediction actor's: it never imports
``workers/``, where TensorFlow is.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.predict import PredictorConfig

SERVER_CLASS = "workers.serving:ModelServer"  # module:class each replica runs
REST_PORT = 8501  # TF Serving's REST port: a client written for it finds us where it looks
VERSION = "1"  # the one version a tfray endpoint serves (TF Serving numbers a model's versions)


@dataclass(frozen=True)
class ServingConfig:
    """One replica's model (``predictor``: the model ``tfray predict`` would load), the name it answers to in
    TF Serving's routes (``/v1/models/<name>``), how Ray Serve batches the requests that reach it, and
    TensorFlow's thread pools (``threads``: the CPUs the replica reserved, at least 1)."""

    predictor: PredictorConfig
    name: str
    max_batch_size: int = 32
    batch_wait_s: float = 0.0
    threads: int = 1
