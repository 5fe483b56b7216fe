"""Scenarios of ``python -m bench`` that are sweeps of their own, each run as one subprocess.

- ``scale`` (``bench/scale.py``): N light tasks against N bare Ray actors on a
  multi-node Ray, for N in 4, 16, 64 (``--quick``: 4 and 16);
- ``long`` (``bench/long_job.py``): a job that reports 100,000 times
  (``--quick``: 5,000);
- ``serve`` (``bench/serving.py``): ``tfray serve``'s latency and requests/s
  at 1 and 8 clients against the same model called in-process (only when
  ``--scenarios`` names it);
- ``data`` (``bench/data_service.py``): an input-bound job's steps/s with its
  pipeline in process and on the tf.data service, and the service's overhead
  on a job that is not input-bound (only when ``--scenarios`` names it).

Each writes ``results.json`` and ``table.md`` into its own folder under the
run's ``--out``; the harness prints their tables after its own and keeps
their runs in its ``results.json`` under ``sweeps``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEPS = {"scale": "bench.scale", "long": "bench.long_job", "serve": "bench.serving", "data": "bench.data_service"}
TITLES = {"scale": "scale: N light tasks (no TensorFlow) against N bare Ray actors placed by hand",
          "long": "long job: reports and what they cost",
          "serve": "serve: tfray serve (1 replica, HTTP, TF Serving's format) against the model called in-process",
          "data": "data: an input-bound job's steps/s with the tf.data service (trainer on CPU 0, service on CPU 1)"}


def run_sweep(name: str, out: Path, quick: bool, reps: int, timeout_s: float, extra: list[str] = ()) -> dict:
    """Run one sweep into ``out/name`` (``extra``: more of its own arguments); what it left there (or why it
    left nothing)."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", SWEEPS[name], f"--out={folder}", *(["--quick"] if quick else []), *extra]
    if name == "scale":
        cmd.append(f"--reps={reps}")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    began = time.time()
    with open(folder / "sweep.log", "w") as log:
        try:
            code = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
    got = read_sweep(name, out)
    if code != 0:
        got["state"] = "ERROR" if code is not None else "TIMEOUT"
    return {**got, "exit_code": code, "wall_s": time.time() - began}


def read_sweep(name: str, out: Path) -> dict:
    folder = out / name
    results = folder / "results.json"
    got = json.loads(results.read_text()) if results.exists() else {}
    table = (folder / "table.md").read_text() if (folder / "table.md").exists() else ""
    return {"name": name, "runs": got.get("runs", []), "table": table,
            "state": "SUCCEEDED" if table else "ERROR"}


def report(sweeps: list[dict]) -> str:
    out = []
    for sweep in sweeps:
        out += [f"{TITLES[sweep['name']]}:", "", sweep["table"].strip() or
                f"(no table: see {sweep['name']}/sweep.log)", ""]
    return "\n".join(out)
