"""The task actor: one Ray actor per TensorFlow task.

Its life: when it starts it launches the task's launcher process
(``workers.zygote``), which imports TensorFlow while the actor reserves a
port on its node and keeps it (SO_REUSEPORT, bound but not listening, so
connections never land on it) and reports ``host:port``. ``run(launch)``
then has the launcher fork the process that trains, with ``TF_CONFIG``, the
job's environment and the task's context; the entrypoint (a function, a
script or a module) runs there, its output streamed and its reports relayed
through a pipe. TensorFlow binds the reserved port itself with
``TF_GRPC_REUSE_PORT=true``; without the reservation another process could
take the port between "free" and "bound" (Ray issue #34271).

A restart of the cluster (``stop_run`` then ``run`` again) kills the
training process and forks a new one from the same launcher: a fresh
TensorFlow runtime in a fraction of a second, with nothing warming up in
the background while the job trains. This module imports no TensorFlow,
so the driver can import it.
"""

from __future__ import annotations

import collections
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

from controller.settings import GATHER_TIMEOUT_S, STOP_RUN_TIMEOUT_S, TASK_ENV
from controller.storage import TOKEN_FILE, node_job_dir, read_tree, write_tree
from controller.task_group import TaskLaunch
from workers.context import CONTEXT_ENV, STOP_FILE_ENV, TaskContext
from workers.preemption import TaskPreempted
from workers.zygote import MAX_MESSAGE, ZYGOTE_FD_ENV, die_with_parent

OUTPUT_TAIL_LINES = 40  # lines of a failed task's output kept for the error
STOP_POLL_S = 1.0  # how often a side-car's actor checks whether side-cars should stop
HEARTBEAT_INTERVAL_S = 1.0  # how often a task tells the controller it is alive


class TaskProcessError(RuntimeError):
    """The task's entrypoint failed: it raised (the message holds its type, message and traceback)
    or its script exited with a non-zero status."""


class TaskProcessKilledError(TaskProcessError):
    """The process that trained was killed by a signal (a process death, not a code error)."""


def _wait_for_servers(servers: tuple, timeout_s: float, stopped=lambda: False) -> None:
    """Block until every (task, host:port) accepts gRPC connections, or raise naming those that do not.

    The PSS coordinator must not start against a server that is not up yet.
    """
    import grpc

    deadline = time.monotonic() + timeout_s
    waiting = dict(servers)
    while waiting and not stopped():
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


class _Launcher:
    """The actor's handle on its launcher process (workers/zygote.py)."""

    def __init__(self, env: dict[str, str]):
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `workers` is importable from
        path = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "workers.zygote"],
            env={**env, "PYTHONPATH": path, ZYGOTE_FD_ENV: str(theirs.fileno())},
            pass_fds=(theirs.fileno(),), preexec_fn=die_with_parent,
        )
        theirs.close()
        self.ready = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def receive(self) -> dict:
        """The launcher's next message; {} when it is gone."""
        try:
            data = self.ctl.recv(MAX_MESSAGE)
        except OSError:
            return {}
        return json.loads(data) if data else {}

    def fork(self, request_path: str, report_fd: int, out_fd: int) -> int:
        """Have the launcher fork the training process; its pid (waits for the launcher's imports)."""
        while not self.ready:
            message = self.receive()
            if not message:
                raise TaskProcessKilledError(f"the task's launcher process died (exit {self.proc.poll()})")
            self.ready = bool(message.get("ready"))
        socket.send_fds(self.ctl, [json.dumps({"request": request_path}).encode()], [report_fd, out_fd])
        message = self.receive()
        if "pid" not in message:
            raise TaskProcessKilledError(f"the task's launcher process died (exit {self.proc.poll()})")
        return message["pid"]

    def wait_exit(self) -> int:
        """The exit code of the process forked last (negative: the signal that killed it)."""
        message = self.receive()
        if "exit" not in message:
            raise TaskProcessKilledError(f"the task's launcher process died (exit {self.proc.poll()})")
        return message["exit"]

    def close(self) -> None:
        self.ctl.close()
        if self.alive():
            self.proc.kill()
        self.proc.wait()


def _read_token(job_dir: str) -> str | None:
    try:
        return open(os.path.join(job_dir, TOKEN_FILE)).read().strip()
    except OSError:
        return None


class TaskActor:
    """One task of the job (role, index); made a Ray actor by the provisioner (with max_concurrency > 1,
    so ``stop_run`` can end a ``run`` that is in progress)."""

    def __init__(self, role: str, index: int, inbox, env: dict[str, str] | None = None):
        os.environ.update({**TASK_ENV, **(env or {})})  # the launcher starts with the job's environment
        self.role = role
        self.index = index
        self.inbox = inbox
        self._port_socket: socket.socket | None = None
        self._launcher = _Launcher(dict(os.environ))
        self._run_lock = threading.Lock()  # one run at a time: the next waits until the last one ended
        self._stopping = threading.Event()  # set by stop_run: the run in progress is to end now
        self._child: int | None = None  # pid of the process that trains now
        self._alive_count = 0  # the training process's alive messages so far
        self._notice_pending = False  # the controller told this task to save and stop (its node drains)
        self._child_notice: float | None = None
        self._gather = False  # True when this task cannot write into the job's storage path
        self._start_heartbeat()

    def __repr__(self) -> str:  # Ray prefixes this task's log lines with it
        return f"{self.role}-{self.index}"

    @property
    def task(self) -> str:
        return f"{self.role}-{self.index}"

    def reserve_port(self, port: int = 0) -> dict:
        """Reserve a port for this task's TF server (any free one, or ``port`` for a
        replacement that must serve where its predecessor did) and say where the task lives.
        Called again on a restart that reuses this actor: the same answer."""
        import ray

        if self._port_socket is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("", port))  # for port 0 the kernel never hands out a port another socket holds
            self._port_socket = sock
        if not self._launcher.alive():  # killed from outside: a new one (cold, but this actor goes on)
            self._launcher.close()
            self._launcher = _Launcher(dict(os.environ))
        host = ray.util.get_node_ip_address()
        return {
            "address": f"{host}:{self._port_socket.getsockname()[1]}",
            "node_id": ray.get_runtime_context().get_node_id(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
        }

    def stop_run(self) -> bool:
        """End the run in progress (its training process is killed) and wait until it has ended,
        so this actor can run again for a restart. True when it did within the bound."""
        self._stopping.set()
        self._notice_pending = False  # a notice belongs to the run it was sent to
        self._signal_child(signal.SIGKILL)
        if not self._run_lock.acquire(timeout=STOP_RUN_TIMEOUT_S):
            return False
        self._run_lock.release()
        return True

    def run(self, launch: TaskLaunch):
        """Run the entrypoint to its end in a fresh process; return what it returned (function) or its exit code."""
        with self._run_lock:
            self._stopping.clear()
            return self._run(launch)

    def _run(self, launch: TaskLaunch):
        env = dict(launch.env)  # for the training process (this actor has it since it started)
        if launch.tf_config is not None:
            env["TF_CONFIG"] = json.dumps(launch.tf_config)
        job_dir, restore_from = self._storage(launch)
        ctx = TaskContext(
            job_name=launch.job_name, job_dir=job_dir, attempt=launch.attempt, strategy=launch.strategy,
            role=launch.role, index=launch.index, is_chief=launch.is_chief, num_workers=launch.num_workers,
            args=launch.args, checkpoint_every_n_epochs=launch.checkpoint_every_n_epochs,
            restore_from=restore_from, restore_step=launch.restore_step, restore_epoch=launch.restore_epoch,
            faults=launch.faults, preemption_grace_s=launch.preemption_grace_s,
        )
        if launch.servers:
            _wait_for_servers(launch.servers, launch.server_wait_s, self._stopping.is_set)
        if self._stopping.is_set():
            raise TaskProcessKilledError(f"{self.task}: the run was stopped before it began")
        work = tempfile.mkdtemp(prefix="tfray-run-")
        try:
            return self._run_in(launch, ctx, env, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run_in(self, launch: TaskLaunch, ctx: TaskContext, env: dict, work: str):
        """Fork the training process (its request and stop file in ``work``), stream it, return its outcome."""
        stop_file = os.path.join(work, "stop")
        env.update({CONTEXT_ENV: ctx.to_env(), STOP_FILE_ENV: stop_file,
                    "PYTHONPATH": os.pathsep.join([*launch.sys_path, *filter(None, [os.environ.get("PYTHONPATH")])])})
        kind = "serve" if launch.runs_server else launch.entrypoint_kind
        request = os.path.join(work, "request.json")
        with open(request, "w") as f:
            json.dump({"env": env, "sys_path": list(launch.sys_path), "kind": kind,
                       "cwd": launch.sys_path[0] if launch.sys_path and kind in ("script", "module") else None,
                       "target": launch.entrypoint_target, "args": launch.args, "argv": list(launch.argv)}, f)
        report_r, report_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self._child = self._launcher.fork(request, report_w, out_w)
        finally:
            os.close(report_w)
            os.close(out_w)
        if self._stopping.is_set():  # stop_run came while the process was being forked
            self._signal_child(signal.SIGKILL)
        self._alive_count += 1  # a beat for the new process: it exists
        self._child_notice = None  # when the training process got a preemption notice (SIGTERM)
        if self._notice_pending:  # the node's drain notice came while no process trained
            self._signal_notice()
        ends: dict = {}
        relay = threading.Thread(target=self._relay_reports, args=(report_r, ends), daemon=True)
        relay.start()
        if launch.role == "evaluator":  # side-cars learn that training is over through the stop file
            threading.Thread(target=self._pass_on_stop, args=(stop_file,), daemon=True).start()
        tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        with os.fdopen(out_r, errors="replace") as output:
            for line in output:  # streamed: Ray forwards this actor's stdout to the driver
                print(line, end="", flush=True)
                tail.append(line)
        try:
            code = self._launcher.wait_exit()
        finally:
            self._child = None
        relay.join(timeout=GATHER_TIMEOUT_S)  # the pipe closes when the process exits; gathers finish first
        return self._outcome(launch, code, ends, tail)

    def _outcome(self, launch: TaskLaunch, code: int, ends: dict, tail) -> object:
        if code < 0 or self._stopping.is_set():
            raise TaskProcessKilledError(f"{self.task}'s process was killed by signal {-code}; last {len(tail)} "
                                         "lines of its output:\n" + "".join(tail))
        error = ends.get("error")
        if error is not None:
            if error["type"] == TaskPreempted.__name__:
                raise TaskPreempted(error["message"])
            raise TaskProcessError(f"{error['type']}: {error['message']}\n{error['traceback']}")
        if code != 0:
            raise TaskProcessError(f"{launch.entrypoint_target} exited with code {code}; last {len(tail)} lines "
                                   "of its output:\n" + "".join(tail))
        if launch.entrypoint_kind == "function" and not launch.runs_server:
            return ends.get("result", {}).get("value")
        return {"exit_code": 0}

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
        into the storage path travels with its files; the run ends only once the head has them."""
        if not (self._gather and record.get("kind") == "checkpoint"):
            self.inbox.report.remote(record)
            return
        import ray

        ray.get(self.inbox.report.remote({**record, "files": read_tree(record["path"])}), timeout=GATHER_TIMEOUT_S)
        shutil.rmtree(record["path"], ignore_errors=True)  # the head's copy is the checkpoint now

    def _start_heartbeat(self) -> None:
        """Tell the controller this task is alive (and whether it got a preemption notice), from a
        thread. While a process trains, a beat goes out only if that process said it is alive since
        the last one: a stopped (SIGSTOP) or wedged process stops the beats and is seen as hung."""
        import ray

        def beat() -> None:
            sent = -1
            while True:
                child, count = self._child, self._alive_count
                if child is None or count != sent:
                    sent = count
                    reply = self.inbox.heartbeat.remote({"kind": "heartbeat", "task": self.task,
                                                         "pid": child or os.getpid(),
                                                         "notice": self._child_notice})
                    try:
                        told = ray.get(reply, timeout=HEARTBEAT_INTERVAL_S * 5)
                    except Exception:  # a slow inbox: the heartbeat is sent anyway, the answer waits
                        told = False
                    if told and not self._notice_pending:  # the controller saw our node being drained
                        self._notice_pending = True
                        self._signal_notice()
                time.sleep(HEARTBEAT_INTERVAL_S)

        threading.Thread(target=beat, name="tfray-heartbeat", daemon=True).start()

    def _signal_notice(self) -> None:
        """Deliver a preemption notice the way a cloud does: SIGTERM to the process that trains."""
        self._signal_child(signal.SIGTERM)

    def _signal_child(self, sig: int) -> None:
        child = self._child
        if child is not None:
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass

    def _stop_requested(self) -> bool:
        import ray

        return ray.get(self.inbox.stop_requested.remote(), timeout=30)

    def _pass_on_stop(self, stop_file: str) -> None:
        """Create the stop file once the controller asks side-cars to finish (the process polls it)."""
        while self._child is not None:
            if self._stop_requested():
                open(stop_file, "w").close()
                return
            time.sleep(STOP_POLL_S)

    def _relay_reports(self, read_fd: int, ends: dict) -> None:
        with os.fdopen(read_fd) as stream:
            for line in stream:
                try:
                    record = json.loads(line)
                except ValueError:
                    print(f"[tfray] unreadable report from the entrypoint: {line!r}", flush=True)
                    continue
                kind = record.get("kind")
                if kind == "alive":
                    self._alive_count += 1
                    self._child_notice = self._child_notice or record.get("notice")
                elif kind in ("result", "error"):
                    ends[kind] = record
                else:
                    self._forward(record)
