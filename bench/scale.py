"""The scale scenario: how start, recovery and the driver's cost grow with the task count.

``python -m bench.scale --tasks 4,16,64`` starts a multi-node Ray on this
machine (``ray.cluster_utils.Cluster``: a head and ``--nodes - 1`` worker
nodes, all on one IP) once per repetition, and runs each way at each task
count on it as its own driver process (``bench/drive_scale.py``), the order alternating so
neither way always goes first: this project's controller with N light tasks
(no TensorFlow), and N bare Ray actors placed by hand (the floor). It
prints one row per task count with both ways' figures and ours over bare;
``results.json`` and ``table.md`` keep them. It runs on its own (it is not
yet a scenario of ``python -m bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WAYS = ("ours", "bare")
# label, result key, digits, ratio of ours over bare?
FIGURES = (
    ("start to every task running (s)", "start_s", 2, True),
    ("SIGKILL to every task running again (s)", "recovery_s", 2, True),
    ("driver CPU while watching (s per min)", "cpu_s_per_min", 2, True),
    ("driver peak RSS (MB)", "peak_rss_mb", 0, True),
    ("report latency, median (ms)", "report_latency_median_ms", 0, False),
)


def start_cluster(nodes: int, cpus_per_node: float):
    """A head and ``nodes - 1`` worker nodes (docs/design.md §6: several Ray nodes on one machine)."""
    from ray._common.utils import get_default_ray_temp_dir
    from ray.cluster_utils import Cluster

    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)  # Cluster writes the address there
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": cpus_per_node, "include_dashboard": False,
        "temp_dir": tempfile.mkdtemp(prefix="tfr", dir="/tmp")})  # short: socket paths have a limit
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus_per_node)
    cluster.wait_for_nodes()
    return cluster


def run_way(way: str, tasks: int, address: str, run_dir: Path, args) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "bench.drive_scale", way, f"--tasks={tasks}", f"--address={address}",
           f"--run-dir={run_dir}", f"--watch-s={args.watch_s}", f"--cpu={args.cpu}",
           f"--report-every-s={args.report_every_s}", f"--timeout-s={args.timeout_s}"]
    began, load = time.time(), os.getloadavg()[0]
    with open(run_dir / "driver.log", "w") as log:
        try:
            subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                           timeout=4 * args.timeout_s)
        except subprocess.TimeoutExpired:
            pass
    result_file = run_dir / "result.json"
    out = json.loads(result_file.read_text()) if result_file.exists() else {"state": "TIMEOUT"}
    if out.get("report_latency_median_s") is not None:
        out["report_latency_median_ms"] = out["report_latency_median_s"] * 1000
    out.update(way=way, tasks=tasks, wall_s=time.time() - began, load_avg=(load, os.getloadavg()[0]))
    return out


def sweep(args) -> list[dict]:
    """Every task count on one multi-node Ray per repetition (each run is its own driver, and its actors
    are gone when it ends), the ways' order alternating."""
    out = Path(args.out)
    runs = []
    for rep in range(args.reps):
        began = time.time()
        cluster = start_cluster(args.nodes, args.cpus_per_node)
        print(f"  scale: a {args.nodes}-node Ray up in {time.time() - began:.0f}s", flush=True)
        try:
            for i, tasks in enumerate(args.tasks):
                order = list(args.ways) if (rep + i) % 2 == 0 else list(reversed(args.ways))
                for way in order:
                    run = run_way(way, tasks, cluster.address, out / f"rep{rep + 1}" / f"scale{tasks}-{way}", args)
                    runs.append({**run, "rep": rep})
                    print(f"  scale: {tasks:>3} tasks {way:<5} {run.get('state')} in {run['wall_s']:.0f}s"
                          + (f" ({run['error']})" if run.get("error") else ""), flush=True)
        finally:
            cluster.shutdown()
    return runs


def _median(values: list) -> float | None:
    got = sorted(v for v in values if v is not None)
    return got[len(got) // 2] if got else None


def table(runs: list[dict], counts: list[int]) -> str:
    """One row per figure and task count: each way's median, and ours over bare."""
    lines = ["| figure | tasks | ours (tfray) | bare Ray actors | ours / bare |", "|---|---|---|---|---|"]
    for label, key, digits, ratio in FIGURES:
        for n in counts:
            got = {w: _median([r.get(key) for r in runs if r["tasks"] == n and r["way"] == w]) for w in WAYS}
            cells = [f"{got[w]:.{digits}f}" if got[w] is not None else "n/a" for w in WAYS]
            rel = f"{got['ours'] / got['bare']:.2f}" if ratio and got["ours"] is not None and got["bare"] else ""
            lines.append(f"| {label} | {n} | {cells[0]} | {cells[1]} | {rel} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=None, help="comma-separated task counts (default 4,16,64; 4,16 quick)")
    parser.add_argument("--quick", action="store_true", help="4 and 16 tasks, a shorter watch window")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=4, help="Ray nodes on this machine, the head included")
    parser.add_argument("--cpus-per-node", type=float, default=2)
    parser.add_argument("--cpu", type=float, default=0.01, help="CPU share of each task")
    parser.add_argument("--watch-s", type=float, default=None, help="driver CPU window (default 30; 10 quick)")
    parser.add_argument("--report-every-s", type=float, default=2.0, help="how often each light task reports")
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--timeout-s", type=float, default=300.0, help="bound on each wait of a run")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    args.tasks = [int(t) for t in (args.tasks or ("4,16" if args.quick else "4,16,64")).split(",") if t]
    args.watch_s = args.watch_s or (10.0 if args.quick else 30.0)
    args.ways = [w for w in args.ways.split(",") if w]
    out = Path(args.out or tempfile.mkdtemp(prefix="tfr-scale-", dir="/tmp"))
    out.mkdir(parents=True, exist_ok=True)
    args.out = str(out)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    runs = sweep(args)
    text = table(runs, args.tasks)
    loads = [x for r in runs for x in r.get("load_avg", ())]
    note = f"1-minute load average at run starts and ends {min(loads):.1f}-{max(loads):.1f}" if loads else ""
    print(f"\n{text}\n\n{note}")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1, default=str))
    (out / "table.md").write_text(f"{text}\n\n{note}\n")
    bad = [r for r in runs if r.get("state") not in ("SUCCEEDED", "STOPPED")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
