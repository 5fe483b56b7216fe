"""The data scenario: an input-bound job's steps/s with and without the tf.data service, in one run.

``python -m bench.data_service`` runs ``examples/digits_input.py:train`` (an
expensive ``map`` per image before a small MLP; one training task,
``one_device``) on a local Ray of 2 CPUs, each way through tfray's own
controller (``controller.api.run_job``):

- **in-process**: the pipeline in the trainer, tuned (``num_parallel_calls``
  and ``prefetch`` at ``AUTOTUNE``);
- **1 data worker** and **2 data workers**: the same pipeline on the job's
  tf.data service (a dispatcher and its workers, ``distributed_epoch``).

This machine has one pair of cores, so it stands in for a trainer's host and
a CPU node beside it: the trainer is pinned to CPU 0 and the service's
servers to CPU 1 (``roles.<role>.cpu_affinity``, as ``taskset`` would). The
goal: at least 1.7x the in-process steps/s when the trainer's core is what
bounds it. Then a job that is not input-bound (no map rounds: its steps
bound it), in process and with 1 data worker on CPU 1, and once more with the
service on the trainer's own CPU 0: there the service brings no CPU, and what
it costs the trainer is its overhead, whose goal is at most 5 %.

Steps/s are counted from the chief's epoch reports (an epoch is 6 steps of
256 images), from the end of the first epoch (which holds the start) to the
last; each way runs ``--reps`` times (3) and the table shows the median.
``--quick``: 20 epochs, one run a way.
Writes ``results.json`` and ``table.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINER_CPU, SERVICE_CPU = 0, 1


def job(storage: str, name: str, args: dict, data_workers: int, service_cpu: int = SERVICE_CPU) -> dict:
    """The job spec of one way: the trainer on CPU 0; the dispatcher and ``data_workers`` workers on
    ``service_cpu``."""
    roles = {"chief": {"count": 1, "resources": {"cpu": 1}, "cpu_affinity": [TRAINER_CPU]}}
    if data_workers:
        roles["data_dispatcher"] = {"count": 1, "resources": {"cpu": 0.2}, "cpu_affinity": [service_cpu]}
        roles["data_worker"] = {"count": data_workers, "resources": {"cpu": round(0.8 / data_workers, 2)},
                                "cpu_affinity": [service_cpu]}
    return {"name": name, "strategy": "one_device", "roles": roles, "storage_path": storage,
            "entrypoint": {"function": "examples.digits_input:train",
                           "args": {**args, "service": bool(data_workers)}},
            "checkpoint": {"every_n_epochs": 1000}, "timeouts": {"scheduling_s": 60, "startup_s": 120,
                                                                 "job_s": 1800}}


def steps_per_s(job_dir: Path) -> tuple[float, list[float]]:
    """Steps/s from the end of the first epoch to the last, and each epoch's seconds."""
    from controller.report.metrics import read_metrics

    ends = [(r["time"], r["step"]) for r in read_metrics(job_dir) if r["task"] == "chief-0" and "epoch" in r["values"]]
    (t0, s0), (t1, s1) = ends[0], ends[-1]
    return (s1 - s0) / (t1 - t0), [round(b[0] - a[0], 3) for a, b in zip(ends, ends[1:])]


def run_way(storage: str, name: str, args: dict, data_workers: int, reps: int,
            service_cpu: int = SERVICE_CPU) -> dict:
    """``reps`` runs of one way, one after another; the median of their steps/s."""
    from controller.api import run_job
    from controller.spec import parse_spec

    rates, epochs = [], []
    for rep in range(reps):
        spec = parse_spec(job(storage, f"{name}-{rep + 1}", args, data_workers, service_cpu), base_dir=REPO)
        result = run_job(spec, [str(REPO)])
        if result.state.value != "SUCCEEDED":
            raise SystemExit(f"{name}: {result.state.value}: {result.message}")
        rate, seconds = steps_per_s(spec.job_dir)
        rates.append(rate)
        epochs += seconds
        print(f"{name} rep {rep + 1}: {rate:.1f} steps/s", flush=True)
    return {"name": name, "data_workers": data_workers, "steps_per_s": statistics.median(rates), "reps": rates,
            "epoch_s": epochs, "args": args}


def table(rows: list[dict]) -> str:
    base = {r["job"]: r["steps_per_s"] for r in rows if r["data_workers"] == 0}
    out = ["| job | way | steps/s (median) | vs in-process | each run | epoch seconds (median) |",
           "|---|---|---:|---:|---|---:|"]
    for r in rows:
        each = ", ".join(f"{rate:.1f}" for rate in r["reps"])
        out.append(f"| {r['job']} | {r['way']} | {r['steps_per_s']:.1f} | {r['steps_per_s'] / base[r['job']]:.2f}x "
                   f"| {each} | {statistics.median(r['epoch_s']):.2f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data_service", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="20 epochs a run, 1 run a way (default 60 and --reps)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each way; the table shows their median")
    parser.add_argument("--batch", type=int, default=256, help="images a step (default 256)")
    parser.add_argument("--map-cost", type=int, default=45, help="rounds of the map per image (default 45)")
    parser.add_argument("--hidden-units", type=int, default=16384,
                        help="the model's width, both jobs (default 16384: a step about as costly as its input)")
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2 or not {TRAINER_CPU, SERVICE_CPU} <= os.sched_getaffinity(0):
        parser.error(f"needs CPUs {TRAINER_CPU} and {SERVICE_CPU} (this process may run on "
                     f"{sorted(os.sched_getaffinity(0))})")
    import ray

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = 20 if args.quick else 60
    if args.quick:
        args.reps = 1
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=os.environ.get("RAY_TMPDIR"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfray-bench-data-") as storage:
        common = {"epochs": epochs, "per_replica_batch": args.batch, "hidden_units": args.hidden_units}
        bound = {**common, "map_cost": args.map_cost}
        for workers, way in ((0, "in-process, tuned"), (1, "1 data worker"), (2, "2 data workers")):
            rows.append({"job": "input-bound", "way": way, **run_way(storage, f"input-{workers}", bound, workers,
                                                                     args.reps)})
        light = {**common, "map_cost": 0}
        for workers, cpu, way in ((0, None, "in-process, tuned"), (1, SERVICE_CPU, "1 data worker"),
                                  (1, TRAINER_CPU, "1 data worker on the trainer's CPU")):
            rows.append({"job": "not input-bound", "way": way,
                         **run_way(storage, f"light-{workers}-{cpu}", light, workers, args.reps, cpu)})
    ray.shutdown()
    text = table(rows)
    (out / "results.json").write_text(json.dumps({"runs": rows}, indent=2))
    (out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
