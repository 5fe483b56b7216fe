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
        ("PSS steps/s before any loss", "pss", lambda r: r["rate_before"], 1,
         "hand", ">= 0.95", lambda ratio, ours: ratio is not None and ratio >= 0.95),
        ("start to first epoch reported (s)", mwms, lambda r: r["first_report_s"], 2,
         "raytrain", "<= 0.45", lambda ratio, ours: ratio is not None and ratio <= 0.45),
        ("  the same, vs hand-launched", mwms, lambda r: r["first_report_s"], 2,
         "hand", "<= 1.15", lambda ratio, ours: ratio is not None and ratio <= 1.15),
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
        ("peak PSS per task: training process, launcher and actor (MB)", mwms, lambda r: r.get("task_all_peak_mb"),
         0, "hand", "<= 1.15", lambda ratio, ours: ratio is not None and ratio <= 1.15),
        ("  the training process alone (MB)", mwms, lambda r: r["task_peak_mb"], 0, "hand", "", None),
        # Ray's daemons and the job's inbox: a fixed cost per node, stated in the breakdown (fixed_cost).
        ("peak PSS of the whole process tree (MB)", mwms, lambda r: r["tree_peak_mb"], 0, "hand", "", None),
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
        if against:  # the median of the ratios of the runs made side by side (the same repetition)
            pairs = [x / y for x, y in zip(vals["ours"], vals[against]) if x is not None and y]
            if pairs:
                ratio, lo, hi = figures.spread(pairs)
                name = "hand" if against == "hand" else "RT"
                ratio_cell = f"{ratio:.2f} ({lo:.2f}-{hi:.2f}) vs {name}" if lo != hi else f"{ratio:.2f} vs {name}"
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
    out += fixed_cost(runs, mwms)
    tree = {way: _values(runs, mwms, way, lambda r: r["tree_parts_mb"]) for way in WAYS}
    out.append("peak process tree by PSS, the largest parts (MB, first repetition):")
    out.append("")
    for way in WAYS:
        parts = next((p for p in tree[way] if p), None)
        if parts:
            top = ", ".join(f"{k} {v:.0f}" for k, v in list(parts.items())[:8])
            out.append(f"- {LABELS[way]}: {top}")
    return "\n".join(out)


# What a task is made of (its training process, launcher and actor) and what a run adds once (the driver, the
# job's inbox); every other process in ours' tree is Ray's own, started on every node whatever runs there.
TASK_PARTS = ("tfray launcher/training", "ray::TaskActor")
JOB_PARTS = ("bench.drive_ours", "ray::ReportInbox")


def fixed_cost(runs: list[dict], scenario: str) -> list[str]:
    """Per part of ours' process tree: CPU seconds per minute while the job trains (its steady epochs) and
    PSS at the tree's peak, each the median over the repetitions; then Ray's daemons summed: the fixed
    cost of a node, which does not grow with the model."""
    cpu = [r["cpu_per_min"] for r in runs if r.get("scenario") == scenario and r.get("way") == "ours"
           and r.get("cpu_per_min")]
    pss = [r["tree_parts_mb"] for r in runs if r.get("scenario") == scenario and r.get("way") == "ours"
           and r.get("tree_parts_mb")]
    hand = [sum(r["cpu_per_min"].values()) for r in runs if r.get("scenario") == scenario
            and r.get("way") == "hand" and r.get("cpu_per_min")]
    if not cpu:
        return []
    labels = sorted({k for c in cpu for k in c} | {k for p in pss for k in p},
                    key=lambda k: -figures.spread([c.get(k, 0.0) for c in cpu])[0])
    out = ["ours' process tree while the job trains: CPU seconds per minute (steady epochs) and PSS at the "
           "tree's peak (MB), median over repetitions:", "", "| part | kind | CPU s/min | PSS MB |",
           "|---|---|---|---|"]
    sums: dict[str, list[tuple[float, float]]] = {"task": [], "job": [], "Ray, per node": []}
    for label in labels:
        kind = "task" if label in TASK_PARTS else "job" if label in JOB_PARTS else "Ray, per node"
        c = figures.spread([x.get(label, 0.0) for x in cpu])[0]
        m = figures.spread([x.get(label, 0.0) for x in pss])[0] if pss else 0.0
        sums[kind].append((c, m))
        out.append(f"| {label} | {kind} | {c:.1f} | {m:.0f} |")
    for kind, parts in sums.items():
        cpu_sum, pss_sum = sum(c for c, _ in parts), sum(m for _, m in parts)
        out.append(f"| **all {kind} parts** | | **{cpu_sum:.1f}** | **{pss_sum:.0f}** |")
    if hand:
        out.append(f"| hand-launched, the whole tree | | {figures.spread(hand)[0]:.1f} | |")
    out.append("")
    return out
