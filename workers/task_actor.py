"""The task actor: one Ray actor per TensorFlow task.

Its life: when it starts it launches the task's launcher process
(``workers/launcher_client.py``), which imports TensorFlow while the actor
reserves a port on its node and keeps it (SO_REUSEPORT, bound but not
listening, so connections never land on it) and reports ``host:port``.
``run(launch)`` then has the launcher fork the process that trains, with
``TF_CONFIG``, the job's environment and the task's context; the entrypoint
(a function, a script or a module) runs there, its output streamed and its
reports relayed through a pipe. TensorFlow binds the reserved port itself
with ``TF_GRPC_REUSE_PORT=true``; without the reservation another process
could take the port between "free" and "bound" (Ray issue #34271).

``run`` returns a :class:`protocol.wire.TaskEnd` (finished with the
entrypoint's value, or failed with its cause and its error as text), never
an exception, so a TensorFlow exception never travels to the driver.
A restart of the cluster (``stop_run`` then ``run`` again) kills the
training process and forks a new one from the same launcher. This module
imports no TensorFlow, so the driver can import it.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import threading
import time
import traceback

from protocol import wire
from protocol.data_service import DATA_SERVICE_ENV
from protocol.layout import KERAS_BACKUP_DIR
from protocol.scratch import make_scratch
from protocol.streaming import as_arrays, read_chunks
from protocol.wire import ActorConfig, FailureCause, RestorePoint, TaskEnd, TaskLaunch
from workers import gpus
from workers.context import CONTEXT_ENV, STOP_FILE_ENV, CheckpointUnreadable, TaskContext
from workers.heartbeat import Heartbeat
from workers.inbox_sender import InboxSender
from workers.launcher_client import LauncherClient, LauncherDied
from workers.preemption import TaskPreempted
from workers.process_settings import readback, set_niceness
from workers.server_probe import wait_for_servers
from workers.task_output import TaskOutput
from workers.task_storage import TaskStorage

# Exceptions from the training process that are not bugs in the user's code.
ERROR_CAUSES = {TaskPreempted.__name__: FailureCause.STOPPED_ON_NOTICE,
                CheckpointUnreadable.__name__: FailureCause.CHECKPOINT_UNREADABLE}


def error_text(error: dict, cause: FailureCause) -> str:
    """How a training process's exception (its ``error`` record, ``workers/zygote.py``) is told in its end: a
    notice's message alone; a user error's explanation, when it has one, in place of its traceback (which stays
    in the task's log); else its type, message and traceback. Our own exceptions keep their own words."""
    if cause is FailureCause.STOPPED_ON_NOTICE:
        return error["message"]
    if cause is FailureCause.USER_ERROR and error.get("explanation"):
        return error["explanation"]
    return f"{error['type']}: {error['message']}\n{error['traceback']}"


def _restore_args(restore: RestorePoint | None) -> dict:
    """A launch's restore point as the context takes it (its ``latest_checkpoint*``, part of the user's API)."""
    if restore is None:
        return {}
    return {"restore_from": restore.path, "restore_step": restore.step, "restore_epoch": restore.epoch,
            "restore_batch": restore.batch}


class TaskActor:
    """One task of the job; made a Ray actor by ``controller/ray/group.py`` (with max_concurrency > 1,
    so ``stop_run`` can end a ``run`` that is in progress)."""

    def __init__(self, config: ActorConfig, inbox):
        os.environ.update(config.env)  # the launcher starts with the job's environment
        # ... and sees exactly the GPUs Ray assigned this task (none without one), set before the launcher
        # imports TensorFlow; every training process it forks gets them again in its own environment.
        self.gpu_ids = gpus.assigned_gpus()
        memory = gpus.device_memory_mb(config.nvidia_smi_timeout_s) if config.devices.memory == "share" else None
        self.device_env, self.device_note = gpus.device_env(config.devices, self.gpu_ids, memory,
                                                            config.gpu_context_reserve_mb)
        os.environ.update(self.device_env)
        self.niceness_note = set_niceness(config.niceness)  # before the launcher starts: it inherits the value
        self.config = config
        self.key = config.key
        self.inbox = inbox
        self.sender = InboxSender(inbox, config.inbox_call_timeout_s)
        self.storage = TaskStorage(inbox, self.sender, config.gather_timeout_s)
        self._port_socket: socket.socket | None = None
        self._launcher = LauncherClient(dict(os.environ))
        self._run_lock = threading.Lock()  # one run at a time: the next waits until the last one ended
        self._stopping = threading.Event()  # set by stop_run: the run in progress is to end now
        self._child: int | None = None  # pid of the process that trains now
        self._alive_count = 0  # the training process's alive messages so far
        self._notice_pending = False  # the controller told this task to save and stop (its node drains)
        self._child_notice: float | None = None  # when the training process got a notice (SIGTERM)
        Heartbeat(config, inbox, lambda: (self._child, self._alive_count, self._child_notice),
                  self._on_drain_notice).start()

    def __repr__(self) -> str:  # Ray prefixes this task's log lines with it
        return str(self.key)

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
            self._launcher = LauncherClient(dict(os.environ))
        return {"address": f"{ray.util.get_node_ip_address()}:{self._port_socket.getsockname()[1]}",
                "node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
                "pid": os.getpid(), "gpus": tuple(self.gpu_ids)}

    def read_chunks(self, folder: str, remove_after: bool = False):
        """Files on this task's node (a checkpoint, the chief's folders), streamed to the job's inbox on the
        head in chunks (``protocol/streaming.py``); the folder is removed once read if ``remove_after``."""
        yield from as_arrays(read_chunks(folder, remove_after))

    def stop_run(self) -> bool:
        """End the run in progress (its training process is killed) and wait until it has ended,
        so this actor can run again for a restart. True when it did within the bound."""
        self._stopping.set()
        self._notice_pending = False  # a notice belongs to the run it was sent to
        self._signal_child(signal.SIGKILL)
        if not self._run_lock.acquire(timeout=self.config.stop_run_timeout_s):
            return False
        self._run_lock.release()
        return True

    def run(self, launch: TaskLaunch) -> TaskEnd:
        """Run the entrypoint to its end in a fresh process; how it ended."""
        with self._run_lock:
            self._stopping.clear()
            try:
                return self._run(launch)
            except LauncherDied as err:
                return TaskEnd.failed(self.key, FailureCause.PROCESS_DIED, f"{self.key}: {err}")
            except Exception as err:  # before the process existed: the servers, the storage
                return TaskEnd.failed(self.key, FailureCause.USER_ERROR,
                                      f"{type(err).__name__}: {err}\n{traceback.format_exc()}")

    def _run(self, launch: TaskLaunch) -> TaskEnd:
        env = {**launch.entrypoint.env, **self.device_env}  # for the training process (this actor has it already)
        if launch.tf_config is not None:
            env["TF_CONFIG"] = json.dumps(launch.tf_config)
        if launch.data_service:  # for a stock script's tf.data.experimental.service.distribute
            env[DATA_SERVICE_ENV] = launch.data_service
        job_dir, restore = self.storage.prepare(launch)
        env.update(self.storage.output_env(launch, job_dir))
        self._output = output = TaskOutput(self.inbox, self.key, job_dir, launch.attempt, self.config.log_max_bytes,
                                           self.config.log_backups, self.config.output_flush_s)
        output.write(f"[tfray] {time.ctime()}: run {launch.run} of the cluster in attempt {launch.attempt}\n",
                     console=False)
        for line in self._launcher.take_printed():  # its TensorFlow import's banners: the log keeps them
            output.write(line, console=False)
        for note in (self.storage.note, self.device_note, self.niceness_note):
            if note:
                output.note(note)
        ctx = TaskContext(
            job_name=launch.job_name, job_dir=job_dir, attempt=launch.attempt, strategy=launch.strategy,
            role=launch.role, index=launch.index, is_chief=launch.is_chief, num_workers=launch.num_workers,
            args=launch.entrypoint.args, checkpoint_every_n_epochs=launch.checkpoint_every_n_epochs,
            faults=launch.faults, preemption_grace_s=launch.preemption_grace_s, **_restore_args(restore),
            address=launch.address, data_service=launch.data_service,
        )
        if launch.servers:
            wait_for_servers(launch.servers, launch.server_wait_s, self.config.server_probe_max_s,
                             self._stopping.is_set)
        if self._stopping.is_set():
            raise LauncherDied("the run was stopped before it began")
        work = make_scratch()
        try:
            return self._run_in(launch, ctx, env, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            output.close()
            self.storage.finish(launch, job_dir)
            self.sender.flush()  # the driver, seeing this run's end, finds every report of it in the inbox

    def _run_in(self, launch: TaskLaunch, ctx: TaskContext, env: dict, work: str) -> TaskEnd:
        """Fork the training process (its request and stop file in ``work``), stream it, say how it ended."""
        stop_file, ep = os.path.join(work, "stop"), launch.entrypoint
        env.update({CONTEXT_ENV: ctx.to_env(), STOP_FILE_ENV: stop_file,
                    "PYTHONPATH": os.pathsep.join([*ep.sys_path, *filter(None, [os.environ.get("PYTHONPATH")])])})
        kind = "serve" if launch.runs_server else ep.kind
        code = kind in ("script", "module")
        request = os.path.join(work, "request.json")  # read by workers/zygote.py; it stays on this node
        with open(request, "w") as f:
            json.dump({"env": env, "sys_path": list(ep.sys_path), "kind": kind, "cwd": ep.cwd if code else None,
                       "keras_backup_dir": os.path.join(ctx.job_dir, KERAS_BACKUP_DIR)
                       if code and ep.keras_backup else None,
                       "target": ep.target, "args": ep.args, "argv": list(ep.argv),
                       "alive_interval_s": self.config.alive_interval_s, "cpu_affinity": list(launch.cpu_affinity),
                       "exit_handlers_s": self.config.exit_handlers_s}, f)
        report_r, report_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self._child = self._launcher.fork(request, report_w, out_w)
        finally:
            os.close(report_w)
            os.close(out_w)
        if self._stopping.is_set():  # stop_run came while the process was being forked
            self._signal_child(signal.SIGKILL)
        self._output.write(f"[tfray] training process {self._child}: {readback(self._child)}\n", console=False)
        self._alive_count += 1  # a beat for the new process: it exists
        self._child_notice = None
        if self._notice_pending:  # the node's drain notice came while no process trained
            self._signal_child(signal.SIGTERM)
        ends: dict = {}
        relay = threading.Thread(target=self._relay_reports, args=(report_r, ends), daemon=True)
        relay.start()
        if launch.role == "evaluator":  # side-cars learn that training is over through the stop file
            threading.Thread(target=self._pass_on_stop, args=(stop_file,), daemon=True).start()
        tail: collections.deque[str] = collections.deque(maxlen=self.config.output_tail_lines)
        with os.fdopen(out_r, errors="replace") as printed:
            for line in printed:  # to the task's log, and in batches to the driver's console
                self._output.write(line)
                tail.append(line)
        try:
            code = self._launcher.wait_exit()
        finally:
            self._child = None
        relay.join(timeout=self.config.gather_timeout_s)  # the pipe closes when the process exits
        return self._outcome(launch, code, ends, "".join(tail))

    def _outcome(self, launch: TaskLaunch, code: int, ends: dict, tail: str) -> TaskEnd:
        last = f"last {tail.count(chr(10))} lines of its output:\n{tail}"
        if code < 0 or self._stopping.is_set():
            return TaskEnd.failed(self.key, FailureCause.PROCESS_DIED,
                                  f"{self.key}'s process was killed by signal {-code}; {last}")
        error = ends.get(wire.ERROR)
        if error is not None:
            cause = ERROR_CAUSES.get(error["type"], FailureCause.USER_ERROR)
            return TaskEnd.failed(self.key, cause, error_text(error, cause))
        if code != 0:
            return TaskEnd.failed(self.key, FailureCause.USER_ERROR,
                                  f"{launch.entrypoint.target} exited with code {code}; {last}")
        if launch.entrypoint.kind == "function" and not launch.runs_server:
            return TaskEnd.done(self.key, ends.get(wire.RESULT, {}).get("value"))
        return TaskEnd.done(self.key, {"exit_code": 0})

    def _on_drain_notice(self) -> None:
        """The controller saw this task's node being drained: a notice, as a cloud sends SIGTERM."""
        if not self._notice_pending:
            self._notice_pending = True
            self._signal_child(signal.SIGTERM)

    def _signal_child(self, sig: int) -> None:
        child = self._child
        if child is not None:
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass

    def _pass_on_stop(self, stop_file: str) -> None:
        """Create the stop file once the controller asks side-cars to finish (the process polls it)."""
        import ray

        while self._child is not None:
            if ray.get(self.inbox.stop_requested.remote(), timeout=self.config.inbox_call_timeout_s):
                try:
                    open(stop_file, "w").close()
                except FileNotFoundError:
                    pass  # the run ended while the inbox answered: its scratch folder is gone, nothing to stop
                return
            time.sleep(self.config.sidecar_poll_s)

    def _relay_reports(self, read_fd: int, ends: dict) -> None:
        """The training process's pipe: its alive beats and its end (kept here), its reports (typed again and
        passed on to the inbox)."""
        with os.fdopen(read_fd) as stream:
            for line in stream:
                try:
                    record = json.loads(line)
                    kind = record.get("kind")
                    if kind == wire.ALIVE:
                        self._alive_count += 1
                        self._child_notice = self._child_notice or record.get("notice")
                    elif kind in (wire.RESULT, wire.ERROR):
                        ends[kind] = record
                    else:
                        self.storage.forward(wire.report_from_json(record))
                except (ValueError, AttributeError):
                    self._output.note(f"unreadable report from the entrypoint: {line!r}")
