"""Every Keras ``fit`` of a script or module entrypoint backs up each epoch, so a restart resumes it.

A stock script that saves nothing would start over after every restart of
the cluster: its finished epochs lost. In its training process
(``workers/zygote.py``, before the script runs) ``install`` wraps tf-keras'
``Model.fit`` so that a ``fit`` whose callbacks hold no
``BackupAndRestore`` of their own (nor a callback that resumes ``fit``
itself, ``workers.keras.JobCallback``) gets TensorFlow's own
``tf.keras.callbacks.BackupAndRestore`` as its last callback. It backs up at
each epoch's end into the job's ``backups/auto/fit-<n>`` folder (the n-th
``fit`` of the process, so a script that fits twice never restores one
fit's state into the other), and on the next run of the cluster ``fit``
starts at the epoch after the newest backup. Under MultiWorkerMirroredStrategy
every task runs its ``fit`` and so backs up: the chief into that folder, the
others into ``workertemp_<id>`` folders inside it that TensorFlow removes after
each backup; a ``fit`` that ends deletes its backup (TensorFlow's
``delete_checkpoint``). ``entrypoint.keras_backup: false`` in the spec turns it off.

Only tf-keras is wrapped: the tasks run with ``TF_USE_LEGACY_KERAS=1``, so
``tf.keras`` is tf-keras (docs/design.md §4). TensorFlow is never imported
here: when the launcher already imported tf-keras (its default warm-up) its
``Model`` is wrapped at once; otherwise (``TFRAY_PREIMPORT_TF=0``) when the
script first imports ``tf_keras`` (``tf.keras`` does), by an import hook, so
a script that sets TensorFlow's environment before importing it still can.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import inspect
import itertools
import os
import sys

KERAS_MODULE = "tf_keras"
SWITCH = "entrypoint.keras_backup"  # the spec's field that turns it off, named in what the task prints


def install(backup_dir: str) -> None:
    """Give every ``fit`` of this process a ``BackupAndRestore`` into ``backup_dir/fit-<n>`` from now on."""
    keras = sys.modules.get(KERAS_MODULE)
    if keras is not None:
        wrap_fit(keras, backup_dir)
    else:
        sys.meta_path.insert(0, _WrapOnImport(backup_dir))


class _WrapOnImport(importlib.abc.MetaPathFinder):
    """Wraps ``Model.fit`` as soon as tf-keras' package has been imported, then steps aside."""

    def __init__(self, backup_dir: str):
        self.backup_dir = backup_dir

    def find_spec(self, fullname, path=None, target=None):
        if fullname != KERAS_MODULE:
            return None
        sys.meta_path.remove(self)  # once: the lookup below, and every later import, goes on without it
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def run_and_wrap(module) -> None:
            run_module(module)
            wrap_fit(module, self.backup_dir)

        spec.loader.exec_module = run_and_wrap  # this spec's own loader: no other module is affected
        return spec


def wrap_fit(keras, backup_dir: str) -> None:
    """Wrap ``keras.Model.fit`` (every model's: Sequential and functional models inherit it)."""
    model_class = keras.Model
    fit = model_class.fit
    if getattr(fit, "tfray_backup_dir", None) is not None:
        return
    signature = inspect.signature(fit)
    calls = itertools.count(1)

    @functools.wraps(fit)
    def fit_with_backup(self, *args, **kwargs):
        folder = os.path.join(backup_dir, f"fit-{next(calls)}")
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:  # a wrong call: Keras says what is wrong with it
            return fit(self, *args, **kwargs)
        callbacks = bound.arguments.get("callbacks")
        backup = _backup_for(keras, self, callbacks, folder)
        if backup is None:
            return fit(self, *args, **kwargs)
        bound.arguments["callbacks"] = [*(callbacks or ()), backup]
        return fit(*bound.args, **bound.kwargs)

    fit_with_backup.tfray_backup_dir = backup_dir
    model_class.fit = fit_with_backup


def _backup_for(keras, model, callbacks, folder: str):
    """The ``BackupAndRestore`` to add to this ``fit``, or None where the script's own callbacks resume it,
    or TensorFlow's cannot back it up."""
    backup_class = keras.callbacks.BackupAndRestore
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        return None  # a CallbackList the script built itself: left as it is
    if any(isinstance(cb, backup_class) or getattr(cb, "resumes_fit", False) for cb in callbacks or ()):
        return None
    try:
        backup = backup_class(backup_dir=folder)
    except ValueError as err:  # graph mode (TF1-style code): TensorFlow's backups need eager execution
        print(f"[tfray] fit: no automatic backup: {err}", flush=True)
        return None
    strategy = getattr(model, "_distribution_strategy", None)  # None: built outside any strategy's scope
    # TensorFlow's own list (its on_train_begin raises for the others, OneDeviceStrategy among them).
    if strategy is not None and not isinstance(strategy, getattr(backup, "_supported_strategies", ())):
        print(f"[tfray] fit: no automatic backup, BackupAndRestore does not support {type(strategy).__name__}",
              flush=True)
        return None
    print(f"[tfray] fit backs up each epoch to {folder} (TensorFlow's BackupAndRestore; {SWITCH}: false turns "
          "this off)", flush=True)
    return backup
