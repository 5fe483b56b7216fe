"""A multi-task training that failed inside Keras 3 fails with the sentence that says why.

Keras 3 does not train under MultiWorkerMirroredStrategy nor parameter-server
training; its failure is a TensorFlow traceback (``Attempt to convert a value
(PerReplica...)``) that names neither Keras nor the fix. ``validate`` refuses
an entrypoint that imports ``keras`` itself (``controller/spec/keras3_imports.py``);
one imported by a module it imports is told here, when the training fails.

The failure is Keras 3's when the standalone ``keras`` package, version 3 or
later, is loaded and the exception (or one it was raised from) passed through
its files. Keras 3 filters its own frames out of a traceback, but the
filter's own frame (``keras/src/utils/traceback_utils.py``) stays in it.
A failure elsewhere (a lost peer, a bug in the script) keeps its own error,
so the failure policy still classifies it. Imports no TensorFlow.
"""

from __future__ import annotations

import os
import sys
import traceback

from protocol.keras3 import KERAS3_UNSUPPORTED

MULTI_TASK_STRATEGIES = ("multi_worker_mirrored", "parameter_server")
MAX_CHAINED = 16  # how many `raise ... from` / `during handling` links are followed


def _keras3_folder() -> str | None:
    """The folder of the loaded ``keras`` package when it is Keras 3 or later, else None."""
    keras = sys.modules.get("keras")
    major = str(getattr(keras, "__version__", "")).partition(".")[0]
    path = getattr(keras, "__file__", None)
    if not major.isdigit() or int(major) < 3 or not path:
        return None
    return os.path.dirname(os.path.abspath(path)) + os.sep


def _passed_through(err: BaseException | None, folder: str) -> bool:
    for _ in range(MAX_CHAINED):
        if err is None:
            return False
        if any(os.path.abspath(frame.f_code.co_filename).startswith(folder)
               for frame, _ in traceback.walk_tb(err.__traceback__)):
            return True
        err = err.__cause__ or err.__context__
    return False


def explain(err: BaseException, strategy: str | None) -> str | None:
    """The sentence a task fails with when ``err`` came out of Keras 3 under a multi-task strategy, else None
    (the error is told as it is)."""
    if strategy not in MULTI_TASK_STRATEGIES:
        return None
    folder = _keras3_folder()
    if folder is None or not _passed_through(err, folder):
        return None
    return (f"{KERAS3_UNSUPPORTED}. This task's training ({strategy}) failed inside Keras 3 with "
            f"{type(err).__name__}; the traceback is in its log")
