"""From one run's records to its figures, and from many runs to the table (pure: no Ray, no TF).

A run leaves an event log (``bench/events.py``), a ``result.json`` from its
driver and, for this project, the job's ``metrics.jsonl``. The same figure
is read the same way for every way of running the job:

- *start*: ours, the controller's run entry; hand, the launcher starting the
  processes; Ray Train, the ``fit()`` call. Ray is already running for both.
- *reported*: ours, the controller receiving the report (``time`` in
  ``metrics.jsonl``); Ray Train, its controller receiving it (a
  ``UserCallback``); hand, the task writing it (there is no one to receive it).
- *steady seconds per epoch*: the chief's epoch ends from epoch 2 to the last
  one before any fault, (t_last - t_first) / epochs between; the time a
  report blocks training is inside it.
- *recovery*: from the fault to the next report received; *steps lost*: the
  step the killed task had completed minus the step training resumed from
  (none when training reached its end before a notice's deadline: on a fast
  machine the last epochs after a SIGTERM can take less than the notice);
  *beyond the newest checkpoint*: the newest checkpoint whose save had
  returned before the fault minus the step resumed from.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.events import read_events

T0_EVENT = {"ours": "run_entry", "hand": "launch", "raytrain": "fit_call"}
MB = 1024 * 1024


def _first(events: list[dict], name: str, task: str | None = None, after: float = float("-inf")) -> dict | None:
    return next((e for e in events if e["event"] == name and (task is None or e.get("task") == task)
                 and e["time"] > after), None)


def chief_of(events: list[dict]) -> str:
    tasks = {e.get("task") for e in events if e["event"] == "start"}
    return "chief-0" if "chief-0" in tasks else "worker-0"


def receipts(way: str, run_dir: Path, events: list[dict], chief: str) -> list[tuple[float, int, float]]:
    """(time received, step, time sent) of every epoch report of the chief, in time order."""
    if way == "ours":
        result = json.loads((run_dir / "result.json").read_text())
        path = Path(result["job_dir"]) / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        got = [(r["time"], r["step"], r["task_time"]) for r in rows
               if r["task"] == chief and "epoch" in r.get("values", {})]
    elif way == "raytrain":
        got = [(e["time"], e["step"], e["task_time"]) for e in events if e["event"] == "rt_report"]
    else:
        got = [(e["time"], e["step"], e["time"]) for e in events if e["event"] == "epoch_end" and e["task"] == chief]
    return sorted(got)


def steady_s_per_epoch(events: list[dict], chief: str, until: float) -> float | None:
    ends = [e["time"] for e in events if e["event"] == "epoch_end" and e["task"] == chief and e["time"] < until]
    if len(ends) < 2:
        return None
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def epoch_parts(events: list[dict], chief: str, until: float) -> dict[str, float]:
    """A steady epoch split (chief, epochs 2 to the last before any fault, mean seconds): the way's
    report and checkpoint at the epoch's end, its per-step hooks, and the rest (the steps themselves)."""
    ends = [e for e in events if e["event"] == "epoch_end" and e["task"] == chief and e["time"] < until]
    saved = {e["epoch"]: e for e in events if e["event"] == "epoch_saved" and e["task"] == chief and e["time"] < until}
    if len(ends) < 2:
        return {}
    per_epoch = (ends[-1]["time"] - ends[0]["time"]) / (len(ends) - 1)
    # The interval ending at epoch k holds epoch k-1's end-of-epoch work and epoch k's steps and hooks.
    epoch_work = [saved[e["epoch"]].get("epoch_hooks_s", 0.0) for e in ends[:-1] if e["epoch"] in saved]
    hooks = [e.get("batch_hooks_s", 0.0) for e in ends[1:]]
    report = sum(epoch_work) / len(epoch_work) if epoch_work else 0.0
    batch = sum(hooks) / len(hooks)
    return {"report_and_checkpoint_s": report, "per_step_hooks_s": batch, "steps_s": per_epoch - report - batch}


def fault_figures(events: list[dict], chief: str, got: list[tuple[float, int, float]]) -> list[dict]:
    out = []
    for fault in (e for e in events if e["event"] == "fault"):
        at = fault["time"]
        deadline = next((e for e in events if e["event"] == "deadline" and e.get("index") == fault.get("index")), None)
        done = max(fault.get("step", 0), deadline["step"] if deadline else 0)
        resumed = _first(events, "restored", chief, after=at)
        saved = [e["step"] for e in events if e["event"] == "epoch_saved" and e["task"] == chief and e["time"] < at]
        newest = max(saved, default=0)
        # The next report sent after the fault (one sent before it may be received after it).
        nxt = next(((t, s) for t, s, sent in got if sent > at), None)
        item = {"action": fault["action"], "time": at, "step": fault.get("step"), "resumed_from": None,
                "recovery_s": nxt[0] - at if nxt else None, "next_step": nxt[1] if nxt else None,
                "newest_saved": newest, "lost": None, "lost_beyond_newest": None}
        if resumed is not None:
            item["resumed_from"] = resumed["step"]
            item["lost"] = max(0, done - resumed["step"])
            item["lost_beyond_newest"] = max(0, newest - resumed["step"])
        elif deadline is None and _first(events, "finished", chief, after=at) is not None:
            item["lost"] = item["lost_beyond_newest"] = 0  # it trained to its end before the notice ran out
        out.append(item)
    return out


def startup_phases(events: list[dict], chief: str, t0: float, until: float) -> dict[str, float]:
    """Seconds from start to each phase of the first run of the cluster (chief's view, driver's edges)."""
    phases = {}
    for name in ("pg_ready", "actors_ready", "launched"):
        e = _first(events, name)
        if e and e["time"] < until:
            phases[name] = e["time"] - t0
    start = _first(events, "start", chief)
    if start and start.get("process_created"):
        phases["process_created"] = start["process_created"] - t0
    for name in ("start", "tf_imported", "strategy_built", "data_loaded", "model_built", "restored", "fit_begin",
                 "epoch_end"):
        e = _first(events, name, chief)
        if e and e["time"] < until:
            phases[name] = e["time"] - t0
    return phases


def recovery_phases(events: list[dict], chief: str, fault_time: float) -> dict[str, float]:
    """Seconds from a fault to each step of getting back (driver's edges where there is a driver)."""
    phases = {}
    for name in ("failure_seen", "rt_failure", "lost", "teardown_begin", "teardown_end", "actors_requested",
                 "actors_ready", "launched", "spawned", "restart"):
        e = _first(events, name, after=fault_time)
        if e:
            phases[name] = e["time"] - fault_time
    start = _first(events, "start", chief, after=fault_time)
    if start and start.get("process_created"):
        phases["process_created"] = start["process_created"] - fault_time
    for name in ("start", "tf_imported", "strategy_built", "data_loaded", "model_built", "restored", "fit_begin",
                 "epoch_end"):
        e = _first(events, name, chief, after=fault_time)
        if e:
            phases[name] = e["time"] - fault_time
    return phases


def _owned(pid: int, memory: dict) -> list[int]:
    """A training process and the processes that exist only for its task: ours, its launcher and its Ray
    actor; the others own none. Their peaks added are the task's memory only for runs from before the sampler
    summed them at one reading (``task_group_peak``): a launcher's peak, before it forks, holds the pages its
    fork then shares, so adding the two peaks counts those twice."""
    owned = [pid]
    parent = memory.get("parent_by_pid", {}).get(pid)
    while parent is not None and memory.get("label_by_pid", {}).get(parent, "") in (
            "tfray launcher/training", "ray::TaskActor", "ray::TaskActor.run"):
        owned.append(parent)
        parent = memory["parent_by_pid"].get(parent)
    return owned


def mwms_figures(way: str, run_dir: Path, memory: dict) -> dict:
    events = read_events(run_dir / "events.jsonl")
    result = json.loads((run_dir / "result.json").read_text()) if (run_dir / "result.json").exists() else {}
    chief = chief_of(events)
    t0_event = _first(events, T0_EVENT[way])
    if t0_event is None:
        raise RuntimeError(f"{run_dir}: no {T0_EVENT[way]} event; see the logs there")
    t0 = t0_event["time"]
    got = receipts(way, run_dir, events, chief)
    faults = fault_figures(events, chief, got)
    first_fault = min((f["time"] for f in faults), default=float("inf"))
    per_epoch = steady_s_per_epoch(events, chief, first_fault)
    steps = next((e["step"] for e in events if e["event"] == "epoch_end" and e["task"] == chief), None)
    steady = [e["time"] for e in events if e["event"] == "epoch_end" and e["task"] == chief and e["time"] < first_fault]
    init_begin, init_end = _first(events, "ray_init_begin"), _first(events, "ray_init_end")
    task_pids = {e["pid"] for e in events if e["event"] == "start"}
    task_peaks = [memory["peak_by_pid"].get(pid, 0) for pid in task_pids]
    task_all = [sum(memory["peak_by_pid"].get(p, 0) for p in _owned(pid, memory)) for pid in task_pids]
    return {
        "way": way, "state": result.get("state", "SUCCEEDED" if _first(events, "done") else "FAILED"),
        "restarts": result.get("restarts"),
        "first_report_s": got[0][0] - t0 if got else None,
        "steady_s_per_epoch": per_epoch,
        "epoch_parts": epoch_parts(events, chief, first_fault),
        "steady_steps_per_s": (steps / per_epoch) if per_epoch and steps else None,
        "faults": faults,
        "ray_init_s": (init_end["time"] - init_begin["time"]) if init_begin and init_end else None,
        "task_peak_mb": max(task_peaks) / MB if task_peaks else None,
        "task_all_peak_mb": (max(memory["task_group_peak"].values()) / MB if memory.get("task_group_peak")
                             else max(task_all) / MB if task_all and memory.get("parent_by_pid") else None),
        "tree_peak_mb": memory["peak_tree"] / MB if memory.get("peak_tree") else None,
        "tree_rss_peak_mb": memory["rss_peak_tree"] / MB if memory.get("rss_peak_tree") else None,
        "memory_measure": memory.get("measure", "rss"),  # runs from before PSS was sampled have RSS only
        "tree_parts_mb": {k: v / MB for k, v in sorted(memory.get("peak_tree_parts", {}).items(),
                                                         key=lambda kv: -kv[1])},
        "cpu_per_min": cpu_per_minute(memory, steady[0], steady[-1]) if len(steady) > 1 else {},
        "driver_imports_tf": result.get("driver_imports_tf", False),
        "startup": startup_phases(events, chief, t0, first_fault),
        "recovery": [recovery_phases(events, chief, f["time"]) for f in faults],
    }


def cpu_per_minute(memory: dict, start: float, end: float) -> dict[str, float]:
    """CPU seconds per minute that each part of the process tree (by label) used between ``start`` and
    ``end`` (the steady epochs), from the sampler's CPU readings nearest inside that window."""
    series = [(t, {int(pid): cpu for pid, cpu in by_pid.items()}) for t, by_pid in memory.get("cpu_series", [])]
    inside = [(t, by_pid) for t, by_pid in series if start <= t <= end]
    if len(inside) < 2:
        return {}
    (t0, first), (t1, last) = inside[0], inside[-1]
    out: dict[str, float] = {}
    for pid, cpu in last.items():
        if pid in first:
            label = memory["label_by_pid"].get(pid, "?")
            out[label] = out.get(label, 0.0) + (cpu - first[pid]) * 60.0 / (t1 - t0)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _interp(points: list[tuple[float, int]], t: float) -> float:
    """The step count at time ``t`` on the piecewise-linear curve through (time, step) points."""
    if t <= points[0][0]:
        return points[0][1]
    for (t1, s1), (t2, s2) in zip(points, points[1:]):
        if t1 <= t <= t2:
            return s1 + (s2 - s1) * (t - t1) / (t2 - t1)
    return points[-1][1]


def pss_figures(way: str, run_dir: Path, memory: dict) -> dict:
    events = read_events(run_dir / "events.jsonl")
    result = json.loads((run_dir / "result.json").read_text()) if (run_dir / "result.json").exists() else {}
    fault = _first(events, "fault")
    points = [(e["time"], e["step"]) for e in events if e["event"] == "epoch_end" and e["task"] == "chief-0"]
    out = {"way": way, "state": result.get("state", "SUCCEEDED" if _first(events, "done") else "FAILED"),
           "restarts": result.get("restarts", 0 if way == "hand" else None), "gone_s": None,
           "rate_before": None, "rate_gone": None, "rate_ratio": None}
    if fault is None or len(points) < 3:
        return out
    kill = fault["time"]
    if way == "ours":  # the replacement's server is up: its "serving" event, as the controller received it
        back = next((e["time"] for e in result.get("events", []) if e.get("event") == "serving"
                     and e.get("task") == "worker-1" and e["time"] > kill), None)
    else:
        back = next((e["time"] for e in events if e["event"] == "serving" and e["task"] == "worker-1"
                     and e["time"] > kill), None)
    end = points[-1][0]
    back = min(back, end) if back else end  # training may end before the worker is back
    gone = back - kill
    window = min(max(gone, 2.0), kill - points[0][0])
    if gone <= 0 or window <= 0:
        return out
    before = (_interp(points, kill) - _interp(points, kill - window)) / window
    during = (_interp(points, back) - _interp(points, kill)) / gone
    out.update(gone_s=gone, rate_before=before, rate_gone=during, rate_ratio=during / before if before else None)
    return out


# ------------------------------------------------------------------ table

def spread(values: list[float | None]) -> tuple[float, float, float] | None:
    """(median, min, max) of the values that exist."""
    got = [v for v in values if v is not None]
    return (statistics.median(got), min(got), max(got)) if got else None


def fmt(stat: tuple[float, float, float] | None, digits: int = 2) -> str:
    if stat is None:
        return "n/a"
    med, lo, hi = stat
    if lo == hi:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"
