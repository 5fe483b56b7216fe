"""The CLI's batch predictions: ``tfray predict JOB.yaml --input URI --output URI`` (``controller.api.predict``).

Exit 0 when every row was predicted and written, 1 when the run failed on Ray, 2 for bad input (nothing
started: the message names the flag, field or file), 130 when stopped (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys

from controller.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_STOPPED

PREDICT_EPILOG = """\
examples:
  tfray predict cluster_configs/jobs/digits_mwms.yaml --input digits.parquet --output preds/ --labels label
      the job's exported model (runs/digits-mwms/model) over a Parquet file, one row out per row in, with the
      model's accuracy and loss on the set:

      predicted 1,797 rows in 9.8s (183.4 rows/s) with model runs/digits-mwms/model
        output: /home/me/tfray/preds (Parquet)
        actors: 2, 14.2 actor-seconds; nodes: 1, 9.8 node-seconds
        metrics: accuracy 0.9722  loss 0.0951

  tfray predict JOB.yaml --input s3://bucket/images/ --format images --output s3://bucket/preds/ \\
      --model exported/resnet --concurrency 4 --gpus-per-actor 1
  tfray predict JOB.yaml --input data/ --output preds/ --checkpoint latest   the newest checkpoint's weights,
      through the spec's predict.model_function
  tfray predict JOB.yaml --input x.npy --output preds/ --overwrite --fault kill@batch=3
      a prediction actor SIGKILLed with its 3rd batch in flight: retried, no row lost or written twice

The input is what Ray Data reads: Parquet, CSV, JSON, NumPy (.npy), TFRecords or images, a file or a
folder, local or gs:// / s3://. The model's input is every column but the id and the labels (--features
names them instead), stacked in that order, or one column of arrays. The output is a folder of Parquet
files: the id column (--id-column, or `row`: the row's number in the input, from 0), `outputs` (the
model's output, a list of numbers a row), `predicted_class` (its argmax, for a classifier), and with
--labels `label`, `correct` and `loss`. Actors, CPUs and GPUs per actor and the batch size come from
the flags, else the spec's `predict:` section (`tfray schema`), else 1 actor, 1 CPU, no GPU, 256 rows;
the spec's predict.price_per_node_hour adds the cost to the summary. Without --id-column the input is
read whole into Ray's object store first to number its rows; with one it streams.
"""


def add_commands(sub) -> None:
    p = sub.add_parser("predict", help="batch predictions: the job's trained model over a data set on Ray "
                       "(Ray Data, one model per actor), written as Parquet",
                       description="Run the job's exported model (the chief's SavedModel in its job folder's "
                       "model/), or --model / --checkpoint, over --input on Ray, and write one output row per "
                       "input row into --output.", epilog=PREDICT_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="job spec YAML (its job's model, its predict: section)")
    p.add_argument("--input", required=True, metavar="URI", help="a file or folder, local or gs:// s3://")
    p.add_argument("--output", required=True, metavar="URI", help="the folder the Parquet files go to; refused "
                   "if it holds files, unless --overwrite")
    p.add_argument("--format", dest="input_format", metavar="FORMAT", help="the input's format when its name "
                   "does not say: parquet, csv, json, numpy, tfrecords, images")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="PATH", help="a SavedModel or Keras model folder (or .keras file) "
                       "instead of the job's exported model")
    which.add_argument("--checkpoint", metavar="CKPT", help="'latest' or a checkpoint folder: its weights in "
                       "the model the spec's predict.model_function builds")
    p.add_argument("--id-column", metavar="COLUMN", help="the input's id column, copied to each output row "
                   "(default: the row's number in the input, as `row`)")
    p.add_argument("--labels", metavar="COLUMN", help="the input's labels: also report the model's metrics "
                   "(accuracy for a classifier, its compiled loss)")
    p.add_argument("--features", metavar="COL,COL", help="the columns the model takes, in order (default: all "
                   "but the id and the labels)")
    p.add_argument("--concurrency", type=int, metavar="N", help="prediction actors (default: spec, else 1)")
    p.add_argument("--cpus-per-actor", type=float, metavar="CPUS", help="CPUs each actor reserves (default: "
                   "spec, else 1)")
    p.add_argument("--gpus-per-actor", type=float, metavar="GPUS", help="GPUs each actor reserves (default: "
                   "spec, else 0)")
    p.add_argument("--batch-size", type=int, metavar="ROWS", help="rows per model call (default: spec, else 256)")
    p.add_argument("--overwrite", action="store_true", help="replace what --output holds")
    p.add_argument("--address", help="Ray cluster address ('auto' for a local `ray start`); default: "
                   "$RAY_ADDRESS or a new local Ray")
    p.add_argument("--num-cpus", type=float, help="CPUs of a new local Ray (default: this machine's)")
    p.add_argument("--fault", metavar="kill@batch=N", help="SIGKILL the first prediction actor to reach its "
                   "Nth batch, with the batch in flight, once: see the run retry it")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    from controller import api

    features = tuple(c.strip() for c in args.features.split(",") if c.strip()) if args.features else ()
    on_terminal = sys.stderr.isatty()

    def progress(done: int, total: int | None, elapsed_s: float) -> None:
        from controller.predict.summary import progress_line

        print(progress_line(done, total, elapsed_s), file=sys.stderr, flush=True)

    try:
        result = api.predict(
            args.spec, args.input, args.output, address=args.address, num_cpus=args.num_cpus,
            on_progress=None if on_terminal else progress, progress_bars=on_terminal, model=args.model,
            checkpoint=args.checkpoint, id_column=args.id_column, labels=args.labels, features=features,
            input_format=args.input_format, concurrency=args.concurrency, cpus_per_actor=args.cpus_per_actor,
            gpus_per_actor=args.gpus_per_actor, batch_size=args.batch_size, overwrite=args.overwrite,
            fault=args.fault)
    except KeyboardInterrupt:
        print("tfray: prediction stopped; --output may hold part of the rows (run again with --overwrite)",
              file=sys.stderr)
        return EXIT_STOPPED
    except api.PredictFailedError as err:
        print(f"error: the prediction run failed: {err}\n  (the actors' output is in Ray's logs: "
              "/tmp/ray/session_latest/logs on the head)", file=sys.stderr)
        return EXIT_FAILED
    from controller.predict.summary import render_summary

    print(render_summary(result))
    return EXIT_OK

