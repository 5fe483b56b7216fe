"""The floor: the bench job launched by hand as plain processes with hand-written ``TF_CONFIG``.

No Ray and no controller: this script picks free ports, writes each task's
``TF_CONFIG``, starts one Python process per task and, when one dies, does
what a small restart script does:

- MultiWorkerMirroredStrategy: kill the rest and start every task again
  (a collective group cannot take a new member), from the newest sealed
  checkpoint, which the tasks find themselves;
- ParameterServerStrategy: start the lost worker again alone at the same
  ``host:port`` (the coordinator re-runs its closures and reconnects).

It imports nothing heavy, so its own memory is what a shell script's
would be, give or take the Python interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.events import chief_step, log_event, read_events

REPO = Path(__file__).resolve().parents[1]
POLL_S = 0.05  # how often the launcher looks for a dead process
TASK_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    """A port that is free now (the race of Ray issue #34271 is acceptable for a benchmark on one host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Launcher:
    """Starts task processes with their TF_CONFIG and restarts them when they die."""

    def __init__(self, run_dir: Path, events: str):
        self.run_dir = run_dir
        self.events = events
        self.procs: dict[str, subprocess.Popen] = {}

    def spawn(self, task: str, cmd: list[str], tf_config: dict, extra_env: dict | None = None) -> None:
        env = {**os.environ, **TASK_ENV, **(extra_env or {}), "TF_CONFIG": json.dumps(tf_config),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        log = open(self.run_dir / f"{task}.log", "a")
        self.procs[task] = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        log_event(self.events, "spawned", task=task, child=self.procs[task].pid)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.wait()

    def dead(self) -> dict[str, int]:
        return {task: proc.returncode for task, proc in self.procs.items()
                if proc.poll() is not None and proc.returncode != 0}


def _job_flags(args) -> list[str]:
    return [f"--epochs={args.epochs}", f"--steps-per-epoch={args.steps_per_epoch}",
            f"--per-replica-batch={args.per_replica_batch}"]


def _task_env(args) -> dict[str, str]:
    """What every task process gets besides TF_CONFIG (``--task-env``: e.g. the GPUs, as a script would set)."""
    return dict(kv.split("=", 1) for kv in args.task_env)


def run_mwms(args, launcher: Launcher) -> int:
    run_dir = Path(args.run_dir)
    tasks = [("chief", 0)] * args.chief + [("worker", i) for i in range(args.workers)]
    cmd = [sys.executable, "-m", "bench.digits_bench", f"--ckpt-dir={run_dir / 'ckpt'}", f"--events={args.events}",
           f"--faults={args.faults}", f"--model={args.model}", *_job_flags(args)]
    log_event(args.events, "launch", task="launcher")
    for restart in range(args.max_restarts + 1):
        ports = {task: free_port() for task in tasks}
        cluster: dict[str, list[str]] = {}
        for role, index in tasks:
            cluster.setdefault(role, []).append(f"127.0.0.1:{ports[(role, index)]}")
        for role, index in tasks:
            launcher.spawn(f"{role}-{index}", cmd, {"cluster": cluster, "task": {"type": role, "index": index}},
                           _task_env(args))
        while True:
            time.sleep(POLL_S)
            if launcher.dead():
                log_event(args.events, "lost", task="launcher", dead=launcher.dead())
                launcher.kill_all()
                break
            if all(p.poll() == 0 for p in launcher.procs.values()):
                log_event(args.events, "done", task="launcher", restarts=restart)
                return 0
        log_event(args.events, "restart", task="launcher", restart=restart + 1)
    return 1


def run_pss(args, launcher: Launcher) -> int:
    """A coordinator (chief), ``--workers`` workers and ``--ps`` parameter servers; ``--kill-at`` kills
    worker-1 once the coordinator reported that step, and the launcher starts it again in place."""
    tasks = [("chief", 0)] + [("worker", i) for i in range(args.workers)] + [("ps", i) for i in range(args.ps)]
    ports = {task: free_port() for task in tasks}
    cluster: dict[str, list[str]] = {}
    for role, index in tasks:
        cluster.setdefault(role, []).append(f"127.0.0.1:{ports[(role, index)]}")
    env = {"GRPC_FAIL_FAST": "use_caller"}
    serve = [sys.executable, "-m", "bench.pss_bench", "serve", f"--events={args.events}"]
    coordinate = [sys.executable, "-m", "bench.pss_bench", "coordinate", f"--events={args.events}",
                  f"--epochs={args.epochs}", f"--steps-per-epoch={args.steps_per_epoch}",
                  f"--per-worker-batch={args.per_replica_batch}"]
    log_event(args.events, "launch", task="launcher")
    for role, index in tasks:
        launcher.spawn(f"{role}-{index}", coordinate if role == "chief" else serve,
                       {"cluster": cluster, "task": {"type": role, "index": index}}, env)
    victim = "worker-1"
    killed = args.kill_at is None
    while True:
        time.sleep(POLL_S)
        chief = launcher.procs["chief-0"]
        if chief.poll() is not None:
            log_event(args.events, "done", task="launcher", code=chief.returncode, restarts=0)
            launcher.kill_all()
            return chief.returncode
        if not killed and chief_step(args.events) >= args.kill_at:
            killed = True
            os.kill(launcher.procs[victim].pid, signal.SIGKILL)
            log_event(args.events, "fault", task=victim, action="kill", index=0)
        for task, code in launcher.dead().items():
            if task == "chief-0":
                continue
            launcher.procs[task].wait()
            log_event(args.events, "lost", task="launcher", dead={task: code})
            role, index = task.rsplit("-", 1)
            launcher.spawn(task, serve, {"cluster": cluster, "task": {"type": role, "index": int(index)}}, env)



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy", choices=["mwms", "pss"])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chief", type=int, default=0, choices=[0, 1], help="MWMS: add a chief task")
    parser.add_argument("--ps", type=int, default=1)
    parser.add_argument("--faults", default="", help="MWMS: faults for bench.digits_bench")
    parser.add_argument("--kill-at", type=int, default=None, help="PSS: SIGKILL worker-1 at this coordinator step")
    parser.add_argument("--model", default="mlp", choices=["mlp", "conv"], help="MWMS: the digits MLP or the conv net")
    parser.add_argument("--task-env", action="append", default=[], metavar="KEY=VALUE",
                        help="MWMS: an environment variable for every task, e.g. CUDA_VISIBLE_DEVICES=0")
    parser.add_argument("--max-restarts", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--per-replica-batch", type=int, default=32)
    args = parser.parse_args(argv)
    Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    launcher = Launcher(Path(args.run_dir), args.events)
    code = 1
    try:
        code = (run_mwms if args.strategy == "mwms" else run_pss)(args, launcher)
    finally:
        launcher.kill_all()  # a stopped benchmark leaves no task process behind
        restarts = sum(1 for e in read_events(args.events) if e["event"] == "restart")
        loaded_tf = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
        (Path(args.run_dir) / "result.json").write_text(json.dumps(
            {"way": "hand", "state": "SUCCEEDED" if code == 0 else "FAILED", "restarts": restarts,
             "driver_imports_tf": bool(loaded_tf), "finished_at": time.time()}, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
