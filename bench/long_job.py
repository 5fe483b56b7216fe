"""The long-job scenario: a job that reports 100,000 times, and what that costs the driver and the training.

``python -m bench.long_job`` starts a local Ray and runs this project's
controller (Prometheus gauges on, as ``tfray run`` has them) with
``--tasks`` light tasks (``bench.light:train``, no TensorFlow) that report
every ``--every-ms`` until the job has sent ``--reports`` reports in all. It
measures, in the driver: its RSS every second (the last quarter of the run
against the first), its CPU, how often ``job.json`` was written and
``metrics.jsonl`` flushed (writes per report), and the report latency
(receipt minus send); in the tasks: how long each ``ctx.report`` call
held the training step (median, 99th percentile, longest). The figures go
to ``result.json`` and a table (``--quick``: 5,000 reports).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


class _Counted:
    """Counts calls of a method on a class (the bench's own instrument, no controller change)."""

    def __init__(self, cls, name: str):
        self.calls = 0
        original = getattr(cls, name)

        def counted(obj, *args, **kwargs):
            self.calls += 1
            return original(obj, *args, **kwargs)

        setattr(cls, name, counted)


def run(args) -> dict:
    import ray

    from controller.machine.controller import Controller
    from controller.machine.record import JobRecord
    from controller.ray.group import RayTaskGroup
    from controller.ray.prometheus import RayGauges
    from controller.report.metrics import MetricsCollector, read_metrics
    from controller.spec import parse_spec

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True, _temp_dir=os.environ.get("RAY_TMPDIR"))
    record_writes = _Counted(JobRecord, "write_attempt")
    metric_batches = _Counted(MetricsCollector, "_append")
    per_task = -(-args.reports // args.tasks)
    spec = parse_spec({
        "name": "long-job", "strategy": "multi_worker_mirrored",
        "roles": {"worker": {"count": args.tasks, "resources": {"cpu": 0.5}}},
        "entrypoint": {"function": "bench.light:train",
                       "args": {"report_every_s": args.every_ms / 1000, "reports": per_task}},
        "env": {"TFRAY_PREIMPORT_TF": "0"}, "storage_path": str(Path(args.run_dir) / "storage"),
        "timeouts": {"job_s": args.timeout_s}}, base_dir=REPO)
    controller = Controller(spec, RayTaskGroup(spec.name), sys_path=[str(REPO)], export_gauges=RayGauges())
    proc = psutil.Process()
    samples: list[tuple[float, int, float]] = []  # (time, rss, cpu seconds)
    thread = threading.Thread(target=lambda: samples.append(controller.run()), daemon=True)  # noqa: B023
    began = time.time()
    thread.start()
    trace = []
    while thread.is_alive():
        cpu = proc.cpu_times()
        trace.append((time.time() - began, proc.memory_info().rss, cpu.user + cpu.system))
        thread.join(1.0)
    result = samples[0]
    rows = [r for r in read_metrics(spec.job_dir) if r["task"].startswith("worker")]
    latency = sorted(r["time"] - r["task_time"] for r in rows)
    # RSS once the job trains (every task reported), first quarter against the last.
    first = min(r["time"] for r in rows) - began if rows else 0.0
    steady = [(t, rss) for t, rss, _ in trace if t >= first]
    quarter = max(1, len(steady) // 4)
    rss_first = statistics.mean(rss for _, rss in steady[:quarter]) / 2**20
    rss_last = statistics.mean(rss for _, rss in steady[-quarter:]) / 2**20
    chief = result.result if isinstance(result.result, dict) else {}  # what worker-0's train() returned
    tasks = {key: chief.get(key) for key in ("report_median_s", "report_p99_s", "report_max_s", "report_total_s",
                                             "elapsed_s")}
    out = {
        "state": result.state.value, "message": result.message, "reports": len(rows), "tasks": args.tasks,
        "every_ms": args.every_ms, "wall_s": time.time() - began,
        "driver_rss_first_quarter_mb": rss_first, "driver_rss_last_quarter_mb": rss_last,
        "driver_rss_growth": rss_last / rss_first - 1,
        "driver_cpu_s_per_min": (trace[-1][2] - trace[0][2]) / (trace[-1][0] - trace[0][0]) * 60 if len(trace) > 1
        else None,
        "job_json_writes": record_writes.calls, "metrics_flushes": metric_batches.calls,
        "metrics_flushes_per_report": metric_batches.calls / len(rows) if rows else None,
        "job_json_bytes": (spec.job_dir / "job.json").stat().st_size,
        "report_latency_median_ms": latency[len(latency) // 2] * 1000 if latency else None,
        "report_latency_p99_ms": latency[int(0.99 * (len(latency) - 1))] * 1000 if latency else None,
        "chief_report_call": tasks, "rss_trace": [(round(t, 1), round(rss / 2**20, 1)) for t, rss, _ in trace],
    }
    ray.shutdown()
    return out


TABLE = (
    ("reports received by the driver", "reports", 0),
    ("driver RSS, first quarter of the run (MB)", "driver_rss_first_quarter_mb", 1),
    ("driver RSS, last quarter (MB)", "driver_rss_last_quarter_mb", 1),
    ("driver CPU (s per min)", "driver_cpu_s_per_min", 1),
    ("job.json writes (whole run)", "job_json_writes", 0),
    ("metrics.jsonl writes per report", "metrics_flushes_per_report", 3),
    ("report latency, median / 99th percentile (ms)", ("report_latency_median_ms", "report_latency_p99_ms"), 0),
)


def table(out: dict) -> str:
    lines = ["| figure | value |", "|---|---|"]
    for label, key, digits in TABLE:
        keys = key if isinstance(key, tuple) else (key,)
        values = [out.get(k) for k in keys]
        lines.append(f"| {label} | {' / '.join('n/a' if v is None else f'{v:.{digits}f}' for v in values)} |")
    call = out.get("chief_report_call") or {}
    if call.get("report_max_s") is not None:
        lines.append("| worker-0's `ctx.report`, median / 99th percentile / longest (ms) | "
                     f"{call['report_median_s'] * 1000:.3f} / {call['report_p99_s'] * 1000:.3f} / "
                     f"{call['report_max_s'] * 1000:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.long_job", description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=None, help="reports in all (default 100000; 5000 quick)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--every-ms", type=float, default=3.0, help="each task reports this often")
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    args.reports = args.reports or (5000 if args.quick else 100_000)
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="tfr-long-", dir="/tmp"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args.run_dir = str(out_dir)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="tfr", dir="/tmp"))
    sys.path.insert(0, str(REPO))
    load = os.getloadavg()[0]
    out = run(args)
    out["load_avg"] = (load, os.getloadavg()[0])
    text = table(out)
    note = f"{args.tasks} tasks, one report each every {args.every_ms:g} ms; 1-minute load average " \
           f"{out['load_avg'][0]:.1f}-{out['load_avg'][1]:.1f}"
    print(f"\n{text}\n\n{note}")
    (out_dir / "results.json").write_text(json.dumps({"args": vars(args), "runs": [out]}, indent=1, default=str))
    (out_dir / "table.md").write_text(f"{text}\n\n{note}\n")
    return 0 if out["state"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
