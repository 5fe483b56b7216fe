"""The task's launcher process: imports TensorFlow once, then forks a fresh process for every run.

A restart of a MultiWorkerMirroredStrategy cluster needs fresh processes (TF
cannot rebuild its collectives in a process that already joined a cluster),
and a fresh process normally pays for Python, Ray and a 2-3 s TensorFlow
import again. Instead each task actor starts one of these launchers (a plain
single-threaded Python process, not a Ray worker, so forking it is safe), or
has its node's hub fork one for it (``workers/launcher_share.py``),
when the actor starts; it imports TensorFlow while the actor reserves its
port, and forks the process that trains when the actor says ``run``. A
restart kills that process and forks a new one from the same launcher:
fresh TF runtime, no new interpreter, no import, and nothing running in the
background while the job trains (Android's zygote, gunicorn's preload).

Protocol, over a SOCK_SEQPACKET socket pair (fd in ``ZYGOTE_FD_ENV``):

- the launcher sends ``{"ready": true, "pid": N}`` once its imports are done
  (a launcher forked by its node's hub, ``workers/launcher_share.py``, at once);
- the actor sends ``{"request": PATH}`` with two file descriptors (the
  report pipe's write end and the output pipe's write end); PATH is a JSON
  file with the run's environment, sys.path, working folder, entrypoint,
  where a script's Keras fits back up (``workers/keras_backup.py``) and how
  often to say it is alive;
- the launcher forks and answers ``{"pid": N}``, then ``{"exit": CODE}``
  when that process ends (negative: killed by that signal);
- end of file on the socket (the actor is gone) ends the launcher, at any
  time, a run in progress or not (``workers/launcher_loop.py``).

The child writes JSON lines on the report pipe: the context's reports (each
a ``protocol.wire`` report as its ``to_json``, typed again by the actor),
``{"kind": "alive"}`` about every second from a thread (the actor passes on a
heartbeat only while these come, so a stopped or wedged process is seen as
hung), and at the end ``{"kind": "result", ...}`` or ``{"kind": "error", ...}``
with the exception's type, message and traceback as text (no TensorFlow
object ever travels to the driver), and, when the failure is one we can say
in a sentence (Keras 3 in a multi-task job, ``workers/keras3_failure.py``),
that sentence as its ``explanation``. These three and the request file never
leave the task, so they stay plain JSON.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback

from protocol import wire
from protocol.task_key import DATA_ROLES
from protocol.wire import PREIMPORT_ENV
from workers import gpus, keras3_failure, launcher_loop, launcher_share
from workers.launcher_loop import MAX_MESSAGE  # noqa: F401  (the actor's side imports it from here)
from workers.process_settings import pin

ZYGOTE_FD_ENV = "TFRAY_ZYGOTE_FD"


def die_with_parent() -> None:
    """Get SIGKILL when the parent process dies, so no orphan keeps training."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the actor's own teardown still kills the child on a clean stop


def _warm_imports() -> None:
    """What every run would import first: TensorFlow (and tf-keras when the job uses it). Only imported: a
    device listed or a tensor made here would initialise CUDA, which no forked process could then use."""
    if os.environ.get(PREIMPORT_ENV) == "0":
        return
    try:
        import tensorflow  # noqa: F401

        if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
            import tf_keras  # noqa: F401
        import workers.keras  # noqa: F401
    except Exception as err:  # the run imports it again and reports the error properly
        print(f"[tfray] warm-up import of TensorFlow failed: {err}", flush=True)
    if not gpus.runtime_untouched():
        print("[tfray] warning: TensorFlow's runtime was started while the launcher imported it; training "
              "processes forked from it may fail to use their GPUs. Set TFRAY_PREIMPORT_TF: \"0\" in the spec's "
              "env to import TensorFlow in each training process instead.", flush=True)


def main() -> None:
    ctl = socket.socket(fileno=int(os.environ.pop(ZYGOTE_FD_ENV)))
    hub_fd = os.environ.pop(launcher_share.HUB_FD_ENV, None)  # set when this launcher serves its node's others
    listener = socket.socket(fileno=int(hub_fd)) if hub_fd else None
    # No collection while importing: TensorFlow's import makes hundreds of thousands of objects and none is
    # garbage yet, so the collector's passes are wasted (about a tenth of the import's CPU time here).
    gc.disable()
    _warm_imports()
    # What the imports made stays out of every later collection: a collection in a forked process would
    # write to each object's header and copy every page holding one (bench: PSS of launcher + process).
    gc.collect()
    gc.freeze()
    gc.enable()
    launcher_loop.serve(ctl, listener, _child)


class _Reports:
    """The report pipe, shared by the context's reports and the alive thread (one line per write)."""

    def __init__(self, fd: int):
        self._stream = os.fdopen(fd, "w", buffering=1)
        self._lock = threading.Lock()

    def send(self, record: dict) -> None:
        """One of the pipe's own messages (alive, result, error)."""
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            self._stream.write(line)

    def report(self, report: wire.Report) -> None:
        """A report for the job's inbox (the actor passes it on)."""
        self.send(report.to_json())

    def keep_alive(self, interval_s: float) -> None:
        from workers import context

        def beat() -> None:
            while True:
                ctx = context.current()
                try:
                    self.send({"kind": wire.ALIVE, "notice": ctx.preemption_notice if ctx is not None else None})
                except (OSError, ValueError):
                    return
                time.sleep(interval_s)

        threading.Thread(target=beat, name="tfray-alive", daemon=True).start()


def _own_exit_handlers() -> None:
    """The fork copied the launcher's atexit handlers and finalizers: they are not this process's to run.
    Start clean, keeping the hooks that run this process's own at its end: multiprocessing's temporary
    folders (``pymp-*``), ``weakref.finalize`` objects such as ``tempfile.TemporaryDirectory``, and
    logging's flush. (``weakref.finalize._registry`` is private, but the only way to drop inherited ones.)"""
    import atexit
    import logging
    import weakref

    atexit._clear()
    weakref.finalize._registry.clear()
    weakref.finalize._registered_with_atexit = False  # the next finalize registers its hook again
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:  # imported by the launcher: multiprocessing forgets its parent's, as after its forks
        mp_util._finalizer_registry.clear()
        sys.modules["multiprocessing.process"].current_process()._config.pop("tempdir", None)
        atexit.register(mp_util._exit_function)
    atexit.register(logging.shutdown)


def _run_exit_handlers(bound_s: float, code: int) -> None:
    """This process's atexit handlers, as a normal interpreter exit runs them; one that hangs does not keep
    the task from ending (the exit code stays the entrypoint's)."""
    import atexit

    watchdog = threading.Timer(bound_s, os._exit, args=(code,))
    watchdog.daemon = True
    watchdog.start()
    atexit._run_exitfuncs()


def _child(request_path: str, report_fd: int, out_fd: int) -> None:
    """In the forked process: become the task's training process, run the entrypoint, exit."""
    code, reports, exit_bound_s = 1, None, 0.0
    try:
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        die_with_parent()
        if os.getppid() == 1:  # the launcher died before the line above
            os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _own_exit_handlers()
        with open(request_path) as f:
            request = json.load(f)
        os.remove(request_path)
        exit_bound_s = request["exit_handlers_s"]
        reports = _Reports(report_fd)
        reports.keep_alive(request["alive_interval_s"])
        code = _run(request, reports)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException as err:  # reported as text: the driver must never unpickle a TF exception
        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        explanation = keras3_failure.explain(err, _strategy())
        if explanation:  # the log says it too, under the traceback it replaces in the task's end
            print(f"[tfray] {explanation}", file=sys.stderr, flush=True)
        if reports is not None:
            reports.send({"kind": wire.ERROR, "type": type(err).__name__, "message": str(err), "traceback": text,
                          "explanation": explanation})
    finally:
        try:
            if exit_bound_s:
                _run_exit_handlers(exit_bound_s, code)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)  # after this process's own exit handlers; never the launcher's


def _strategy() -> str | None:
    """The job's strategy, from this process's context (None before it has one). Never imports: it runs while
    an exception is being reported, which a failing import must not replace."""
    context = sys.modules.get("workers.context")
    ctx = context.current() if context is not None else None
    return ctx.strategy if ctx is not None else None


def _run(request: dict, reports: _Reports) -> int:
    import runpy

    from workers import context

    os.environ.update(request["env"])
    if request.get("cpu_affinity"):  # before TensorFlow's pools exist: they are sized to it, as under taskset
        pin(request["cpu_affinity"])
    for path in reversed(request["sys_path"]):
        if path not in sys.path:
            sys.path.insert(0, path)
    if request.get("cwd"):
        os.chdir(request["cwd"])
    gpus.apply_memory_limit()  # before any code of the user's can start TensorFlow's runtime
    kind, target = request["kind"], request["target"]
    context.REPORT_SENDER = reports.report  # every context in this process reports through the actor's pipe
    if kind == "serve":
        ctx = context.attach(reports.report, handle_notice=False)
        if ctx.role in DATA_ROLES:
            from workers import data_service

            data_service.serve(ctx)  # never returns
        else:
            _serve(ctx)  # its own notice handler: it serves on
        return 0
    if kind == "function":
        ctx = context.get_context()
        module_name, func_name = target.split(":")
        import importlib

        func = getattr(importlib.import_module(module_name), func_name)
        value = func(ctx, **request["args"])
        reports.send({"kind": wire.RESULT, "value": value})
        return 0
    sys.argv = [target, *request["argv"]]
    context.attach(reports.report, handle_notice=False)  # its timed faults fire even if it never asks for it
    if request.get("keras_backup_dir"):  # its Keras fits resume after a restart even if it saves nothing
        from workers import keras_backup

        keras_backup.install(request["keras_backup_dir"])
    if kind == "script":
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    return 0


def _serve(ctx) -> None:
    """PSS ps/worker: serve a tf.distribute.Server on the reserved port until killed (a notice is reported and
    the server goes on, for the coordinator to save through it)."""
    import tensorflow as tf

    from workers.preemption import install_notice_handler

    # A notice (SIGTERM) must not take the server down at once: the coordinator saves through it first.
    install_notice_handler(ctx, ctx.preemption_grace_s, keeps="serves until the coordinator has saved")
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                  task_index=resolver.task_id, protocol="grpc", start=True)
    ctx._send(wire.EventReport(ctx.key, "serving", {"target": server.target, "pid": os.getpid()}))
    print(f"{ctx.task} serving {server.target}", flush=True)
    while True:  # the server serves on its own threads; not server.join(): a Python signal handler (the
        time.sleep(3600)  # notice) runs only when the main thread is in Python, and sleep lets it


if __name__ == "__main__":
    main()
