"""The benchmark's tables: each figure per way with its spread, the ratio and the goal; and the breakdown
of start-up, recovery, the steady epoch and the process tree (``python -m bench``, ``bench/harness.py``)."""

from __future__ import annotations

from bench import figures

WAYS = ("ours", "hand", "raytrain")
LABELS = {"ours": "ours (tfray)", "hand": "hand-launched", "raytrain": "Ray Train"}


def _values(runs: list[dict], scenario: str, way: str, pick) -> list:
    out = []
    for run in runs:
        if run.get("scenario") == scenario and run.get("way") == way:
            try:
                out.append(pick(run))
            except (KeyError, IndexError, TypeError, StopIteration):
                out.append(None)
    return out


def _fault(run: dict, action: str, key: str):
    return next(f for f in run["faults"] if f["action"] == action)[key]


def table(runs: list[dict], size: dict, args) -> tuple[str, list[dict]]:
    """The markdown table of figures, ratios and goals; and the rows as data."""
    mwms = "mwms-faults" if "mwms" not in size["scenarios"] else "mwms"
    n = args.workers
    rows = [
        # label, scenario, pick, digits, ratio against, goal text, goal check (on ratio or on ours' values)
        ("steady steps/s, metrics every epoch", mwms, lambda r: r["steady_steps_per_s"], 1,
         "hand", ">= 0.97", lambda ratio, ours: ratio is not None and ratio >= 0.97),
        ("start to first epoch reported (s)", mwms, lambda r: r["first_report_s"], 2,
         "raytrain", "<= 0.45", lambda ratio, ours: ratio is not None and ratio <= 0.45),
        ("  the same, vs hand-launched", mwms, lambda r: r["first_report_s"], 2,
         "hand", "<= 1.25", lambda ratio, ours: ratio is not None and ratio <= 1.25),
        ("MWMS: SIGKILL of a worker to next reported step (s)", "mwms-faults",
         lambda r: _fault(r, "kill", "recovery_s"), 2,
         "raytrain", "<= 0.4", lambda ratio, ours: ratio is not None and ratio <= 0.4),
        ("  the same, vs the hand-restart floor", "mwms-faults", lambda r: _fault(r, "kill", "recovery_s"), 2,
         "hand", "<= 1.0", lambda ratio, ours: ratio is not None and ratio <= 1.0),
        ("steps lost on SIGKILL", "mwms-faults", lambda r: _fault(r, "kill", "lost"), 0,
         None, "", None),
        ("  of which beyond the newest checkpoint written", "mwms-faults",
         lambda r: _fault(r, "kill", "lost_beyond_newest"), 0,
         None, "ours = 0", lambda ratio, ours: bool(ours) and max(ours) == 0),
        (f"completed steps lost on SIGTERM ({size.get('grace_s', 2.0):g} s notice)", "mwms-faults",
         lambda r: _fault(r, "term", "lost"), 0,
         None, "ours = 0", lambda ratio, ours: bool(ours) and max(ours) == 0),
        ("PSS: cluster restarts after a worker SIGKILL", "pss", lambda r: r["restarts"], 0,
         None, "ours = 0", lambda ratio, ours: bool(ours) and max(ours) == 0),
        ("PSS: steps/s while the worker is gone / before", "pss", lambda r: r["rate_ratio"], 2,
         None, f"ours >= {(n - 1) / n:.2f}",
         lambda ratio, ours: bool(ours) and figures.spread(ours)[0] >= (n - 1) / n),
        ("  (PSS: seconds the worker was gone)", "pss", lambda r: r["gone_s"], 1, None, "", None),
        ("peak PSS per task process (MB)", mwms, lambda r: r["task_peak_mb"], 0,
         "hand", "<= 1.15", lambda ratio, ours: ratio is not None and ratio <= 1.15),
        ("  per task, with the processes it owns (MB)", mwms, lambda r: r.get("task_all_peak_mb"), 0, "hand", "",
         None),
        ("peak PSS of the whole process tree (MB)", mwms, lambda r: r["tree_peak_mb"], 0, "hand", "<= 1.3",
         lambda ratio, ours: ratio is not None and ratio <= 1.3),
        ("  the same by RSS (MB)", mwms, lambda r: r["tree_rss_peak_mb"], 0, "hand", "", None),
        ("driver imports TensorFlow (runs that did / runs)", mwms, lambda r: int(bool(r["driver_imports_tf"])), 0,
         None, "ours: none", lambda ratio, ours: bool(ours) and max(ours) == 0),
        ("  (ray.init before the start, s)", mwms, lambda r: r["ray_init_s"], 1, None, "", None),
    ]
    lines = ["| figure | ours (tfray) | hand-launched | Ray Train | ratio | goal | met? |",
             "|---|---|---|---|---|---|---|"]
    data = []
    for label, scenario, pick, digits, against, goal, check in rows:
        vals = {way: _values(runs, scenario, way, pick) for way in WAYS}
        cells = {}
        for way in WAYS:
            got = [v for v in vals[way] if v is not None]
            if label.startswith("driver imports"):
                cells[way] = f"{sum(got)}/{len(got)}" if got else "n/a"
            else:
                cells[way] = figures.fmt(figures.spread(got), digits) if got else "n/a"
        ratio_cell, ratio = "", None
        if against:
            a, b = figures.spread(vals["ours"]), figures.spread(vals[against])
            if a and b and b[0]:
                ratio = a[0] / b[0]
                pairs = [x / y for x, y in zip(vals["ours"], vals[against]) if x is not None and y]
                lo, hi = (min(pairs), max(pairs)) if pairs else (ratio, ratio)
                ratio_cell = f"{ratio:.2f} ({lo:.2f}-{hi:.2f}) vs {'hand' if against == 'hand' else 'RT'}"
                if lo == hi:
                    ratio_cell = f"{ratio:.2f} vs {'hand' if against == 'hand' else 'RT'}"
        met = ""
        ours = [v for v in vals["ours"] if v is not None]
        if check is not None and ours and (ratio is not None or not against):  # no figures: no verdict
            met = "yes" if check(ratio, ours) else "NO"
        lines.append(f"| {label} | {cells['ours']} | {cells['hand']} | {cells['raytrain']} | {ratio_cell} | "
                     f"{goal} | {met} |")
        data.append({"figure": label, "values": vals, "ratio": ratio, "goal": goal, "met": met})
    return "\n".join(lines), data


def breakdown(runs: list[dict], size: dict) -> str:
    """Median seconds from the start (and from the SIGKILL) to each phase, per way."""
    mwms = "mwms-faults" if "mwms" not in size["scenarios"] else "mwms"
    out = []
    for title, scenario, pick in (("start-up: seconds from the start to each phase (chief, median)", mwms,
                                   lambda r: r["startup"]),
                                  ("recovery: seconds from the SIGKILL to each phase (chief, median)", "mwms-faults",
                                   lambda r: r["recovery"][0])):
        per_way = {way: [p for p in _values(runs, scenario, way, pick) if p] for way in WAYS}
        if not any(per_way.values()):
            continue  # that scenario was not run
        names: list[str] = []
        for way in WAYS:
            for phases in per_way[way]:
                for name in sorted(phases, key=phases.get):
                    if name not in names:
                        names.append(name)
        names.sort(key=lambda nm: figures.spread([p.get(nm) for w in WAYS for p in per_way[w]])[0])
        out += [f"{title}:", "", "| phase | " + " | ".join(LABELS[w] for w in WAYS) + " |",
                "|---|" + "---|" * len(WAYS)]
        for name in names:
            cells = [figures.fmt(figures.spread([p.get(name) for p in per_way[w]]), 2) for w in WAYS]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["steady epoch split: mean seconds per epoch (chief, epochs 2 to the last before any fault):", "",
            "| part | " + " | ".join(LABELS[w] for w in WAYS) + " |", "|---|" + "---|" * len(WAYS)]
    for part in ("steps_s", "per_step_hooks_s", "report_and_checkpoint_s"):
        cells = [figures.fmt(figures.spread(_values(runs, mwms, w, lambda r: r["epoch_parts"][part])), 3)
                 for w in WAYS]
        out.append(f"| {part} | " + " | ".join(cells) + " |")
    out.append("")
    tree = {way: _values(runs, mwms, way, lambda r: r["tree_parts_mb"]) for way in WAYS}
    out.append("peak process tree by PSS, the largest parts (MB, first repetition):")
    out.append("")
    for way in WAYS:
        parts = next((p for p in tree[way] if p), None)
        if parts:
            top = ", ".join(f"{k} {v:.0f}" for k, v in list(parts.items())[:8])
            out.append(f"- {LABELS[way]}: {top}")
    return "\n".join(out)
