"""The command line: ``tfray`` / ``python -m controller``.

``validate`` and ``dry-run`` never start Ray; ``run`` starts (or joins) a
Ray cluster, runs the job with a live progress line, and exits 0 when it
succeeded, 1 when it failed, 2 for bad input and 130 when stopped. ``run``
goes through the API's one run sequence (``controller.api.run``); what only
a terminal needs is ``controller.cli.terminal``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

# Only what every command needs is imported here: each command imports its own modules (the spec's pydantic
# models, the Jobs API client's asyncio, Ray), so `--help`, `validate` and `schema` answer at once.
# tests/unit/test_cli_imports.py holds them to it.
from controller import settings
from controller.cli import files as cli_files
from controller.cli import imports as cli_import
from controller.cli import jobs as cli_jobs
from controller.cli import predict as cli_predict
from controller.cli import serve as cli_serve
from controller.cli.cluster import SUBMIT_EPILOG, add_address, cmd_stop, cmd_submit
from controller.cli.exit_codes import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_OK

EPILOG = """\
examples:
  tfray validate cluster_configs/jobs/digits_mwms.yaml   check a spec, start nothing
  tfray dry-run cluster_configs/jobs/digits_mwms.yaml    print every task's resources and TF_CONFIG
  tfray run cluster_configs/jobs/digits_mwms.yaml        train on a local Ray (started for you)
  tfray run JOB.yaml --address auto                       join a running cluster (`ray up`, `ray start`)
  tfray run JOB.yaml --fault worker-1:kill@step=50        kill a task on purpose and watch the job recover
  tfray status JOB.yaml                                   attempts, budgets, every failure and the decision taken
  tfray jobs runs                                         every job under a storage folder, one line each
  tfray logs JOB.yaml worker-1 --follow                   what a task printed (every task's log is in the job folder)
  tfray logs JOB.yaml driver                              what `tfray run` printed, each line stamped
  tfray tensorboard JOB.yaml                              the job's curves, every attempt, on 127.0.0.1
  tfray predict JOB.yaml --input data/ --output preds/    the trained model over a data set on Ray, as Parquet
  tfray serve JOB.yaml                                    the trained model as an endpoint (TF Serving's REST API)
  tfray submit JOB.yaml --follow                          run it on a `ray up` cluster through its Jobs API
  tfray stop raysubmit_XXXX                               stop a submitted job
  tfray schema                                            the job spec's JSON Schema, every field described
  tfray import-tfjob tfjob.yaml -o JOB.yaml               a Kubeflow TFJob as a job spec, what did not carry over listed
  tfray import-vertex customjob.json -o JOB.yaml          a Vertex AI CustomJob as a job spec

A job's checkpoints, metrics.jsonl and job.json live in <storage_path>/<name>;
running the same job name again resumes from its newest complete checkpoint
(`--fresh` starts over; a job that succeeded is not trained again).
"""


def warn(text: str, stream=None) -> None:
    print(f"warning: {text}", file=stream or sys.stderr)


def _load_checked(spec_path: str, faults: list[str] = ()):
    """The spec with its --fault options, its entrypoint and storage checked (warnings to stderr)."""
    from controller import api

    spec, warnings = api.checked(spec_path, faults)
    for warning in warnings:
        warn(warning)
    return spec


def cmd_validate(args) -> int:
    spec = _load_checked(args.spec, args.fault)
    counts = ", ".join(f"{n} {r.value}" for r, n in spec.counts().items() if n)
    print(f"{args.spec}: valid ({spec.strategy.value}: {counts})")
    return EXIT_OK


def cmd_dry_run(args) -> int:
    from controller.plan.dry_run import render_plan

    spec = _load_checked(args.spec, args.fault)
    sys.stdout.write(render_plan(spec))
    return EXIT_OK


def cmd_status(args) -> int:
    from controller.machine.record import TornRecordError
    from controller.remote import status as remote_status
    from controller.remote.jobs_api import SubmitError
    from controller.spec import load_spec
    from controller.status.gather import job_view
    from controller.status.view import render_status

    spec = load_spec(args.spec)
    try:
        if args.address:
            view = remote_status.view_through_jobs_api(args.address, args.spec, args.working_dir)
        elif remote_status.reads_from_uri(spec):
            view = remote_status.view_from_uri(spec)
        else:
            view = job_view(spec)
    except TornRecordError as err:
        print(f"error: {err}; the next `tfray run` sets it aside and starts a new record (the checkpoints are "
              "kept)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SubmitError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(view, indent=2) if args.json else render_status(view, verbose=args.verbose))
    return EXIT_OK


def cmd_schema(args) -> int:
    from controller.spec import JobSpec

    print(json.dumps(JobSpec.model_json_schema(), indent=2))
    return EXIT_OK


def cmd_run(args) -> int:
    from controller.cli.terminal import run_on_terminal

    return run_on_terminal(args)


def _add_fault(p) -> None:
    p.add_argument("--fault", action="append", default=[], metavar="TASK:ACTION@WHEN",
                   help="inject a fault to see the job survive it, e.g. worker-1:kill@step=50, ps-0:hang@after=10, "
                   "chief-0:raise@step=100, worker-0:sigterm@step=20@restart=1 (repeatable; ACTION is kill, "
                   "sigterm, raise or hang; WHEN is @step=N, @save=N or @after=SECONDS, then @restart=R). On a "
                   "host network (TFRAY_HOST_NETWORK): silence, silence_head, or partition with @for=SECONDS, "
                   "e.g. worker-0:partition@step=100@for=20")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfray",
        description="Run TensorFlow tf.distribute training on Ray: one actor per chief/worker task, "
        "each with its own TF_CONFIG, with checkpoints and metrics gathered in one place.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="INFO", help="controller log level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a job on Ray (a local Ray is started unless --address is given)")
    p.add_argument("spec", help="job spec YAML")
    p.add_argument("--address", help="Ray cluster address ('auto' for a local `ray start`); default: $RAY_ADDRESS "
                   "or a new local Ray")
    p.add_argument("--num-cpus", type=float, help="CPUs of a new local Ray (default: this machine's)")
    p.add_argument("--fresh", action="store_true", help="start the job over: its old folder is moved aside to "
                   "<name>.old-<time> (nothing is deleted); without it a job name that ran before resumes from its "
                   "newest checkpoint, and one that succeeded trains nothing")
    p.add_argument("--dashboard", action="store_true", help="start a new local Ray with its dashboard and "
                   "Prometheus metrics on 127.0.0.1 (Ray prints the address)")
    p.add_argument("--verbose", action="store_true", help="show every line the tasks print, TensorFlow's C++ "
                   "banners and every traceback included (their log files have them either way)")
    _add_fault(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("dry-run", help="print every task's role, index, resources and TF_CONFIG; start nothing "
                       "and run no user code")
    p.add_argument("spec", help="job spec YAML")
    _add_fault(p)
    p.set_defaults(func=cmd_dry_run)

    p = sub.add_parser("validate", help="check a job spec, its entrypoint (by reading it, never running it) and "
                       "its storage path; start nothing")
    p.add_argument("spec", help="job spec YAML")
    _add_fault(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("status", help="a job at a glance: state, step, speed, metrics, checkpoint, tasks, "
                       "budgets, the last failure", description="Read from the job folder, which the driver keeps "
                       "current while the job runs; a job stored at a URI is read there when its driver is "
                       "elsewhere.")
    p.add_argument("spec", help="job spec YAML")
    p.add_argument("--verbose", action="store_true", help="every attempt and every failure, with the decision "
                   "taken and why")
    p.add_argument("--json", action="store_true", help="the same as one JSON object, for scripts")
    add_address(p, "ask the cluster's head (a short job through its Jobs API) instead of reading the job folder "
                "here; ")
    p.add_argument("--working-dir", default=".", help="with --address: the folder shipped with the status job, as "
                   "`tfray submit` ships it (default: the current one)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("submit", help="submit a job to a Ray cluster's Jobs API (like `ray job submit`) and "
                       "print its id; --follow streams its logs until it ends",
                       description="Submit `python -m controller run SPEC` to a Ray cluster through its Jobs API, "
                       "with the working folder shipped as the job's runtime_env. The spec is validated first.",
                       epilog=SUBMIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="job spec YAML, inside the working folder")
    add_address(p)
    p.add_argument("--working-dir", default=".", help="the folder shipped to the cluster as the job's working "
                   "folder (default: the current one); .gitignore'd files, .git and .venv stay behind")
    p.add_argument("--follow", action="store_true", help="stream the job's logs until it ends, then exit with "
                   "its status (Ctrl-C stops following, not the job)")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="with --follow: give up following after this long (the job goes on; exit 124); default 3600")
    p.add_argument("--submission-id", help="a fixed id: Ray rejects a second submit with the same id, so a "
                   "retried submit never starts the job twice")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("stop", help="stop a submitted job: its controller tears every task down; waits for the end")
    p.add_argument("submission_id", help="the id `tfray submit` printed (raysubmit_...)")
    add_address(p)
    p.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the job to end (default 60)")
    p.set_defaults(func=cmd_stop)

    cli_jobs.add_commands(sub)
    cli_files.add_commands(sub)
    cli_import.add_commands(sub)
    cli_predict.add_commands(sub)
    cli_serve.add_commands(sub)

    p = sub.add_parser("schema", help="print the job spec's JSON Schema")
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code. A command whose output's reader went away (``| head``) ends quietly
    with EXIT_BROKEN_PIPE, as a Unix tool killed by SIGPIPE would, and no traceback."""
    try:
        code = _command(argv)
        sys.stdout.flush()  # what is still buffered meets a gone reader here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit has nowhere to fail (Python's recipe for
    SIGPIPE, docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # a stdout without a file descriptor (a test's capture) has no last flush to fail
        pass


# The commands that only read files and print: no Ray, no child process, no user code, in this process.
STARTS_NOTHING = frozenset({"validate", "dry-run", "schema", "import-tfjob", "import-vertex"})


def _command(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="tfray: %(message)s", stream=sys.stderr)
    if args.command in STARTS_NOTHING:
        # Pydantic looks for plugins in every installed distribution's entry points when the spec's validator is
        # first built: about 10 ms of these commands' 0.3 s, for plugins (observability) that have no part in reading
        # a spec. Nothing else runs in this process to miss them; a user's own setting stands.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        settings.check_env()
        return args.func(args)
    except _bad_input_errors() as err:  # evaluated only once something was raised: no command pays for it
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _bad_input_errors() -> tuple[type[Exception], ...]:
    """What a command raises for bad input: said in one line, exit 2, no traceback."""
    from controller.api import ClusterUnreachableError
    from controller.spec import SpecError
    from controller.store.lease import JobRunningError

    return SpecError, JobRunningError, ClusterUnreachableError, settings.SettingsError
