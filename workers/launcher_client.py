"""The task actor's handle on its launcher process (``workers/zygote.py``).

The actor starts the launcher when it starts (the launcher imports
TensorFlow meanwhile) and asks it, over a SOCK_SEQPACKET socket pair, to
fork each run's training process. The launcher dies with the actor
(``PR_SET_PDEATHSIG``), and a launcher that died is reported, never waited on.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import threading

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
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `workers` is importable from
        path = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "workers.zygote"],
            env={**env, "PYTHONPATH": path, ZYGOTE_FD_ENV: str(theirs.fileno())},
            pass_fds=(theirs.fileno(),), preexec_fn=_own_group,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        theirs.close()
        self.ready = False
        # What the launcher itself prints (its TensorFlow import's banners): kept for the task's log.
        self.printed: collections.deque[str] = collections.deque(maxlen=PRINTED_LINES)
        threading.Thread(target=self._keep_printed, name="tfray-launcher-output", daemon=True).start()

    def _keep_printed(self) -> None:
        for line in self.proc.stdout:
            self.printed.append(line)

    def take_printed(self) -> list[str]:
        """The launcher's own lines since the last call."""
        lines = []
        while self.printed:
            lines.append(self.printed.popleft())
        return lines

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
                raise self._died()
            self.ready = bool(message.get("ready"))
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
        self.ctl.close()
        if self.alive():
            self.proc.kill()
        self.proc.wait()

    def _died(self) -> LauncherDied:
        return LauncherDied(f"the task's launcher process died (exit {self.proc.poll()})")
