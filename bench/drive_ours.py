"""Way 1: the bench job run by this project's controller on a local Ray (one process, one run).

Starts a local Ray (timed apart: the figures start at the controller's run
entry, on an already running Ray), builds the job spec, and runs
``controller.machine.controller.Controller`` with a ``RayTaskGroup`` that logs when the
placement group, the actors and the launches are done, when a failure is
seen and when the tasks are torn down. For the parameter-server job it
SIGKILLs worker-1 from outside once the coordinator reported a given step,
as an operator or a lost VM would. Writes ``result.json`` next to the
event log, including whether this driver process ever imported TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from bench.events import chief_step, log_event

REPO = Path(__file__).resolve().parents[1]


def timed_group(events: str, name: str):
    """A RayTaskGroup that logs its edges to the event log (the bench's own wrapper, no controller change)."""
    from controller.ray.group import RayTaskGroup

    class TimedTaskGroup(RayTaskGroup):
        def provision(self, tasks, placement, timeout_s):
            log_event(events, "pg_requested", task="driver")
            super().provision(tasks, placement, timeout_s)
            log_event(events, "pg_ready", task="driver")

        def start(self, env, timeout_s):
            log_event(events, "actors_requested", task="driver")
            infos = super().start(env, timeout_s)
            log_event(events, "actors_ready", task="driver", pids={str(k): i.pid for k, i in infos.items()})
            return infos

        def launch(self, launches):
            super().launch(launches)
            log_event(events, "launched", task="driver")

        def poll(self, timeout_s):
            got = super().poll(timeout_s)
            failed = [str(e.key) for e in got if not e.finished]
            if failed:
                log_event(events, "failure_seen", task="driver", tasks=failed)
            return got

        def stop_tasks(self):
            log_event(events, "teardown_begin", task="driver")
            super().stop_tasks()
            log_event(events, "teardown_end", task="driver")

        def replace(self, key, launch, timeout_s):
            log_event(events, "replace_begin", task="driver", target=str(key))
            info = super().replace(key, launch, timeout_s)
            log_event(events, "replace_end", task="driver", target=str(key), pid=info.pid)
            return info

    return TimedTaskGroup(name)


class _FirstImportOf:
    """A meta-path finder that only watches: it records who first imports ``name`` in this process."""

    def __init__(self, name: str):
        self.name = name
        self.stack: list[str] | None = None

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name and self.stack is None:
            self.stack = traceback.format_stack(limit=25)[:-1]
        return None  # the normal finders do the import


def job_spec(args, storage: Path):
    from controller.spec import parse_spec

    if args.strategy == "mwms":
        cpu = 0.5 if args.chief else 1.0  # a chief too: three tasks share the same two CPUs
        resources = json.loads(args.resources) if args.resources else {"cpu": cpu}  # e.g. GPUs (bench/gpu.py)
        roles = {"worker": {"count": args.workers, "resources": resources}}
        if args.chief:
            roles["chief"] = {"count": 1, "resources": json.loads(args.chief_resources or "null") or resources}
        entrypoint = {"function": "bench.digits_bench:train_ours",
                      "args": {"events": args.events, "faults": args.faults, "epochs": args.epochs,
                               "steps_per_epoch": args.steps_per_epoch, "per_replica_batch": args.per_replica_batch,
                               "notice_check": not args.no_notice_check, "model": args.model}}
        strategy = "multi_worker_mirrored"
    else:
        roles = {"chief": {"count": 1, "resources": {"cpu": 0.5}},
                 "worker": {"count": args.workers, "resources": {"cpu": 0.5}},
                 "ps": {"count": args.ps, "resources": {"cpu": 0.5}}}
        entrypoint = {"function": "bench.pss_bench:train_ours",
                      "args": {"events": args.events, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                               "per_worker_batch": args.per_replica_batch}}
        strategy = "parameter_server"
    # Everything else is the project's default (failure budgets, backoff, timeouts but the job's bound).
    return parse_spec({"name": f"bench-{args.strategy}", "strategy": strategy, "roles": roles,
                       "entrypoint": entrypoint, "storage_path": str(storage), "timeouts": {"job_s": args.job_s},
                       **({"process": json.loads(args.process)} if args.process else {})},
                      base_dir=REPO)



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy", choices=["mwms", "pss"])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chief", type=int, default=0, choices=[0, 1])
    parser.add_argument("--ps", type=int, default=1)
    parser.add_argument("--faults", default="")
    parser.add_argument("--no-notice-check", action="store_true", help="MWMS: leave out PreemptionCallback")
    parser.add_argument("--kill-at", type=int, default=None, help="PSS: SIGKILL worker-1 at this coordinator step")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--per-replica-batch", type=int, default=32)
    parser.add_argument("--model", default="mlp", choices=["mlp", "conv"], help="MWMS: the digits MLP or the conv net")
    parser.add_argument("--resources", default=None, help="MWMS: each task's resources as JSON, e.g. "
                        '\'{"cpu": 1, "gpu": 0.5}\' (default: CPUs only)')
    parser.add_argument("--chief-resources", default=None, help="MWMS: the chief's, if not --resources")
    parser.add_argument("--num-cpus", type=float, default=2)
    parser.add_argument("--process", default=None, help="the spec's process section as JSON, e.g. "
                        "'{\"niceness\": null}' (Ray's nice value, as before tasks set their own)")
    parser.add_argument("--job-s", type=float, default=600)
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    sys.path.insert(0, str(REPO))
    tf_watch = _FirstImportOf("tensorflow")  # the driver must never import TensorFlow: say who did if it does
    sys.meta_path.insert(0, tf_watch)

    import ray

    from controller.api import local_ray_environment
    from controller.machine.controller import Controller

    log_event(args.events, "ray_init_begin", task="driver")
    with local_ray_environment():  # as a local `tfray run` starts Ray
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=True,
                 _temp_dir=os.environ.get("RAY_TMPDIR"))
    log_event(args.events, "ray_init_end", task="driver")
    spec = job_spec(args, run_dir / "storage")
    controller = Controller(spec, timed_group(args.events, spec.name), sys_path=[str(REPO)])
    outcome: dict = {}

    def run() -> None:
        log_event(args.events, "run_entry", task="driver")
        try:
            outcome["result"] = controller.run()
        except BaseException as err:
            outcome["error"] = f"{type(err).__name__}: {err}"
        log_event(args.events, "run_returned", task="driver")

    thread = threading.Thread(target=run, name="controller", daemon=True)
    thread.start()
    killed = args.kill_at is None
    while thread.is_alive():
        thread.join(0.05)
        if not killed and chief_step(args.events) >= args.kill_at:
            info = controller.tasks.info("worker-1")
            os.kill(info.pid, signal.SIGKILL)
            log_event(args.events, "fault", task="worker-1", action="kill", index=0)
            killed = True
    result = outcome.get("result")
    loaded_tf = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
    summary = {
        "way": "ours", "state": result.state.value if result else "ERROR",
        "message": result.message if result else outcome.get("error"), "restarts": result.restarts if result else None,
        "job_dir": str(spec.job_dir), "events": [e.to_json() for e in result.events] if result else [],
        "driver_imports_tf": bool(loaded_tf), "driver_tf_modules": loaded_tf[:5],
        "driver_tf_imported_by": tf_watch.stack, "finished_at": time.time(),
    }
    (run_dir / "result.json").write_text(json.dumps(summary, indent=1, default=str))
    ray.shutdown()
    return 0 if summary["state"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
