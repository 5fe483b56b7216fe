"""The PSS stall: steps/s of a parameter-server job while one of its workers is gone for good.

``python -m bench.pss_gone`` runs the bench's parameter-server job
(``bench/pss_bench.py``: a coordinator, ``--workers`` workers and a ps, an
epoch of 50 steps reported and checkpointed at every end) two ways and
takes worker-1 away for good once the coordinator reported ``--kill-at``:

- ``ours``: this project's controller on a two-node Ray on this machine
  (``ray.cluster_utils.Cluster``), one worker on the second node; the node is
  removed (a crash: the task cannot come back, the job goes on without it);
- ``hand``: the same processes launched by hand; worker-1 is SIGKILLed and
  never started again.

It prints, for each way, the steps per second over the epochs before the loss
and over those after it, and their ratio; the goal is at least (N-1)/N with N
workers. Each epoch's seconds are in ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.events import chief_step, log_event, read_events

REPO = Path(__file__).resolve().parents[1]
TASK_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_FAIL_FAST": "use_caller"}


def rates(events: list[dict], lost_at: float) -> dict:
    """Steps/s from the coordinator's epoch ends before the loss (from the second epoch) and after it
    (from the first epoch that began after it)."""
    ends = [(e["time"], e["step"]) for e in events if e["event"] == "epoch_end" and e["task"] == "chief-0"]
    before = [p for p in ends if p[0] <= lost_at][1:]
    after = [p for p in ends if p[0] > lost_at][1:]
    out = {"epoch_s": [round(b[0] - a[0], 3) for a, b in zip(ends, ends[1:])],
           "lost_after_epoch": sum(1 for p in ends if p[0] <= lost_at)}
    for name, points in (("before", before), ("after", after)):
        if len(points) >= 2:
            out[f"{name}_steps_per_s"] = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
    if out.get("before_steps_per_s") and out.get("after_steps_per_s"):
        out["ratio"] = out["after_steps_per_s"] / out["before_steps_per_s"]
    return out


def run_hand(args, out: Path) -> dict:
    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    events = str(out / "events.jsonl")
    tasks = [("chief", 0), *(("worker", i) for i in range(args.workers)), ("ps", 0)]
    cluster: dict[str, list[str]] = {}
    for role, _ in tasks:
        cluster.setdefault(role, []).append(f"127.0.0.1:{free_port()}")
    procs = {}
    for role, index in tasks:
        cmd = [sys.executable, "-m", "bench.pss_bench", "coordinate" if role == "chief" else "serve",
               f"--events={events}"]
        if role == "chief":
            cmd += [f"--epochs={args.epochs}", f"--steps-per-epoch={args.steps}", f"--ckpt-dir={out / 'ckpt'}"]
        env = {**os.environ, **TASK_ENV, "PYTHONPATH": str(REPO), **dict(kv.split("=", 1) for kv in args.env),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": role, "index": index}})}
        log_file = open(out / f"{role}-{index}.log", "w")
        procs[f"{role}-{index}"] = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
    lost_at = None
    deadline = time.monotonic() + args.timeout_s
    while procs["chief-0"].poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if lost_at is None and chief_step(events) >= args.kill_at:
            procs["worker-1"].kill()
            lost_at = time.time()
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
    return {"way": "hand", "state": "SUCCEEDED" if procs["chief-0"].returncode == 0 else "FAILED",
            **rates(read_events(events), lost_at or float("inf"))}


def run_ours(args, out: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from controller.machine.controller import Controller
    from controller.ray.group import RayTaskGroup
    from controller.spec import parse_spec

    events = str(out / "events.jsonl")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"main_node": 8, "trainer": args.workers - 1}, "include_dashboard": False,
        "temp_dir": tempfile.mkdtemp(prefix="tfr", dir="/tmp"),
        "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}})
    lone = cluster.add_node(num_cpus=1, resources={"trainer": 1})  # one worker lands here
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    main = {"cpu": 0.25, "custom": {"main_node": 1}}
    roles = {"chief": {"count": 1, "resources": main}, "ps": {"count": 1, "resources": main},
             "worker": {"count": args.workers, "resources": {"cpu": 0.25, "custom": {"trainer": 1}}}}
    spec = parse_spec({
        "name": "pss-gone", "strategy": "parameter_server", "roles": roles, "storage_path": str(out / "storage"),
        "entrypoint": {"function": "bench.pss_bench:train_ours",
                       "args": {"events": events, "epochs": args.epochs, "steps_per_epoch": args.steps}},
        "timeouts": {"job_s": args.timeout_s},
        "env": dict(kv.split("=", 1) for kv in args.env)}, base_dir=REPO)
    controller = Controller(spec, RayTaskGroup(spec.name), sys_path=[str(REPO)])
    result: list = []
    thread = threading.Thread(target=lambda: result.append(controller.run()), daemon=True)
    thread.start()
    lost_at = None
    while thread.is_alive():
        thread.join(0.05)
        if lost_at is None and chief_step(events) >= args.kill_at:
            victim = next(str(k) for k, info in controller.tasks.infos.items() if info.node_id == lone.node_id)
            cluster.remove_node(lone, allow_graceful=False)
            lost_at = time.time()
            log_event(events, "fault", task=victim, action="node_removed")
    state = result[0].state.value if result else "ERROR"
    ray.shutdown()
    cluster.shutdown()
    return {"way": "ours", "state": state, **rates(read_events(events), lost_at or float("inf"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pss_gone", description=__doc__.splitlines()[0])
    parser.add_argument("way", nargs="?", choices=["ours", "hand"], help="one way only, in this process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--kill-at", type=int, default=250)
    parser.add_argument("--timeout-s", type=float, default=600)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="diagnostic: an environment variable for every task (ours) or process (hand)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="tfr-pssgone-", dir="/tmp"))
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    if args.way:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        (out / args.way).mkdir(parents=True, exist_ok=True)
        res = (run_ours if args.way == "ours" else run_hand)(args, out / args.way)
        (out / args.way / "result.json").write_text(json.dumps(res, indent=1))
        return 0
    results = []
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **TASK_ENV, "PYTHONPATH": str(REPO)}
    for way in ("hand", "ours"):
        (out / way).mkdir(parents=True, exist_ok=True)
        with open(out / way / "driver.log", "w") as log:
            subprocess.run([sys.executable, "-m", "bench.pss_gone", way, f"--workers={args.workers}",
                            f"--epochs={args.epochs}", f"--steps={args.steps}", f"--kill-at={args.kill_at}",
                            f"--out={out}"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                           timeout=2 * args.timeout_s)
        path = out / way / "result.json"
        results.append(json.loads(path.read_text()) if path.exists() else {"way": way, "state": "ERROR"})
    goal = (args.workers - 1) / args.workers
    lines = ["| way | steps/s before | steps/s with worker-1 gone | ratio | goal |", "|---|---|---|---|---|"]
    for r in results:
        cells = [f"{r[k]:.1f}" if r.get(k) else "n/a" for k in ("before_steps_per_s", "after_steps_per_s")]
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") else "n/a"
        lines.append(f"| {r['way']} ({r['state']}) | {cells[0]} | {cells[1]} | {ratio} | >= {goal:.2f} |")
    text = "\n".join(lines)
    print(text)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
