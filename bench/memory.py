"""Peak memory of a process tree, sampled from outside (psutil, from the ``bench`` extra).

The harness starts each run as one driver process; everything the run
starts (Ray's GCS and raylet, Ray Train's controller, task actors, or the
hand-launched TF processes) descends from it. A thread samples the tree's
resident set sizes every ``interval_s`` and keeps, per process, its peak and
what it is (for the breakdown), and the peak of the whole tree's sum. RSS
counts shared library pages in every process that maps them, so the tree's
sum overstates the memory in use; per process it is what ``top`` shows.
"""

from __future__ import annotations

import threading

import psutil

MB = 1024 * 1024


def _label(proc: psutil.Process) -> str:
    try:
        cmd = proc.cmdline()
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "?"
    if name.startswith("ray::"):  # a Ray worker names itself after its actor class
        return name
    if "workers.zygote" in cmd:  # ours: a task's launcher and the training processes it forks
        return "tfray launcher/training"
    for part in cmd:
        if part.startswith("bench.") or part.endswith((".py", "gcs_server", "raylet")):
            return part.rsplit("/", 1)[-1]
    return name


class TreeSampler:
    """Samples the RSS of ``root_pid`` and all its descendants until ``stop()``."""

    def __init__(self, root_pid: int, interval_s: float = 0.25):
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.peak_by_pid: dict[int, int] = {}
        self.label_by_pid: dict[int, str] = {}
        self.created_by_pid: dict[int, float] = {}
        self.parent_by_pid: dict[int, int] = {}
        self.peak_tree = 0
        self.peak_tree_parts: dict[str, int] = {}  # label -> RSS summed, at the tree's peak
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
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total, parts = 0, {}
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                if proc.pid not in self.created_by_pid:
                    self.created_by_pid[proc.pid] = proc.create_time()
                    self.parent_by_pid[proc.pid] = proc.ppid()
                # A Ray worker renames itself when it becomes an actor: label it as it is now.
                self.label_by_pid[proc.pid] = _label(proc)
                self.peak_by_pid[proc.pid] = max(self.peak_by_pid.get(proc.pid, 0), rss)
                total += rss
                label = self.label_by_pid[proc.pid]
                parts[label] = parts.get(label, 0) + rss
            if total > self.peak_tree:
                self.peak_tree, self.peak_tree_parts = total, parts
            self._stop.wait(self.interval_s)

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
