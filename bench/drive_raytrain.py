"""Way 3: the bench job under Ray Train's ``TensorflowTrainer`` with its defaults (one process, one run).

Starts a local Ray the same way as the controller's driver (timed apart),
then times from the ``fit()`` call. The same model, data, global batch,
steps per epoch and worker count (two ``worker`` tasks: Ray Train has no
chief or ps roles). ``FailureConfig(max_failures=...)`` lets it restart
from the newest checkpoint it has registered. A ``UserCallback`` logs when
Ray Train's controller receives each report (its driver-side receipt, the
counterpart of ``time`` in this project's ``metrics.jsonl``). Importing
``ray.train.tensorflow`` imports TensorFlow in the driver; that is Ray
Train's own doing and is recorded in ``result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.events import log_event

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--faults", default="")
    parser.add_argument("--max-failures", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--per-replica-batch", type=int, default=32)
    parser.add_argument("--num-cpus", type=float, default=2)
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.path.insert(0, str(REPO))

    import ray

    log_event(args.events, "ray_init_begin", task="driver")
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=True,
             _temp_dir=os.environ.get("RAY_TMPDIR"))
    log_event(args.events, "ray_init_end", task="driver")
    import ray.train
    from ray.train.tensorflow import TensorflowTrainer  # imports TensorFlow here, in the driver

    from bench.digits_bench import train_raytrain

    log_event(args.events, "driver_imported_train", task="driver")
    events = args.events

    class ReportReceipt(ray.train.UserCallback):
        """Runs in Ray Train's controller: when a report (and its checkpoint) is taken in."""

        def after_report(self, run_context, metrics, checkpoint):
            log_event(events, "rt_report", task="controller", epoch=metrics[0].get("epoch"),
                      step=metrics[0].get("step"), task_time=metrics[0].get("task_time"),
                      checkpoint=checkpoint is not None)

        def after_exception(self, run_context, worker_exceptions):
            log_event(events, "rt_failure", task="controller", ranks=sorted(worker_exceptions))

    trainer = TensorflowTrainer(
        train_raytrain,
        train_loop_config={"events": args.events, "faults": args.faults, "epochs": args.epochs,
                           "steps_per_epoch": args.steps_per_epoch, "per_replica_batch": args.per_replica_batch},
        scaling_config=ray.train.ScalingConfig(num_workers=args.workers),
        run_config=ray.train.RunConfig(name="bench-raytrain", storage_path=str(run_dir / "storage"),
                                       failure_config=ray.train.FailureConfig(max_failures=args.max_failures),
                                       callbacks=[ReportReceipt()]),
    )
    log_event(args.events, "fit_call", task="driver")
    state, message = "SUCCEEDED", ""
    try:
        trainer.fit()
    except Exception as err:  # a failed run still has figures to read; the harness reports the state
        state, message = "FAILED", f"{type(err).__name__}: {err}"[-2000:]
    log_event(args.events, "fit_returned", task="driver")
    loaded_tf = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
    summary = {"way": "raytrain", "state": state, "message": message, "driver_imports_tf": bool(loaded_tf),
               "driver_tf_modules": loaded_tf[:5], "finished_at": time.time()}
    (run_dir / "result.json").write_text(json.dumps(summary, indent=1))
    ray.shutdown()
    return 0 if state == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
