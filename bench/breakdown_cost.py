"""What measuring a task's windows costs a steady fit (docs/design.md §8, "What bounds a job"), in one process.

Two copies of the same model train on the same in-memory data with
``workers.keras.JobCallback``: one with the breakdown (the step clock in its
step, a window closed each epoch), one without (``TFRAY_BREAKDOWN=0`` when its
context was made). Their epochs alternate, so both share the machine's drift;
the figure is the median of the paired ratios of epoch times, after warm-up.
A tiny model is the worst case (the clock's few scalar ops against a step of
almost nothing); ``--hidden`` makes the step larger. The whole-job figure, ours
against hand-launched TensorFlow with and without the breakdown, is
``python -m bench --scenarios mwms --ways ours,hand`` run once as is and once
with ``--ours-env TFRAY_BREAKDOWN=0``.

    python -m bench.breakdown_cost [--pairs 15] [--hidden 64] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def _fit_once(model, data, callback) -> float:
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, callbacks=[callback])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15, help="paired epochs measured, after 3 of warm-up")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units of the two-layer MLP (64: digits)")
    parser.add_argument("--steps", type=int, default=200, help="steps an epoch")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    from protocol.breakdown import OFF_ENV
    from workers.context import TaskContext
    from workers.keras import JobCallback

    x = tf.random.stateless_uniform([args.steps * args.batch, 64], seed=[1, 2])
    y = tf.random.stateless_uniform([args.steps * args.batch], seed=[3, 4], maxval=10, dtype=tf.int32)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).cache().prefetch(tf.data.AUTOTUNE)
    job_dir = tempfile.mkdtemp(prefix="tfray-breakdown-cost-")
    ways = {}
    for way, off in (("with", "1"), ("without", "0")):
        os.environ[OFF_ENV] = off
        ctx = TaskContext(job_name="cost", job_dir=job_dir, attempt=1, strategy="one_device", role="chief",
                          index=0, is_chief=True, num_workers=1, send=lambda report: None)
        model = tf.keras.Sequential([tf.keras.layers.Input((64,)),
                                     tf.keras.layers.Dense(args.hidden, activation="relu"),
                                     tf.keras.layers.Dense(10)])
        model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        ways[way] = (model, JobCallback(ctx, global_batch_size=args.batch, checkpoint_every_n_epochs=10**9))
    os.environ.pop(OFF_ENV)
    ratios, times = [], {"with": [], "without": []}
    for pair in range(args.pairs + 3):
        order = ("with", "without") if pair % 2 else ("without", "with")
        took = {way: _fit_once(ways[way][0], data, ways[way][1]) for way in order}
        if pair >= 3:
            ratios.append(took["with"] / took["without"])
            for way, seconds in took.items():
                times[way].append(seconds)
    step_ms = {way: 1000 * statistics.median(t) / args.steps for way, t in times.items()}
    print(f"hidden {args.hidden}, {args.steps} steps of {args.batch}: a step {step_ms['without']:.3f} ms without "
          f"the breakdown, {step_ms['with']:.3f} ms with it; cost {100 * (statistics.median(ratios) - 1):+.1f}% "
          f"(median of {len(ratios)} paired epochs; pairs ranged {100 * (min(ratios) - 1):+.1f}% to "
          f"{100 * (max(ratios) - 1):+.1f}%)")


if __name__ == "__main__":
    main()
