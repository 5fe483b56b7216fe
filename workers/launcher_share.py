"""One TensorFlow import per node, not per task: a launcher serves its node's other task actors too.

A launcher (``workers/zygote.py``) costs its task a Python start and a
TensorFlow import: about 5 CPU-seconds here, a third of what a small job's
task spends in all (issue 22's measurements in the closing notes). The tasks of
a job on one node start their launchers with the same environment, so the
imports are the same work done again. Instead the first task actor on a node
starts its launcher as a *hub*: the launcher also listens on an abstract Unix
socket named after that environment. The next actor that would start a
launcher with the same environment asks the hub instead, which forks a copy of
itself for it: the actor's own launcher, TensorFlow already imported, talking
to the actor over the socket pair the actor sent, exactly as a launcher the
actor started would. From then on the copy owes the hub nothing:

- it ends when its actor is gone (end of file on the socket pair) and its
  training process with it (that process's parent-death signal), as a
  launcher the actor started would;
- the hub ending (its actor killed) ends neither the copies nor their runs;
  the name is free again and the next actor to start becomes the new hub;
- a copy is only ever made for the same environment, nice value, CPU
  affinity, working folder and Python: what the process would have inherited
  from its own actor. ``/proc/PID/environ`` (what ``readback`` reads) shows the
  same values.

Abstract socket names live in a network namespace, so a node with its own
address (its own namespace) has its own hubs, and nothing is left on disk when
the last holder of the socket ends. ``TFRAY_SHARE_LAUNCHER=0`` in a job's env
turns it off: every task starts its own launcher, as before. It is off by itself
where Ray was started with ``RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper``:
then the raylet kills every descendant of a worker that exits, recursively,
and the copies are the hub's actor's descendants (Ray's
``doc/source/ray-core/user-spawn-processes.rst``; its default kills only a
worker's direct children, the launcher it started, never the copies).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys

SHARE_ENV = "TFRAY_SHARE_LAUNCHER"
HUB_FD_ENV = "TFRAY_LAUNCHER_HUB_FD"
RECURSIVE_KILL_ENV = "RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper"
CONNECT_TIMEOUT_S = 5.0  # bound on handing a request to a hub (it is queued, never served, in that time)


def hub_name(env: dict[str, str]) -> str | None:
    """The abstract socket name of the hub for a launcher started with ``env`` from this process; None when
    sharing is off."""
    if env.get(SHARE_ENV) == "0" or not sys.platform.startswith("linux"):
        return None
    if env.get(RECURSIVE_KILL_ENV, "").lower() in ("1", "true"):
        return None
    what = {"env": sorted(env.items()), "python": sys.executable, "cwd": os.getcwd(),
            "nice": os.getpriority(os.PRIO_PROCESS, 0), "cpus": sorted(os.sched_getaffinity(0))}
    return "\0tfray-launcher-" + hashlib.sha256(json.dumps(what).encode()).hexdigest()[:32]


def claim(name: str) -> socket.socket | None:
    """The hub's listening socket, if no launcher holds ``name`` yet (then the caller's launcher is the hub);
    None when one does."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(name)
    except OSError:
        listener.close()
        return None
    listener.listen(64)
    return listener


def ask(name: str, theirs: socket.socket, out_fd: int) -> bool:
    """Ask the hub at ``name`` to fork a launcher that talks over ``theirs`` and prints to ``out_fd``; False
    when no hub answers (then the caller starts its own). The copy says it is ready on the socket pair."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.settimeout(CONNECT_TIMEOUT_S)
    try:
        conn.connect(name)
        socket.send_fds(conn, [json.dumps({"launcher": True}).encode()], [theirs.fileno(), out_fd])
        return True
    except OSError:
        return False
    finally:
        conn.close()


def take_request(listener: socket.socket) -> tuple[int, int] | None:
    """In the hub: the next request's socket pair end and output fd (None for a caller that went away)."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return None
    with conn:
        conn.settimeout(CONNECT_TIMEOUT_S)
        try:
            message, fds, _, _ = socket.recv_fds(conn, 4096, 2)
        except OSError:
            return None
    if not message or len(fds) != 2:
        for fd in fds:
            os.close(fd)
        return None
    return fds[0], fds[1]
