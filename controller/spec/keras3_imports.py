"""Keras 3 in a multi-task job's entrypoint, found by reading its source before anything starts.

Keras 3 does not train under MultiWorkerMirroredStrategy nor parameter-server
training, and a script that imports it fails only once training has begun,
deep in TensorFlow (``Attempt to convert a value (PerReplica...)``, docs/design.md
§4). Every task runs with ``TF_USE_LEGACY_KERAS=1``, so ``tf.keras`` and
``from tensorflow import keras`` are tf-keras and fine: only the standalone
``keras`` package is Keras 3. An import of it in an ``except ImportError``
branch is a fallback that tf-keras (installed with tfray) never takes, so it
is not counted.

Only the entrypoint's own files are read (the script, the module, the
function's module and those it re-exports from): an import in a module they
import is told when the task fails (``workers/keras3_failure.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from controller.spec.job import JobSpec, SpecError
from protocol.keras3 import KERAS3_UNSUPPORTED

KERAS3_PACKAGE = "keras"
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:  # a bare except
        return True
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, (ast.Name, ast.Attribute)) and ast.unparse(t).rpartition(".")[2] in IMPORT_ERRORS
               for t in caught)


def _fallbacks(tree: ast.Module) -> set[int]:
    """The ids of the nodes inside ``except ImportError`` branches: what runs only when an import failed."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        for handler in getattr(node, "handlers", ()):
            if isinstance(handler, ast.ExceptHandler) and _catches_import_error(handler):
                inside.update(id(n) for stmt in handler.body for n in ast.walk(stmt))
    return inside


def find_keras3_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every statement of ``tree`` that imports the standalone ``keras`` package (Keras 3), in source order:
    ``import keras``, ``import keras.layers as L``, ``from keras import layers``; not ``tf_keras``, not
    ``tensorflow.keras``, not a relative import, not a fallback after an ImportError."""
    fallbacks = _fallbacks(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in fallbacks:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name.split(".")[0] == KERAS3_PACKAGE for name in names):
            found.append(node)
    return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def refuse_keras3(spec: JobSpec, path: Path, tree: ast.Module, field: str) -> None:
    """SpecError naming the file and line when a multi-task job's entrypoint source imports Keras 3."""
    if not spec.strategy.is_multi_task:  # MirroredStrategy and OneDeviceStrategy train with Keras 3
        return
    found = find_keras3_imports(tree)
    if found:
        first = found[0]
        raise SpecError(f"{field}: {path} line {first.lineno}: `{ast.unparse(first)}` imports Keras 3 in a "
                        f"{spec.strategy.value} job. {KERAS3_UNSUPPORTED}")
