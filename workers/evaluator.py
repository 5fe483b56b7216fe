"""Side-car evaluation: evaluate each new complete checkpoint while training runs.

The evaluator task is outside the training cluster (docs/design.md §4). It
watches the job's checkpoint folder, evaluates the newest sealed checkpoint
it has not seen (skipping older ones when it falls behind, as TF's
SidecarEvaluator does), reports the results to the central collector with
the checkpoint's step, and returns once the controller says training is over
(after one last look, so the final checkpoint is evaluated too).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from protocol.seal import sealed_checkpoints
from workers.context import TaskContext

log = logging.getLogger("tfray.evaluator")


def sidecar_evaluate(ctx: TaskContext, evaluate: Callable[[str], dict], poll_interval_s: float = 1.0) -> int:
    """Run ``evaluate(checkpoint_folder) -> metrics`` on each new checkpoint; return how many were evaluated."""
    last_step, evaluated = -1, 0
    while True:
        stopping = ctx.should_stop()  # read before looking, so the final checkpoint is never missed
        found = sealed_checkpoints(ctx.job_dir)
        if found and found[-1][0] > last_step:
            step, path = found[-1]
            try:
                metrics = evaluate(str(path))
            except Exception as err:  # pruned while being read: the next one will do
                log.warning("could not evaluate %s: %s", path, err)
            else:
                ctx.report(metrics, step=step)
                last_step, evaluated = step, evaluated + 1
        if stopping:
            return evaluated
        time.sleep(poll_interval_s)
