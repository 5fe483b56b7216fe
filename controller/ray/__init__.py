"""The controller's side of Ray: actors, the inbox, placement, prediction and serving runs."""

from __future__ import annotations

import importlib


def named_class(path: str) -> type:
    """The class a protocol names as ``module:Class`` (the task actor, the prediction actor, the serving
    replica): the controller never imports ``workers/`` itself (tests/unit/test_layers.py)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
