"""``python -m bench.gpu``: the GPU path checked on a real device, in one table, in a few minutes.

Runs, each in a fresh process with a fresh local Ray (``bench/harness.py``'s
``run_one``), through the same drivers as the CPU benchmark:

1. **shared**: the digits job, a chief and a worker with ``gpu: 0.5`` each on
   one GPU (the chief with the default memory growth, the worker capped at
   ``gpu_memory_mb``): both must train, neither run out of memory;
2. **steady**: a small conv net on synthetic images (``bench/conv_model.py``)
   under MultiWorkerMirroredStrategy, one task seeing every GPU (one replica
   each), ours and hand-launched: steps/s;
3. **kill**: the conv net with two workers sharing the first GPU, worker-1
   SIGKILLed mid-run, ours and hand-launched: seconds to the next report.

Prints one table (``bench/gpu_checks.py``) and exits 1 if any row failed, 2 at once
when no GPU is visible (nothing is started then). Needs NVIDIA's driver, and a
TensorFlow that can use it (``pip install 'tensorflow[and-cuda]'``).
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

from bench import gpu_checks
from bench.events import read_events

# The whole check stays under 8 minutes: no run starts past BUDGET_S, each is bounded by RUN_TIMEOUT_S, and
# stopping what a run left takes at most REAP_S (bench/harness.py). A run not started is a failed row.
BUDGET_S = 290
RUN_TIMEOUT_S = 150
REAP_S = 30
LIMIT_MB = 4096  # the shared run's worker: gpu_memory_mb
KILL_AT = 125  # the kill run: worker-1 is SIGKILLed after this global step (2.5 epochs of 50)
NO_GPU = 2


def nvidia_smi_list() -> str:
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"(nvidia-smi: {err})"
    return done.stdout if done.returncode == 0 else f"(nvidia-smi exited {done.returncode}: {done.stderr.strip()})"


def runs(gpus: list[str], cpus: int) -> list[tuple[str, str, list[str], list[str]]]:
    """(scenario, way, driver arguments, environment for ours' driver) of every run, in order."""
    first = [f"CUDA_VISIBLE_DEVICES={gpus[0]}"]  # shared and kill: Ray sees one GPU, so the halves share it
    conv = ["--model=conv", "--per-replica-batch=256", "--steps-per-epoch=50"]
    task_cpu = max(1, cpus // 4)
    whole = json.dumps({"cpu": task_cpu, "gpu": len(gpus)})
    half = json.dumps({"cpu": task_cpu, "gpu": 0.5})  # memory growth by default
    capped = json.dumps({"cpu": task_cpu, "gpu": 0.5, "gpu_memory_mb": LIMIT_MB})
    kill = f"--faults=kill:worker-1:{KILL_AT}"
    ours = ["bench.drive_ours", "mwms", f"--num-cpus={cpus}", "--job-s=120"]
    hand = ["bench.hand", "mwms"]
    return [
        ("shared", "ours", ours + ["--chief=1", "--workers=1", "--epochs=4", "--steps-per-epoch=20",
                                   f"--resources={capped}", f"--chief-resources={half}"], first),
        ("steady", "ours", ours + ["--workers=1", "--epochs=6", f"--resources={whole}", *conv], []),
        ("steady", "hand", hand + ["--workers=1", "--epochs=6", *conv], []),
        ("kill", "ours", ours + ["--workers=2", "--epochs=6", f"--resources={half}", kill, *conv], first),
        ("kill", "hand", hand + ["--workers=2", "--epochs=6", kill, *conv, f"--task-env={first[0]}",
                                 "--task-env=TF_FORCE_GPU_ALLOW_GROWTH=true"], []),
    ]


def checks(results: dict, events: dict, gpus: list[str]) -> list[gpu_checks.Check]:
    """The table's rows from every run's figures and events."""
    out = gpu_checks.shared_gpu_checks(results.get(("shared", "ours")), events.get(("shared", "ours"), []),
                                       LIMIT_MB)
    replicas = gpu_checks.replicas_seen(events.get(("steady", "ours"), []))
    out.append(gpu_checks.versus_hand_check(
        f"conv net, one task on all {len(gpus)} GPU(s): steady steps/s", results.get(("steady", "ours")),
        results.get(("steady", "hand")), lambda r: r["steady_steps_per_s"], 1, extra_ok=replicas == len(gpus),
        why=f"ours trained {replicas} replica(s), not one per GPU"))
    out.append(gpu_checks.versus_hand_check(
        "conv net, 2 tasks on one GPU: SIGKILL of worker-1 to next report (s)", results.get(("kill", "ours")),
        results.get(("kill", "hand")), kill_recovery_s, 1))
    return out


def kill_recovery_s(run: dict) -> float | None:
    return next(f for f in run["faults"] if f["action"] == "kill")["recovery_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="where runs go (default: a new folder in /tmp)")
    args = parser.parse_args(argv)
    listed = nvidia_smi_list()
    gpus = gpu_checks.visible_gpus(listed, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if not gpus:
        print(f"gpu check: no GPU visible (nvidia-smi -L: {listed.strip() or 'nothing listed'}; CUDA_VISIBLE_DEVICES="
              f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}): run it on a machine with an NVIDIA GPU, its driver and a "
              "TensorFlow that can use it (pip install 'tensorflow[and-cuda]')", file=sys.stderr)
        return NO_GPU
    from bench.harness import run_one  # after the GPU check: fails fast without one

    out = Path(args.out or tempfile.mkdtemp(prefix="tfr-gpu-", dir="/tmp"))
    print(f"gpu check: GPUs {','.join(gpus)}; runs in {out}", flush=True)
    began, results, events = time.monotonic(), {}, {}
    options = argparse.Namespace(ours_env=[], sample_s=0.5, run_timeout_s=RUN_TIMEOUT_S)
    for scenario, way, driver, ours_env in runs(gpus, os.cpu_count() or 4):
        if time.monotonic() - began > BUDGET_S:
            print(f"  {scenario:<7} {way:<5} not run: the check is past its {BUDGET_S} s budget", flush=True)
            continue
        run_dir = out / f"{scenario}-{way}"
        cmd = [sys.executable, "-m", *driver, f"--run-dir={run_dir}", f"--events={run_dir / 'events.jsonl'}"]
        options.ours_env = ours_env
        results[(scenario, way)] = run_one(scenario, way, run_dir, {}, options, cmd=cmd)
        events[(scenario, way)] = read_events(run_dir / "events.jsonl")
        print(f"  {scenario:<7} {way:<5} {results[(scenario, way)].get('state')} in "
              f"{results[(scenario, way)].get('wall_s', 0):.0f}s", flush=True)
    rows = checks(results, events, gpus)
    table = gpu_checks.render(rows)
    (out / "table.md").write_text(table + "\n")
    print(f"\n{table}\n\ntotal {time.monotonic() - began:.0f}s; runs and logs in {out}")
    return gpu_checks.exit_code(rows)


if __name__ == "__main__":
    sys.exit(main())
