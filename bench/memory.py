"""Peak memory of a process tree, sampled from outside (psutil, from the ``bench`` extra).

The harness starts each run as one driver process; everything the run
starts (Ray's GCS and raylet, Ray Train's controller, task actors, or the
hand-launched TF processes) descends from it. A thread samples the tree's
RSS every ``interval_s`` and its PSS as the tree grows (see PSS_READ_MIN_S),
and keeps, per process, its peak and what it is (for the breakdown), and the
peak of the whole tree's sum, each by proportional set size (PSS: a page
shared by N processes counts 1/N in each, so the tree's sum is the memory
really in use, a forked process's pages shared with its launcher counted
once) and by resident set size (RSS: what ``top`` shows; it counts shared
pages in every process that maps them).
"""

from __future__ import annotations

import os
import threading
import time

import psutil

MB = 1024 * 1024
# Reading a process's PSS makes the kernel walk its page tables: 17-20 ms of CPU for a TensorFlow process on
# this machine, against 0.02 ms for RSS. Read every 0.25 s for ours' ~15 processes (6 of them TensorFlow's),
# that is up to half a core of the two, taken from the training it measures, and more from ours than from
# hand-launched. So PSS is read only when the tree's RSS has grown 2 % past the last read, at most once a
# second: while memory grows, and not in the steady state.
PSS_READ_GROWTH = 0.02
PSS_READ_MIN_S = 1.0
# Each process's CPU time (user + system, from /proc/<pid>/stat: cheap) is read this often, for the CPU each
# part of the tree uses while a job trains (bench/figures.py, cpu_per_minute).
CPU_READ_S = 2.0
# The processes that exist only for one task of ours (its Ray actor, its launcher and what that forks).
TASK_OWN = ("ray::TaskActor", "tfray launcher/training")


def _label(proc: psutil.Process) -> str:
    try:
        cmd = proc.cmdline()
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "?"
    if name.startswith("ray::"):  # a Ray worker names itself after its actor class (and the method it runs)
        return name.split(".", 1)[0]
    if "workers.zygote" in cmd:  # ours: a task's launcher and the training processes it forks
        return "tfray launcher/training"
    for part in cmd:
        if part.startswith("bench.") or part.endswith((".py", "gcs_server", "raylet")):
            return part.rsplit("/", 1)[-1]
    return name


class TreeSampler:
    """Samples the memory of ``root_pid`` and all its descendants until ``stop()``."""

    def __init__(self, root_pid: int, interval_s: float = 0.25):
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.peak_by_pid: dict[int, int] = {}  # PSS
        self.rss_peak_by_pid: dict[int, int] = {}
        self.label_by_pid: dict[int, str] = {}
        self.created_by_pid: dict[int, float] = {}
        self.parent_by_pid: dict[int, int] = {}
        self.peak_tree = 0  # PSS
        self.rss_peak_tree = 0
        self.peak_tree_parts: dict[str, int] = {}  # label -> PSS summed, at the tree's peak
        self.cpu_series: list[tuple[float, dict[int, float]]] = []  # (wall time, CPU seconds so far by pid)
        # A task's actor, its launcher and the training processes forked from it, summed at the same reading
        # (peaks taken at different times would count the pages a launcher shares with its fork twice):
        # the peak of that sum, by the pid of the group's top process.
        self.task_group_peak: dict[int, int] = {}
        self.group_leaders: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)

    def start(self) -> "TreeSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
        except psutil.NoSuchProcess:
            return
        pss_read_at, rss_at_pss_read, cpu_read_at = float("-inf"), 0, float("-inf")
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss_by_proc = {}
            for proc in procs:
                try:
                    rss_by_proc[proc] = proc.memory_info().rss
                    if proc.pid not in self.created_by_pid:
                        self.created_by_pid[proc.pid] = proc.create_time()
                        self.parent_by_pid[proc.pid] = proc.ppid()
                        if os.getpgid(proc.pid) == proc.pid:  # a group leader: a launcher (see _task_group)
                            self.group_leaders.add(proc.pid)
                    # A Ray worker renames itself when it becomes an actor: label it as it is now (a process
                    # that is ending keeps the label it had).
                    label = _label(proc)
                    if label != "?" or proc.pid not in self.label_by_pid:
                        self.label_by_pid[proc.pid] = label
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ProcessLookupError):
                    continue
                self.rss_peak_by_pid[proc.pid] = max(self.rss_peak_by_pid.get(proc.pid, 0), rss_by_proc[proc])
            if time.monotonic() - cpu_read_at >= CPU_READ_S:
                cpu_read_at = time.monotonic()
                self.cpu_series.append((time.time(), self._cpu_seconds(rss_by_proc)))
            total_rss = sum(rss_by_proc.values())
            self.rss_peak_tree = max(self.rss_peak_tree, total_rss)
            now = time.monotonic()
            if total_rss > rss_at_pss_read * (1 + PSS_READ_GROWTH) and now - pss_read_at >= PSS_READ_MIN_S:
                self._read_pss(rss_by_proc)
                pss_read_at, rss_at_pss_read = now, total_rss
            self._stop.wait(self.interval_s)

    @staticmethod
    def _cpu_seconds(procs) -> dict[int, float]:
        out = {}
        for proc in procs:
            try:
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            out[proc.pid] = times.user + times.system
        return out

    def _read_pss(self, procs) -> None:
        total, parts, read = 0, {}, {}
        for proc in procs:
            try:
                pss = proc.memory_full_info().pss  # /proc/<pid>/smaps: costly, see PSS_READ_MIN_S
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            self.peak_by_pid[proc.pid] = max(self.peak_by_pid.get(proc.pid, 0), pss)
            read[proc.pid] = pss
            total += pss
            label = self.label_by_pid[proc.pid]
            parts[label] = parts.get(label, 0) + pss
        if total > self.peak_tree:
            self.peak_tree, self.peak_tree_parts = total, parts
        groups: dict[int, int] = {}
        for pid, pss in read.items():
            top = self._task_group(pid)
            if top is not None:
                groups[top] = groups.get(top, 0) + pss
        for top, pss in groups.items():
            self.task_group_peak[top] = max(self.task_group_peak.get(top, 0), pss)

    def _task_group(self, pid: int) -> int | None:
        """The topmost of a chain of a task's own processes (actor, launcher, training) above ``pid``."""
        if self.label_by_pid.get(pid) not in TASK_OWN:
            return None
        # A launcher forked by its node's hub (workers/launcher_share.py) leads its own process group under the
        # hub's launcher: it and its runs are its own task's, not the hub's (that task's actor is elsewhere).
        while self.label_by_pid.get(self.parent_by_pid.get(pid)) in TASK_OWN and not self._hub_copy(pid):
            pid = self.parent_by_pid[pid]
        return pid

    def _hub_copy(self, pid: int) -> bool:
        parent = self.parent_by_pid.get(pid)
        return pid in self.group_leaders and self.label_by_pid.get(parent) == "tfray launcher/training"

    def leftovers(self) -> list[psutil.Process]:
        """Processes this run started that are still alive (same pid and start time)."""
        alive = []
        for pid, created in self.created_by_pid.items():
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                continue
        return alive
