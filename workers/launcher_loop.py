"""The launcher's loop: the actor's runs, one at a time, and, in a hub, launchers for the node's other actors.

A launcher (``workers/zygote.py``) waits on three things at once: its actor's
socket (a run to fork, or end of file: the actor is gone, and the launcher
ends), the process of the run in progress (its pidfd: the exit to report),
and, when it is its node's hub (``workers/launcher_share.py``), the socket
other actors ask on. A request to the hub is served while a run goes on: the
other actors' tasks start with the job, when this one's run has begun.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys
from collections.abc import Callable

from workers import launcher_share

MAX_MESSAGE = 65536  # one message on a launcher's socket pair


def serve(ctl: socket.socket, listener: socket.socket | None, run_child: Callable[[str, int, int], None]) -> None:
    """Serve the actor's runs, one at a time, until the actor is gone; as a hub, also fork a launcher for each
    other actor that asks (``workers/launcher_share.py``), while a run goes on or not."""
    ctl.send(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    sel = selectors.DefaultSelector()
    sel.register(ctl, selectors.EVENT_READ, "actor")
    if listener is not None:
        sel.register(listener, selectors.EVENT_READ, "hub")
    run: tuple[int, int] | None = None  # the training process: pid, pidfd
    copies: set[int] = set()  # launchers forked for other actors, reaped as they end
    while True:
        for key, _ in sel.select(timeout=5.0 if copies else None):
            if key.data == "actor":
                try:
                    message, fds, _, _ = socket.recv_fds(ctl, MAX_MESSAGE, 2)
                except OSError:
                    return
                if not message:
                    return  # the actor is gone: so is this launcher, and its run with it (parent-death signal)
                request = json.loads(message)["request"]
                pid = _fork(lambda request=request, fds=fds: run_child(request, *fds), sel)
                for fd in fds:
                    os.close(fd)
                ctl.send(json.dumps({"pid": pid}).encode())
                run = (pid, os.pidfd_open(pid))  # readable once it ends: the loop serves on meanwhile
                sel.register(run[1], selectors.EVENT_READ, "run")
            elif key.data == "run" and run is not None:
                sel.unregister(run[1])
                os.close(run[1])
                _, status = os.waitpid(run[0], 0)
                run = None
                try:
                    ctl.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
                except OSError:
                    return
            elif key.data == "hub" and (asked := launcher_share.take_request(listener)) is not None:
                copies.add(_fork(lambda asked=asked: _become_launcher(*asked, run_child), sel))
                for fd in asked:
                    os.close(fd)
        copies = {pid for pid in copies if not _ended(pid)}


def _fork(then, sel: selectors.BaseSelector) -> int:
    """Fork; the new process drops this launcher's sockets and selector and runs ``then`` (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            for key in list(sel.get_map().values()):
                os.close(key.fd)
            sel.close()
            then()
        finally:
            os._exit(1)  # ``then`` ends the process itself; this only if it raised
    return pid


def _become_launcher(ctl_fd: int, out_fd: int, run_child: Callable[[str, int, int], None]) -> None:
    """In a process forked from a hub: the launcher of the actor that asked, talking over its socket pair and
    printing to its pipe. Its own process group, as a launcher the actor started has, in a session of its own:
    in the hub's session the hub's end would orphan this group, and the kernel continues (SIGCONT) and hangs up
    (SIGHUP) every stopped process of a group orphaned so, a run stopped as hung included (POSIX's orphaned
    process groups; a new session's group is orphaned from its start, so nothing is sent)."""
    os.setsid()
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    serve(socket.socket(fileno=ctl_fd), None, run_child)
    os._exit(0)


def _ended(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True
