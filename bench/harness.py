"""Runs the benchmark: every scenario, every way, several repetitions; prints the table of ratios.

Each run is one fresh process (a driver, or the hand launcher) with its own
short ``RAY_TMPDIR``, a private ``HOME`` and ``RAY_AUTH_MODE=disabled``
(docs/design.md §6); a thread samples the memory of its process tree. Ways are
run in a different order in each repetition so that drift in the machine's
load does not always favour the same one (with two ways: ours, hand, then
hand, ours, ...). Each figure is the median of the repetitions with its
spread (min-max); a ratio is the median of the paired ratios, each of one
repetition's two runs, made minutes apart, with their spread: the machine's
drift over the whole benchmark cancels out of each pair. ``--load N`` runs N
busy processes at nice 0 beside every run: the same machine under load.

Scenarios (``--quick`` shrinks them and folds the clean run into the fault run):

- ``mwms``: the MWMS digits job, no fault: start-up, steady throughput, memory;
- ``mwms-faults``: the same job with worker-1 SIGKILLed 25 steps into epoch 4,
  then SIGTERMed (notice, SIGKILL 2 s later) 25 steps into epoch 7;
- ``pss``: the parameter-server job (this project and by hand only: Ray Train
  has no parameter servers), worker-1 SIGKILLed from outside mid-run;
- ``scale``, ``long``, ``serve`` and ``data``: sweeps of their own
  (``bench/sweeps.py``): N light tasks against N bare Ray actors, a job that
  reports 100,000 times, ``tfray serve``'s latency against the model called
  in-process, and an input-bound job with and without the tf.data service
  (``serve`` and ``data`` run only when ``--scenarios`` names them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import figures, sweeps
from bench.memory import TreeSampler
from bench.tables import WAYS, breakdown, table

REPO = Path(__file__).resolve().parents[1]
# --smoke: each sweep at the smallest size that still fills its table.
HOG = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass"
SMOKE_SWEEPS = {"scale": ["--tasks=4", "--nodes=2", "--watch-s=4"]}


def sizes(quick: bool, smoke: bool = False) -> dict:
    """Job sizes. The fault run is longer than the clean one: after the SIGTERM the job must still be
    training when the notice's deadline comes (a plain MWMS process ignores SIGTERM and trains on).
    ``smoke`` (the suite's test) trims the epochs that only fill time: a steady epoch still comes before the
    SIGKILL (epoch 2: the first holds the start), each fault lands mid-epoch after a checkpoint, and 3.5 epochs
    follow the SIGTERM (the 1 s notice ends while the job trains)."""
    if smoke:
        return {**sizes(True), "epochs": 8, "fault_epochs": 8, "pss_epochs": 6, "pss_kill_at": 50}
    if quick:
        s = 20
        return {"steps_per_epoch": s, "epochs": 10, "fault_epochs": 10, "kill_at": 2 * s + s // 2,
                "term_at": 4 * s + s // 2, "grace_s": 1.0, "pss_epochs": 8, "pss_steps": 25, "pss_kill_at": 75,
                "scenarios": ("mwms-faults", "pss", "scale")}
    s = 50
    return {"steps_per_epoch": s, "epochs": 10, "fault_epochs": 14, "kill_at": 3 * s + s // 2,
            "term_at": 6 * s + s // 2, "grace_s": 2.0, "pss_epochs": 24, "pss_steps": 50, "pss_kill_at": 300,
            "scenarios": ("mwms", "mwms-faults", "pss", "scale", "long")}


def command(scenario: str, way: str, run_dir: Path, size: dict, args) -> list[str]:
    py = [sys.executable, "-m"]
    events = run_dir / "events.jsonl"
    common = [f"--run-dir={run_dir}", f"--events={events}"]
    if scenario == "pss":
        job = [f"--epochs={size['pss_epochs']}", f"--steps-per-epoch={size['pss_steps']}",
               f"--kill-at={size['pss_kill_at']}"]
        return py + (["bench.drive_ours", "pss"] if way == "ours" else ["bench.hand", "pss"]) + common + job
    faults, epochs = "", size["epochs"]
    if scenario == "mwms-faults":
        faults = f"kill:worker-1:{size['kill_at']},term:worker-1:{size['term_at']}:{size['grace_s']:g}"
        epochs = size["fault_epochs"]
    job = [f"--epochs={epochs}", f"--steps-per-epoch={size['steps_per_epoch']}", f"--faults={faults}",
           f"--workers={args.workers}"]
    if way == "ours":
        variant = (["--no-notice-check"] if args.no_notice_check else []) + \
            ([f"--process={args.ours_process}"] if args.ours_process else [])
        return py + ["bench.drive_ours", "mwms", f"--chief={int(args.chief)}", *variant] + common + job
    if way == "hand":
        return py + ["bench.hand", "mwms", f"--chief={int(args.chief)}"] + common + job
    return py + ["bench.drive_raytrain"] + common + job


def run_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh, short Ray temp dir and a private HOME for every run (see tests/conftest.py for why)."""
    env = {**os.environ, **(extra or {})}
    env.update({
        "RAY_AUTH_MODE": "disabled",
        "HOME": tempfile.mkdtemp(prefix="tfrh", dir="/tmp"),
        "RAY_TMPDIR": tempfile.mkdtemp(prefix="tfr", dir="/tmp"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "RAY_DEDUP_LOGS": "0",
    })
    return env


def run_one(scenario: str, way: str, run_dir: Path, size: dict, args, cmd: list[str] | None = None) -> dict:
    """One run in its own process (``cmd``, or this benchmark's command for the scenario and way); returns its
    figures (or the error that kept it from having any)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = run_env(dict(kv.split("=", 1) for kv in args.ours_env) if way == "ours" else None)
    cmd = cmd or command(scenario, way, run_dir, size, args)
    # Neighbours at nice 0, as a node's daemons are; each spins until its parent (this harness) is gone.
    hogs = [subprocess.Popen([sys.executable, "-c", HOG], preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, 0))
            for _ in range(args.load)]
    try:
        began, load_before = time.time(), os.getloadavg()[0]
        with open(run_dir / "driver.log", "w") as log:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            sampler = TreeSampler(proc.pid, interval_s=args.sample_s).start()
            try:
                code = proc.wait(timeout=args.run_timeout_s)
            except subprocess.TimeoutExpired:
                code = None
        sampler.stop()
        _reap(proc, sampler)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    shutil.rmtree(env["HOME"], ignore_errors=True)
    memory = {"peak_by_pid": sampler.peak_by_pid, "peak_tree": sampler.peak_tree, "measure": "pss",
              "peak_tree_parts": sampler.peak_tree_parts, "parent_by_pid": sampler.parent_by_pid,
              "label_by_pid": sampler.label_by_pid, "rss_peak_by_pid": sampler.rss_peak_by_pid,
              "rss_peak_tree": sampler.rss_peak_tree, "cpu_series": sampler.cpu_series,
              "task_group_peak": sampler.task_group_peak}
    (run_dir / "memory.json").write_text(json.dumps(memory))
    run = {"exit_code": code, "wall_s": time.time() - began,
           "load_avg": (load_before, os.getloadavg()[0])}  # other work on the machine makes figures noisy
    (run_dir / "run.json").write_text(json.dumps(run))
    return read_run(scenario, way, run_dir)


def read_run(scenario: str, way: str, run_dir: Path) -> dict:
    """A run's figures from what it left in its folder (also to re-read old runs with --from)."""
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    memory = json.loads((run_dir / "memory.json").read_text()) if (run_dir / "memory.json").exists() else {}
    for key in ("peak_by_pid", "parent_by_pid", "label_by_pid", "rss_peak_by_pid"):
        memory[key] = {int(k): v for k, v in memory.get(key, {}).items()}
    try:
        out = (figures.pss_figures if scenario == "pss" else figures.mwms_figures)(way, run_dir, memory)
    except Exception as err:  # a run that left nothing to read is reported, not fatal
        out = {"way": way, "state": "ERROR", "error": f"{type(err).__name__}: {err}"}
    if run.get("exit_code", 0) is None:
        out["state"] = "TIMEOUT"
    out.update(scenario=scenario, run_dir=str(run_dir), **run)
    if not (run_dir / "memory.json").exists() and (run_dir / "figures.json").exists():
        old = json.loads((run_dir / "figures.json").read_text())  # a run from before memory.json was kept
        for key in ("task_peak_mb", "tree_peak_mb", "tree_parts_mb", "exit_code", "wall_s"):
            if old.get(key) is not None:
                out[key] = old[key]
    (run_dir / "figures.json").write_text(json.dumps(out, indent=1, default=str))
    return out


def _reap(proc: subprocess.Popen, sampler: TreeSampler) -> None:
    """Stop the run's driver and whatever it started that is still alive (by pid and start time, ours only)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while sampler.leftovers() and time.monotonic() < deadline:
        time.sleep(0.5)  # Ray's shutdown stops its processes a moment after the driver exits
    for p in sampler.leftovers():
        try:
            p.kill()
        except Exception:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small jobs, fault run only")
    parser.add_argument("--smoke", action="store_true",
                        help="--quick, and a scale sweep of 4 tasks on 2 nodes only: what the suite's smoke test "
                             "needs to prove that every way runs and fills every row (tests/integration)")
    parser.add_argument("--out", default=None, help="where runs and results go (default: a new folder in /tmp)")
    parser.add_argument("--ways", default=",".join(WAYS), help="comma-separated subset of ours,hand,raytrain")
    parser.add_argument("--scenarios", default=None,
                        help="comma-separated subset of mwms,mwms-faults,pss,scale,long,serve,data")
    parser.add_argument("--workers", type=int, default=2, help="MWMS/PSS worker tasks (default 2)")
    parser.add_argument("--chief", action="store_true",
                        help="MWMS: add a chief task to ours and hand-launched (Ray Train has only workers)")
    parser.add_argument("--no-notice-check", action="store_true",
                        help="diagnostic: run ours without workers.keras.PreemptionCallback (SIGTERM is then "
                        "not turned into a save); shows what the per-step notice check costs")
    parser.add_argument("--ours-env", action="append", default=[], metavar="KEY=VALUE",
                        help="diagnostic: an environment variable for ours' driver, e.g. TFRAY_PREIMPORT_TF=0")
    parser.add_argument("--ours-process", default=None, metavar="JSON",
                        help="diagnostic: the spec's process section for ours, e.g. '{\"niceness\": null}' with "
                        "--ours-env RAY_worker_niceness=15: tasks at Ray's nice value, as before they set their own")
    parser.add_argument("--grace-s", type=float, default=None,
                        help="SIGTERM notice before the SIGKILL (default 2; 1 with --quick)")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="run N busy processes at nice 0 beside every run (both ways): the same machine under "
                        "load, as a node with Ray's daemons, log shippers and data loaders is (default 0: quiet)")
    parser.add_argument("--sample-s", type=float, default=0.25, help="memory sampling interval (default 0.25)")
    parser.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                        help="print the table again from the runs in DIR (a previous --out) instead of running")
    parser.add_argument("--run-timeout-s", type=float, default=None,
                        help="bound on one run (default 600; 300 with --quick)")
    args = parser.parse_args(argv)
    args.quick = args.quick or args.smoke
    reps = args.reps or (1 if args.quick else 5)
    args.run_timeout_s = args.run_timeout_s or (300 if args.quick else 600)
    size = sizes(args.quick, args.smoke)
    if args.grace_s is not None:
        size["grace_s"] = args.grace_s
    if args.scenarios:
        size["scenarios"] = tuple(s for s in args.scenarios.split(",") if s)
    ways = [w for w in args.ways.split(",") if w]
    if args.from_dir:  # the table again from runs already made (e.g. after a change to the figures)
        out = Path(args.from_dir)
        dirs = sorted(out.glob("rep*/*-*"))
        if (out / "results.json").exists() and not args.scenarios:  # that run's sizes, quick or not
            size = json.loads((out / "results.json").read_text())["size"]
        elif not args.scenarios:
            size["scenarios"] = tuple(sorted({d.name.rsplit("-", 1)[0] for d in dirs}))
        runs = []
        for run_dir in dirs:
            scenario, way = run_dir.name.rsplit("-", 1)
            if scenario in size["scenarios"] and way in ways:
                runs.append({**read_run(scenario, way, run_dir), "rep": int(run_dir.parent.name[3:]) - 1})
        swept = [sweeps.read_sweep(name, out) for name in size["scenarios"] if name in sweeps.SWEEPS]
        return report(runs, size, args, out, swept)
    out = Path(args.out or tempfile.mkdtemp(prefix="tfr-bench-", dir="/tmp"))
    out.mkdir(parents=True, exist_ok=True)
    compared = [s for s in size["scenarios"] if s not in sweeps.SWEEPS]
    swept_names = [s for s in size["scenarios"] if s in sweeps.SWEEPS]
    print("bench: " + "; ".join(filter(None, [
        f"{reps} repetition(s) of {', '.join(compared)} for {', '.join(ways)}" if compared else "",
        f"the sweep(s) {', '.join(swept_names)}, each its own way" if swept_names else ""]))
        + (f", {args.load} busy process(es) at nice 0 beside each run" if args.load else "") + f"; runs in {out}",
        flush=True)
    runs = []
    for rep in range(reps):
        for scenario in (s for s in size["scenarios"] if s not in sweeps.SWEEPS):
            order = [w for w in ways if scenario != "pss" or w != "raytrain"]
            order = order[rep % len(order):] + order[:rep % len(order)]  # rotate: no way always goes first
            for way in order:
                run = run_one(scenario, way, out / f"rep{rep + 1}" / f"{scenario}-{way}", size, args)
                run["rep"] = rep
                runs.append(run)
                print(f"  rep {rep + 1} {scenario:<11} {way:<8} {run.get('state')} in {run['wall_s']:.0f}s"
                      + (f" ({run.get('error')})" if run.get("error") else ""), flush=True)
    swept = []
    for name in (s for s in size["scenarios"] if s in sweeps.SWEEPS):  # each repeats within itself
        swept.append(sweeps.run_sweep(name, out, args.quick, reps, 6 * args.run_timeout_s,
                                     SMOKE_SWEEPS.get(name, []) if args.smoke else []))
        print(f"  {name}: {swept[-1]['state']} in {swept[-1]['wall_s']:.0f}s", flush=True)
    return report(runs, size, args, out, swept)


def report(runs: list[dict], size: dict, args, out: Path, swept: list[dict] = ()) -> int:
    """Print the table and the breakdown; keep them and every run's figures in ``out``."""
    text, data = table(runs, size, args) if runs else ("", [])
    detail = breakdown(runs, size) if runs else ""
    (out / "results.json").write_text(json.dumps({"args": vars(args), "size": size, "runs": runs, "table": data,
                                                  "sweeps": {s["name"]: s for s in swept}},
                                                 indent=1, default=str))
    loads = [x for r in runs for x in r.get("load_avg", ())]
    machine = (f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
               f"Python {platform.python_version()}; 1-minute load average at run starts and ends "
               f"{min(loads):.1f}-{max(loads):.1f}" if loads else "")
    if getattr(args, "load", 0):
        machine += f"; under load: {args.load} busy process(es) at nice 0 beside every run"
    print()
    print(text)
    print()
    print(machine)
    print()
    print(detail)
    extra = sweeps.report(swept)
    print(extra)
    (out / "table.md").write_text(text + "\n\n" + machine + "\n\n" + detail + "\n\n" + extra + "\n")
    bad = [r for r in runs if r.get("state") not in ("SUCCEEDED",)] + [s for s in swept if s["state"] != "SUCCEEDED"]
    if bad:
        print("\nruns that did not succeed: " + ", ".join(f"{r.get('run_dir', r.get('name'))} ({r.get('state')})"
                                                          for r in bad))
    return 0 if not bad else 1
