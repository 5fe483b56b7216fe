"""One run of the scale scenario: N light tasks on an already running multi-node Ray, ours or bare actors.

- ``ours``: this project's controller (``RayTaskGroup``, Prometheus gauges on,
  as ``tfray run`` has them) runs ``bench.light:train`` in N MultiWorkerMirrored
  tasks with tiny CPU shares, spread over the nodes, launchers without
  TensorFlow. Running: the driver received each task's first report.
- ``bare``: the floor with Ray and no orchestration: one placement group, N
  bare actors placed in it by hand, each answering ``ready``; a restart is
  what a hand-written script does: kill every actor, make N new ones in the
  same placement group, wait until each is ready.

Both measure, in this driver process: seconds from the start to every task
running; seconds from a SIGKILL of one task's process (ours: its training
process; bare: its actor) to every task running again; the driver's CPU
seconds per minute over a window while it only watches (ours: the
controller's loop; bare: a loop waiting on the actors' calls every 0.5 s, as
a script would), and its RSS (peak, and at the start). ``result.json`` has
them; ours adds the report latency (receipt minus send) and its phases.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.events import log_event

REPO = Path(__file__).resolve().parents[1]
POLL_S = 0.5  # the bare baseline's watch loop (the controller's own poll is settings.POLL_INTERVAL_S)


def _wait(predicate, timeout_s: float, what: str, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if not alive():
            raise RuntimeError(f"the run ended while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s:g}s")
        time.sleep(0.02)


def _watch_window(seconds: float, sleep=time.sleep) -> dict:
    """The driver's CPU seconds per minute and RSS over ``seconds`` of watching (this thread sleeps)."""
    proc = psutil.Process()
    before, rss = proc.cpu_times(), []
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        sleep(min(1.0, seconds - (time.monotonic() - began)))
        rss.append(proc.memory_info().rss)
    after, took = proc.cpu_times(), time.monotonic() - began
    cpu = (after.user + after.system) - (before.user + before.system)
    return {"watch_s": took, "cpu_s_per_min": cpu / took * 60, "rss_mb": max(rss) / 2**20}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_ours(args) -> dict:
    import ray

    from bench.drive_ours import timed_group
    from controller.machine.controller import Controller
    from controller.ray.prometheus import RayGauges
    from controller.report.metrics import read_metrics
    from controller.spec import parse_spec

    ray.init(address=args.address, log_to_driver=True)
    rss0 = psutil.Process().memory_info().rss / 2**20
    n = args.tasks
    spec = parse_spec({
        "name": f"scale-{n}", "strategy": "multi_worker_mirrored", "placement": "spread",
        "roles": {"worker": {"count": n, "resources": {"cpu": args.cpu}}},
        "entrypoint": {"function": "bench.light:train", "args": {"report_every_s": args.report_every_s}},
        "env": {"TFRAY_PREIMPORT_TF": "0"}, "storage_path": str(Path(args.run_dir) / "storage"),
        "timeouts": {"scheduling_s": args.timeout_s, "startup_s": args.timeout_s, "job_s": 3 * args.timeout_s}},
        base_dir=REPO)
    controller = Controller(spec, timed_group(args.events, spec.name), sys_path=[str(REPO)],
                            export_gauges=RayGauges())
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = controller.run()
        except BaseException as err:
            outcome["error"] = f"{type(err).__name__}: {err}"

    def running(restart: int) -> bool:
        latest = controller.collector.latest if controller.collector else {}
        return len(latest) == n and all(row["restart"] >= restart for row in latest.values())

    log_event(args.events, "run_entry", task="driver")
    t0 = time.time()
    thread = threading.Thread(target=run, name="controller", daemon=True)
    thread.start()
    out: dict = {"way": "ours", "tasks": n, "rss_start_mb": rss0}
    try:
        _wait(lambda: running(0), args.timeout_s, f"all {n} tasks running", thread.is_alive)
        out.update(_watch_window(args.watch_s))
        victim = "worker-1" if n > 1 else "worker-0"
        pid = controller.collector.latest[victim]["values"]["pid"]
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        log_event(args.events, "fault", task=victim, action="kill", index=0)
        _wait(lambda: running(1), args.timeout_s, f"all {n} tasks running again", thread.is_alive)
    finally:
        controller.stop("the benchmark is done")
        thread.join(120)
    rows = read_metrics(spec.job_dir)
    first: dict[tuple[int, str], float] = {}
    for row in rows:
        first.setdefault((row["restart"], row["task"]), row["time"])
    latency = sorted(row["time"] - row["task_time"] for row in rows)
    out.update(
        state=outcome["result"].state.value if "result" in outcome else "ERROR", error=outcome.get("error"),
        start_s=max(t for (r, _), t in first.items() if r == 0) - t0,
        recovery_s=max(t for (r, _), t in first.items() if r == 1) - t_kill,
        report_latency_median_s=latency[len(latency) // 2], report_latency_max_s=latency[-1],
        reports=len(rows), peak_rss_mb=_peak_rss_mb(), restarts=outcome["result"].restarts if "result" in outcome
        else None)
    ray.shutdown()
    return out


class BareActor:
    """What a task is at the least: a Ray actor in its bundle that says it is ready and then waits."""

    def __init__(self):
        self._stop = threading.Event()

    def ready(self) -> int:
        return os.getpid()

    def run(self) -> None:
        self._stop.wait()


def run_bare(args) -> dict:
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ray.init(address=args.address, log_to_driver=True)
    rss0 = psutil.Process().memory_info().rss / 2**20
    n = args.tasks
    actor_cls = ray.remote(BareActor)

    def make(pg) -> tuple[list, list[int]]:
        actors = [actor_cls.options(num_cpus=args.cpu, max_concurrency=2, scheduling_strategy=(
            PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=i))).remote()
            for i in range(n)]
        return actors, ray.get([a.ready.remote() for a in actors], timeout=args.timeout_s)

    t0 = time.time()
    pg = placement_group([{"CPU": args.cpu}] * n, strategy="SPREAD")
    ray.get(pg.ready(), timeout=args.timeout_s)
    actors, pids = make(pg)
    out: dict = {"way": "bare", "tasks": n, "rss_start_mb": rss0, "start_s": time.time() - t0}
    runs = {actors[i].run.remote(): i for i in range(n)}
    stop = threading.Event()

    def watch() -> None:  # what a hand-written script's monitor loop does
        while not stop.is_set():
            ready, _ = ray.wait(list(runs), num_returns=1, timeout=POLL_S)
            if ready:
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out.update(_watch_window(args.watch_s))
    t_kill = time.time()
    os.kill(pids[1 if n > 1 else 0], signal.SIGKILL)
    watcher.join(args.timeout_s)  # the dead actor's call ended: restart the group by hand
    for actor in actors:
        ray.kill(actor, no_restart=True)
    actors, pids = make(pg)
    out.update(recovery_s=time.time() - t_kill, state="SUCCEEDED", peak_rss_mb=_peak_rss_mb())
    stop.set()
    for actor in actors:
        ray.kill(actor, no_restart=True)
    remove_placement_group(pg)
    ray.shutdown()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("way", choices=["ours", "bare"])
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--address", required=True, help="the running Ray cluster")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--cpu", type=float, default=0.01, help="CPU share of each task")
    parser.add_argument("--watch-s", type=float, default=20.0, help="the window the driver's CPU is measured over")
    parser.add_argument("--report-every-s", type=float, default=2.0, help="ours: how often each task reports")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="bound on each wait")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    args.events = str(run_dir / "events.jsonl")
    sys.path.insert(0, str(REPO))
    try:
        out = (run_ours if args.way == "ours" else run_bare)(args)
    except Exception as err:  # reported in the table, not fatal to the sweep
        out = {"way": args.way, "tasks": args.tasks, "state": "ERROR", "error": f"{type(err).__name__}: {err}"}
    (run_dir / "result.json").write_text(json.dumps(out, indent=1, default=str))
    return 0 if out.get("state") in ("SUCCEEDED", "STOPPED") else 1


if __name__ == "__main__":
    sys.exit(main())
