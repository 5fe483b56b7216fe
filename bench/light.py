"""A light task for the scale and long-job benchmarks: no TensorFlow, it only reports and sleeps.

``train(ctx, ...)`` is a function entrypoint (``bench.light:train``). Its
first report (step 0) carries its pid, so the benchmark knows which process
trains now and can SIGKILL it; then it reports every ``report_every_s``
until it has sent ``reports`` reports (0: no limit), ``run_s`` passed, or it
got a preemption notice (a stop). It times every ``ctx.report`` call, the
time a report takes from the training step, and returns the figures. Run
with ``TFRAY_PREIMPORT_TF=0`` so the task's launcher does not import
TensorFlow either.
"""

from __future__ import annotations

import os
import time

NAP_S = 0.1  # the longest sleep between looks at the notice: a stop ends the task this soon


def _pause(seconds: float) -> None:
    if seconds >= 0.001:
        time.sleep(seconds)


def train(ctx, report_every_s: float = 2.0, reports: int = 0, run_s: float = 600.0) -> dict:
    blocked: list[float] = []
    began = time.monotonic()
    next_at = began
    step = 0
    while True:
        mark = time.perf_counter()
        ctx.report({"pid": os.getpid(), "run_started": began}, step=step)
        blocked.append(time.perf_counter() - mark)
        step += 1
        if (reports and step >= reports) or time.monotonic() - began > run_s:
            break
        next_at += report_every_s
        while ctx.preemption_notice is None and (left := next_at - time.monotonic()) > 0:
            _pause(min(left, NAP_S))
        if ctx.preemption_notice is not None:
            break
    blocked.sort()
    return {"reports": step, "report_max_s": blocked[-1], "report_p99_s": blocked[int(0.99 * (len(blocked) - 1))],
            "report_median_s": blocked[len(blocked) // 2], "report_total_s": sum(blocked),
            "elapsed_s": time.monotonic() - began}
