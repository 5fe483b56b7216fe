"""The task actor's handle on its launcher process (``workers/zygote.py``).

The actor starts the launcher when it starts (the launcher imports
TensorFlow meanwhile), or has its node's hub fork one for it
(``workers/launcher_share.py``), and asks it, over a SOCK_SEQPACKET socket
pair, to fork each run's training process. A launcher the actor started dies
with it (``PR_SET_PDEATHSIG``); one forked by the hub ends on end of file on
the socket pair. A launcher that died is reported, never waited on.
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading

from workers import launcher_share
from workers.zygote import MAX_MESSAGE, ZYGOTE_FD_ENV, die_with_parent


def _own_group() -> None:
    """In the launcher before it starts: die with the actor, and in a process group of its own, so a signal
    to the driver's group (Ctrl-C, a `stop`) never reaches a training process as if it were a preemption
    notice: the controller decides what each task is told."""
    die_with_parent()
    os.setpgid(0, 0)


PRINTED_LINES = 200  # the launcher's own output kept for the next run's log (its import banners)


class LauncherDied(RuntimeError):
    """The launcher process is gone, or a run was stopped before its process existed."""


class LauncherClient:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.proc: subprocess.Popen | None = None  # a launcher this actor started
        self.pid: int | None = None
        self._pidfd: int | None = None  # a launcher forked for this actor by its node's hub: not our child
        self.ready = False
        # What the launcher itself prints (its TensorFlow import's banners): kept for the task's log.
        self.printed: collections.deque[str] = collections.deque(maxlen=PRINTED_LINES)
        self._start(launcher_share.hub_name(env))

    def _start(self, hub: str | None) -> None:
        """Ask the node's hub for a launcher, or start one (the hub itself when ``hub`` is free)."""
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener = launcher_share.claim(hub) if hub else None
        if hub and listener is None:
            out_r, out_w = os.pipe()
            asked = launcher_share.ask(hub, theirs, out_w)
            os.close(out_w)
            if asked:
                theirs.close()  # the hub's copy holds it now
                self._read_printed(os.fdopen(out_r, errors="replace"))
                return
            os.close(out_r)  # nothing was sent: the pair serves a launcher of our own
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `workers` is importable from
        path = os.pathsep.join(filter(None, [here, self.env.get("PYTHONPATH")]))
        fds = (theirs.fileno(), *([listener.fileno()] if listener else []))
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "workers.zygote"],
            env={**self.env, "PYTHONPATH": path, ZYGOTE_FD_ENV: str(theirs.fileno()),
                 **({launcher_share.HUB_FD_ENV: str(listener.fileno())} if listener else {})},
            pass_fds=fds, preexec_fn=_own_group,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        self.pid = self.proc.pid
        theirs.close()
        if listener is not None:
            listener.close()  # the launcher holds the name now: it is free again once the launcher ends
        self._read_printed(self.proc.stdout)

    def _read_printed(self, stream) -> None:
        threading.Thread(target=self._keep_printed, args=(stream,), name="tfray-launcher-output",
                         daemon=True).start()

    def _keep_printed(self, stream) -> None:
        for line in stream:
            self.printed.append(line)

    def take_printed(self) -> list[str]:
        """The launcher's own lines since the last call."""
        lines = []
        while self.printed:
            lines.append(self.printed.popleft())
        return lines

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self._pidfd is not None:  # readable once the process has ended
            return not select.select([self._pidfd], [], [], 0)[0]
        return True  # asked for, not ready yet: fork() finds out

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
            if not message and self.proc is None and self.pid is None:
                self.ctl.close()
                self._start(None)  # the hub ended before it forked ours: a launcher of our own
                continue
            if not message:
                raise self._died()
            self.ready = bool(message.get("ready"))
            if self.ready and self.proc is None:
                self.pid = message["pid"]
                self._pidfd = os.pidfd_open(self.pid)
        socket.send_fds(self.ctl, [json.dumps({"request": request_path}).encode()], [report_fd, out_fd])
        message = self.receive()
        if "pid" not in message:
            raise self._died()
        return message["pid"]

    def wait_exit(self) -> int:
        """The exit code of the process forked last (negative: the signal that killed it)."""
        message = self.receive()
        if "exit" not in message:
            raise self._died()
        return message["exit"]

    def close(self) -> None:
        self.ctl.close()  # a launcher forked by the hub ends on this; one this actor started is killed
        if self.proc is not None:
            if self.alive():
                self.proc.kill()
            self.proc.wait()
        elif self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(self._pidfd)
            self._pidfd = None

    def _died(self) -> LauncherDied:
        code = self.proc.poll() if self.proc is not None else "unknown: forked by its node's hub"
        return LauncherDied(f"the task's launcher process died (exit {code})")
