"""The GPU check's verdicts (pure: no Ray, no TF): which GPUs are visible, what each run showed, the table.

``bench/gpu.py`` runs the jobs; this module reads what they left (each
run's figures from ``bench/figures.py`` and its event log) and says, row by
row, whether the GPU path did what it must: two tasks sharing one GPU both
train and neither runs out of memory, each with the memory policy it was
given; one task trains a replica on every GPU it sees; training comes back
after a worker is killed. Figures against the hand-launched job are shown
with their ratio; a row fails only on something wrong, not on a ratio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SMI_GPU = re.compile(r"GPU (\d+): .*?\(UUID: (GPU-[0-9a-fA-F-]+)\)")


def visible_gpus(smi_list: str, cuda_visible: str | None) -> list[str]:
    """The indexes of the GPUs ``nvidia-smi -L`` lists, narrowed by ``CUDA_VISIBLE_DEVICES`` (indexes or
    UUIDs) as CUDA would narrow them; an empty ``CUDA_VISIBLE_DEVICES`` hides every GPU."""
    listed = [(m.group(1), m.group(2)) for m in _SMI_GPU.finditer(smi_list)]
    if cuda_visible is None:
        return [index for index, _ in listed]
    out = []
    for token in (t.strip() for t in cuda_visible.split(",") if t.strip()):
        match = next((index for index, uuid in listed if token in (index, uuid) or uuid.startswith(token)), None)
        if match is None:
            break  # CUDA ignores every entry from the first it cannot find
        out.append(match)
    return out


@dataclass(frozen=True)
class Check:
    """One row of the table."""

    name: str
    ours: str
    hand: str = ""
    ratio: str = ""
    ok: bool = True
    why: str = ""


def _by_task(events: list[dict], name: str) -> dict[str, dict]:
    return {e["task"]: e for e in events if e["event"] == name}


def _state(run: dict | None) -> str:
    return "not run" if run is None else str(run.get("state"))


def shared_gpu_checks(run: dict | None, events: list[dict], limit_mb: int) -> list[Check]:
    """Two tasks with ``gpu: 0.5`` each on one GPU: both trained, on the same single GPU, the chief with
    memory growth and the worker with its limit, and neither ran out of memory."""
    if run is None or run.get("state") != "SUCCEEDED":
        return [Check("digits, two tasks on one GPU (gpu: 0.5)", _state(run), ok=False,
                      why=str((run or {}).get("error") or (run or {}).get("message") or "the job did not succeed"))]
    trained = {e["task"] for e in events if e["event"] == "epoch_end"}
    devices = _by_task(events, "devices")
    peaks = {task: max(e.get("peak_mb") or [0]) for task, e in _by_task(events, "gpu_memory").items()}
    both = trained == {"chief-0", "worker-0"}
    checks = [Check("digits, two tasks on one GPU (gpu: 0.5): both train", ", ".join(sorted(trained)) or "none",
                    ok=both, why="" if both else "a task never finished an epoch")]
    seen = {task: (d.get("cuda_visible_devices"), len(d.get("gpus", []))) for task, d in devices.items()}
    one_gpu = (len(seen) == 2 and len({ids for ids, _ in seen.values()}) == 1
               and all(n == 1 for _, n in seen.values()))
    checks.append(Check("  each sees the same one GPU",
                        "; ".join(f"{t}: CUDA_VISIBLE_DEVICES={ids}, {n} GPU" for t, (ids, n) in sorted(seen.items())),
                        ok=one_gpu, why="" if one_gpu else "a task saw another GPU, none, or several"))
    chief, worker = devices.get("chief-0", {}), devices.get("worker-0", {})
    memory_ok = chief.get("memory_growth") == "true" and worker.get("memory_limits_mb") == [limit_mb]
    checks.append(Check("  memory: chief grows, worker capped", f"chief growth={chief.get('memory_growth')}, "
                        f"worker limits={worker.get('memory_limits_mb')} MiB",
                        ok=memory_ok, why="" if memory_ok else f"expected growth and [{limit_mb}]"))
    within = "worker-0" in peaks and peaks["worker-0"] <= limit_mb
    checks.append(Check("  peak GPU memory (MiB), no OOM",
                        ", ".join(f"{t} {p:.0f}" for t, p in sorted(peaks.items())) or "n/a", ok=within,
                        why="" if within else "no peak logged, or the worker went past its limit"))
    return checks


def _figure(run: dict | None, pick) -> float | None:
    try:
        return pick(run) if run else None
    except (KeyError, IndexError, TypeError, StopIteration):
        return None


def _ratio(ours: float | None, hand: float | None) -> str:
    return f"{ours / hand:.2f}" if ours is not None and hand else ""


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def versus_hand_check(name: str, ours: dict | None, hand: dict | None, pick, digits: int,
                      extra_ok: bool = True, why: str = "") -> Check:
    """A figure ours and hand-launched: fails when either run failed or has no figure (or ``extra_ok`` is
    false), never on the ratio."""
    a, b = _figure(ours, pick), _figure(hand, pick)
    failed = [f"{way} {_state(run)}" for way, run in (("ours", ours), ("hand", hand))
              if run is None or run.get("state") != "SUCCEEDED"]
    missing = [way for way, value in (("ours", a), ("hand", b)) if value is None]
    ok = not failed and not missing and extra_ok
    reason = "; ".join(filter(None, ["runs: " + ", ".join(failed) if failed else "",
                                     "no figure for " + ", ".join(missing) if missing else "", why]))
    return Check(name, _fmt(a, digits), _fmt(b, digits), _ratio(a, b), ok, "" if ok else reason)


def replicas_seen(events: list[dict], task: str = "worker-0") -> int | None:
    return _by_task(events, "devices").get(task, {}).get("replicas")


def render(checks: list[Check]) -> str:
    lines = ["| check | ours (tfray) | hand-launched | ours / hand | result |", "|---|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c.name} | {c.ours} | {c.hand} | {c.ratio} | {'ok' if c.ok else 'FAIL: ' + c.why} |")
    return "\n".join(lines)


def exit_code(checks: list[Check]) -> int:
    """0 when every row is ok, 1 when any failed (or there was nothing to check)."""
    return 0 if checks and all(c.ok for c in checks) else 1
