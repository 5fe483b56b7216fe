"""A task's processes run as a user's own would: its nice value set, and what its training process got, read back.

Ray starts its worker processes at nice 15 (its ``worker_niceness``), and
everything a task actor starts inherits that: its launcher and every training
process forked from it. On Linux a nice value belongs to a thread, so the
actor sets it on each of its threads; the launcher it starts next, and every
process that forks, inherits it. Raising priority (a lower value) needs root
or CAP_SYS_NICE; without them the task runs at what it has and says so once.
"""

from __future__ import annotations

import os

from protocol.threads import THREAD_VARS


def set_niceness(target: int | None) -> str | None:
    """Give this process (every thread of it) the nice value ``target``; None when done or not asked, else a
    note that says what it runs at and how to get ``target``."""
    if target is None:
        return None
    now = os.getpriority(os.PRIO_PROCESS, 0)
    if now == target:
        return None
    try:
        for thread in _threads():
            os.setpriority(os.PRIO_PROCESS, thread, target)
    except PermissionError:
        return (f"its processes run at nice {now}, not {target} (process.niceness): a lower nice value needs "
                f"root or CAP_SYS_NICE; start Ray with RAY_worker_niceness={target} in its environment (a local "
                "tfray run and the cluster_configs do)")
    except ProcessLookupError:  # a thread that ended meanwhile: the rest have it
        pass
    return None


def pin(cpus: list[int]) -> None:
    """Run this process (every thread of it, and every thread it starts later) on ``cpus`` only
    (``roles.<role>.cpu_affinity``); a clear error when this node has none of them."""
    on_node = os.sched_getaffinity(0)
    wanted = set(cpus) & on_node
    if not wanted:
        raise ValueError(f"cpu_affinity {sorted(cpus)}: this node's CPUs are {sorted(on_node)}; name CPUs it has")
    for thread in _threads():
        try:
            os.sched_setaffinity(thread, wanted)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: the calling thread, whose children inherit it
        return [0]


def readback(pid: int) -> str:
    """What a running process really got: its nice value and thread settings, read from /proc (this
    machine's view of it, not what was asked), e.g. 'nice 0, OMP_NUM_THREADS=1, TF_NUM_INTRAOP_THREADS
    unset, TF_NUM_INTEROP_THREADS unset' (unset: TensorFlow sizes that pool itself)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        nice = fields[16]  # field 19 of proc(5), counted from the state (field 3)
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(item.decode(errors="replace").split("=", 1) for item in f.read().split(b"\0") if b"=" in item)
    except (OSError, IndexError):
        return "(its settings cannot be read: no /proc, or it has ended)"
    threads = ", ".join(f"{name}={env[name]}" if name in env else f"{name} unset" for name in THREAD_VARS)
    try:
        cpus = os.sched_getaffinity(pid)
    except OSError:
        cpus = set()
    pinned = f", CPUs {','.join(map(str, sorted(cpus)))}" if cpus and cpus != os.sched_getaffinity(0) else ""
    return f"nice {nice}, {threads}{pinned}"
