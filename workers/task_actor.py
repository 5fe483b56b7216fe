"""The task actor: one Ray actor per TensorFlow task.

Its life: ``reserve_port()`` binds a port on its own node and keeps it
(SO_REUSEPORT, bound but not listening, so connections never land on it),
reports ``host:port``, then ``run(launch)`` sets ``TF_CONFIG`` and runs the
entrypoint: a function in this process, or a script/module as a child
process with ``TF_CONFIG`` and the context in its environment, its output
streamed and its reports relayed. TensorFlow binds the reserved port itself
with ``TF_GRPC_REUSE_PORT=true``; without the reservation another process
could take the port between "free" and "bound" (Ray issue #34271). This
module imports no TensorFlow, so the driver can import it.
"""

from __future__ import annotations

import collections
import ctypes
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from controller.settings import GATHER_TIMEOUT_S, PREIMPORT_ENV, TASK_ENV
from controller.storage import TOKEN_FILE, node_job_dir, read_tree, write_tree
from controller.task_group import TaskLaunch
from workers.context import CONTEXT_ENV, REPORT_FD_ENV, STOP_FILE_ENV, TaskContext, set_context
from workers.preemption import install_notice_handler

OUTPUT_TAIL_LINES = 40  # lines of a failed script's output kept for the error
STOP_POLL_S = 1.0  # how often a script task's actor checks whether side-cars should stop
HEARTBEAT_INTERVAL_S = 1.0  # how often a task tells the controller it is alive


class TaskProcessError(RuntimeError):
    """A script or module entrypoint exited with a non-zero status."""


class TaskProcessKilledError(TaskProcessError):
    """A script or module entrypoint was killed by a signal (a process death, not a code error)."""


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the actor process dies, so no orphan keeps training."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the actor's own teardown still kills the child on a clean stop


def _wait_for_servers(servers: tuple, timeout_s: float) -> None:
    """Block until every (task, host:port) accepts gRPC connections, or raise naming those that do not.

    The PSS coordinator must not start against a server that is not up yet.
    """
    import grpc

    deadline = time.monotonic() + timeout_s
    waiting = dict(servers)
    while waiting:
        for task, address in list(waiting.items()):
            with grpc.insecure_channel(address) as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
                    del waiting[task]
                except grpc.FutureTimeoutError:
                    pass
        if waiting and time.monotonic() >= deadline:
            names = ", ".join(f"{task} at {address}" for task, address in sorted(waiting.items()))
            raise TimeoutError(f"servers not reachable over gRPC within {timeout_s:g}s: {names}")


def _import_tensorflow(idle: bool) -> None:
    """Import TensorFlow in the background while the actor waits for its launch. A spare (``idle``)
    does it under SCHED_IDLE (this thread only), so it takes idle cycles, not training's."""
    if idle:
        try:  # SCHED_IDLE for this thread (and the threads TF starts from it): only otherwise idle CPU
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except (AttributeError, OSError):
                pass
    try:
        import tensorflow  # noqa: F401
    except Exception as err:  # the task will import it again and report the error properly
        print(f"[tfray] warm-up import of TensorFlow failed: {err}", flush=True)


def _read_token(job_dir: str) -> str | None:
    try:
        return open(os.path.join(job_dir, TOKEN_FILE)).read().strip()
    except OSError:
        return None


class TaskActor:
    """One task of the job (role, index); made a Ray actor by the provisioner."""

    def __init__(self, role: str, index: int, inbox, spare: bool = False):
        for key, value in TASK_ENV.items():  # also set by runtime_env; this guards direct use
            os.environ.setdefault(key, value)
        if os.environ.get(PREIMPORT_ENV) == "1":  # TF code runs in this process: start importing it now
            threading.Thread(target=_import_tensorflow, args=(spare,), name="tfray-warm", daemon=True).start()
        self.role = role
        self.index = index
        self.inbox = inbox
        self._port_socket: socket.socket | None = None
        self._child: subprocess.Popen | None = None
        self._gather = False  # True when this task cannot write into the job's storage path

    def __repr__(self) -> str:  # Ray prefixes this task's log lines with it
        return f"{self.role}-{self.index}"

    def reserve_port(self, port: int = 0) -> dict:
        """Reserve a port for this task's TF server (any free one, or ``port`` for a
        replacement that must serve where its predecessor did) and say where the task lives."""
        import ray

        if self._port_socket is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("", port))  # for port 0 the kernel never hands out a port another socket holds
            self._port_socket = sock
        host = ray.util.get_node_ip_address()
        return {
            "address": f"{host}:{self._port_socket.getsockname()[1]}",
            "node_id": ray.get_runtime_context().get_node_id(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
        }

    def run(self, launch: TaskLaunch):
        """Run the entrypoint to its end; return what it returned (function) or its exit code."""
        os.environ.update(launch.env)
        if launch.tf_config is not None:
            os.environ["TF_CONFIG"] = json.dumps(launch.tf_config)
        for path in reversed(launch.sys_path):
            if path not in sys.path:
                sys.path.insert(0, path)
        job_dir, restore_from = self._storage(launch)
        ctx = TaskContext(
            job_name=launch.job_name, job_dir=job_dir, attempt=launch.attempt, strategy=launch.strategy,
            role=launch.role, index=launch.index, is_chief=launch.is_chief, num_workers=launch.num_workers,
            args=launch.args, checkpoint_every_n_epochs=launch.checkpoint_every_n_epochs,
            restore_from=restore_from, restore_step=launch.restore_step, restore_epoch=launch.restore_epoch,
            send=self._forward, stop_requested=self._stop_requested, faults=launch.faults,
            preemption_grace_s=launch.preemption_grace_s,
        )
        if launch.runs_server or launch.entrypoint_kind == "function":
            ctx.arm_faults()  # a script's faults fire in the script's own process (see get_context)
        self._start_heartbeat(ctx)
        if launch.runs_server:
            return self._serve(launch)
        if launch.servers:
            _wait_for_servers(launch.servers, launch.server_wait_s)
        if launch.entrypoint_kind == "function":
            default_sigterm = signal.getsignal(signal.SIGTERM)
            # SIGTERM becomes a notice to save (a PSS server has nothing to save: it keeps Ray's default).
            install_notice_handler(ctx, launch.preemption_grace_s)
            try:
                return self._run_function(launch, ctx)
            finally:
                # Training is over: a SIGTERM now is the teardown, not a notice to save.
                signal.signal(signal.SIGTERM, default_sigterm)
        return self._run_process(launch, ctx)

    def _storage(self, launch: TaskLaunch) -> tuple[str, str | None]:
        """This task's job folder and restore checkpoint: the head's storage path if this node sees it,
        else a folder on this node, with the restore checkpoint's files fetched through Ray."""
        import ray

        sees_storage = launch.storage_mode == "shared" or (launch.storage_mode == "auto" and (
            launch.storage_token is None or _read_token(launch.job_dir) == launch.storage_token))
        self._gather = not sees_storage
        if sees_storage:
            return launch.job_dir, launch.restore_from
        local = node_job_dir(ray.get_runtime_context().get_node_id(), launch.job_name)
        local.mkdir(parents=True, exist_ok=True)
        print(f"[tfray] {launch.task}: {launch.job_dir} is not shared with this node; checkpoints go through "
              f"{local} and are gathered to the head", flush=True)
        if not launch.restore_from:
            return str(local), None
        if not launch.restore_files:
            raise RuntimeError(f"{launch.task} cannot see {launch.restore_from} and was sent no copy of it")
        files = ray.get(launch.restore_files[0], timeout=GATHER_TIMEOUT_S)
        restore = write_tree(local / "restore" / launch.task / os.path.basename(launch.restore_from), files)
        return str(local), str(restore)

    def _forward(self, record: dict) -> None:
        """Pass a report on to the inbox (fire and forget). A checkpoint of a task that cannot write
        into the storage path travels with its files, and the save waits until the head has them."""
        if not (self._gather and record.get("kind") == "checkpoint"):
            self.inbox.report.remote(record)
            return
        import ray

        ray.get(self.inbox.report.remote({**record, "files": read_tree(record["path"])}), timeout=GATHER_TIMEOUT_S)
        shutil.rmtree(record["path"], ignore_errors=True)  # the head's copy is the checkpoint now

    def _start_heartbeat(self, ctx: TaskContext) -> None:
        """Tell the controller this process is alive (and whether it got a preemption notice),
        from a thread; SIGSTOP or a wedged process stops it."""
        import ray

        def beat() -> None:
            noticed = False
            while True:
                reply = self.inbox.heartbeat.remote({"kind": "heartbeat", "task": ctx.task, "pid": os.getpid(),
                                                     "notice": ctx.preemption_notice})
                try:
                    told = ray.get(reply, timeout=HEARTBEAT_INTERVAL_S * 5)
                except Exception:  # a slow inbox: the heartbeat is sent anyway, the answer waits
                    told = False
                if told and not noticed:  # the controller saw our node being drained: same as a SIGTERM
                    noticed = True
                    self._signal_notice()
                time.sleep(HEARTBEAT_INTERVAL_S)

        threading.Thread(target=beat, name="tfray-heartbeat", daemon=True).start()

    def _signal_notice(self) -> None:
        """Deliver a preemption notice the way a cloud does: SIGTERM to the process that trains."""
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
        else:
            os.kill(os.getpid(), signal.SIGTERM)

    def _stop_requested(self) -> bool:
        import ray

        return ray.get(self.inbox.stop_requested.remote(), timeout=30)

    def _serve(self, launch: TaskLaunch) -> None:
        """PSS ps/worker: serve a tf.distribute.Server on the reserved port until torn down."""
        import tensorflow as tf

        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                      task_index=resolver.task_id, protocol="grpc", start=True)
        self.inbox.report.remote({"kind": "event", "event": "serving", "task": launch.task,
                                  "target": server.target, "pid": os.getpid()})
        print(f"{launch.task} serving {server.target}", flush=True)
        server.join()  # returns only when the process is killed at the end of the job

    def _run_function(self, launch: TaskLaunch, ctx: TaskContext):
        module_name, func_name = launch.entrypoint_target.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        set_context(ctx)
        try:
            return func(ctx, **launch.args)
        finally:
            set_context(None)

    def _run_process(self, launch: TaskLaunch, ctx: TaskContext) -> dict:
        if launch.entrypoint_kind == "script":
            cmd = [sys.executable, "-u", launch.entrypoint_target, *launch.argv]
        else:
            cmd = [sys.executable, "-u", "-m", launch.entrypoint_target, *launch.argv]
        read_fd, write_fd = os.pipe()
        stop_file = os.path.join(tempfile.mkdtemp(prefix="tfray-"), "stop")
        env = dict(os.environ)
        env.update({CONTEXT_ENV: ctx.to_env(), REPORT_FD_ENV: str(write_fd), STOP_FILE_ENV: stop_file})
        env["PYTHONPATH"] = os.pathsep.join([*launch.sys_path, *filter(None, [env.get("PYTHONPATH")])])
        cwd = launch.sys_path[0] if launch.sys_path else None
        self._child = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            pass_fds=(write_fd,), preexec_fn=_die_with_parent,
        )
        os.close(write_fd)
        relay = threading.Thread(target=self._relay_reports, args=(read_fd,), daemon=True)
        relay.start()
        if launch.role == "evaluator":  # side-cars learn that training is over through the stop file
            threading.Thread(target=self._pass_on_stop, args=(stop_file,), daemon=True).start()
        tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        for line in self._child.stdout:  # streamed: Ray forwards this actor's stdout to the driver
            print(line, end="", flush=True)
            tail.append(line)
        code = self._child.wait()
        relay.join(timeout=10)  # the pipe closes when the child exits
        if code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            raise (TaskProcessKilledError if code < 0 else TaskProcessError)(
                f"{' '.join(cmd)} {how}; last {len(tail)} lines of its output:\n" + "".join(tail)
            )
        return {"exit_code": 0}

    def _pass_on_stop(self, stop_file: str) -> None:
        """Create the stop file once the controller asks side-cars to finish (the child polls it)."""
        while self._child is not None and self._child.poll() is None:
            if self._stop_requested():
                open(stop_file, "w").close()
                return
            time.sleep(STOP_POLL_S)

    def _relay_reports(self, read_fd: int) -> None:
        with os.fdopen(read_fd) as stream:
            for line in stream:
                try:
                    record = json.loads(line)
                except ValueError:
                    print(f"[tfray] unreadable report from the entrypoint: {line!r}", flush=True)
                    continue
                self._forward(record)
