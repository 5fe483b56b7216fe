"""The cluster commands of the CLI: ``tfray submit`` and ``tfray stop`` through a cluster's Jobs API."""

from __future__ import annotations

import sys
from pathlib import Path

from controller.cli.exit_codes import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_DETACHED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STILL_RUNNING,
    EXIT_STOPPED,
)

SUBMIT_EPILOG = f"""\
the path from zero to a trained model on a cluster (docs/clusters.md):
  ray up cluster_configs/aws.yaml                  start the cluster (after filling in its FILL IN values)
  ray dashboard cluster_configs/aws.yaml           keep running: forwards the head's Jobs API to 127.0.0.1:8265
  export RAY_AUTH_MODE=token                       the configs turn on Ray's token auth; the token is ~/.ray/auth_token
  tfray submit cluster_configs/jobs/digits_mwms_cluster.yaml --follow
  tfray stop raysubmit_XXXX                        or Ctrl-C to stop following and leave the job running
  ray down cluster_configs/aws.yaml

Run from the folder to ship (or give --working-dir): it becomes the job's working folder
on the cluster, and the spec must be inside it. Same as
`ray job submit --working-dir . -- python -m controller run JOB.yaml`.
--follow shows the job's own log; Ray's autoscaler events, which are the whole cluster's,
are left out (`ray job logs ID` keeps them).

exit status with --follow (controller/cli/exit_codes.py):
  {EXIT_OK:>3}  the job succeeded
  {EXIT_FAILED:>3}  the job failed
  {EXIT_BAD_INPUT:>3}  the spec is invalid, or the cluster cannot be reached or refuses the token
  {EXIT_DETACHED:>3}  you stopped following (Ctrl-C); the job goes on: `tfray stop ID` stops it
  {EXIT_STILL_RUNNING:>3}  still running after --timeout; the job goes on
  {EXIT_STOPPED:>3}  the job was stopped (`tfray stop`, `ray job stop`), or Ctrl-C came before it was submitted
without --follow: {EXIT_OK} once the job is submitted, {EXIT_BAD_INPUT} as above.
any command: {EXIT_BROKEN_PIPE} once its output's reader is gone (| head), without a traceback.
"""


def add_address(p, what: str = "") -> None:
    p.add_argument("--address", help=f"{what}the head's Jobs API URL; default $RAY_API_SERVER_ADDRESS, "
                   "$RAY_ADDRESS, or http://127.0.0.1:8265, where `ray dashboard CLUSTER.yaml` forwards it over SSH")


def cmd_submit(args) -> int:
    from controller.ray import runtime_env
    from controller.remote import jobs_api as remote
    from controller.spec import check_entrypoint, load_spec

    spec = load_spec(args.spec)
    runtime_env.for_ray(spec)  # what Ray would refuse on the cluster, refused here
    check_entrypoint(spec, runtime_env.import_paths(spec) + list(dict.fromkeys([
        str(Path(args.working_dir).resolve()), str(Path(args.spec).resolve().parent)])))
    if note := remote.relative_storage_note(spec):
        print(note, file=sys.stderr)
    submission_id = None
    try:
        client = remote.connect(args.address)
        submission_id = remote.submit(client, spec, args.spec, args.working_dir, args.submission_id)
        print(f"submitted job {spec.name} as {submission_id} to {remote.api_url(client)}\n"
              f"  logs:   ray job logs --follow {submission_id}\n"
              f"  status: ray job status {submission_id}\n"
              f"  stop:   tfray stop {submission_id}", flush=True)
        if not args.follow:
            return EXIT_OK
        status = remote.follow(client, submission_id, args.timeout)
    except remote.SubmitError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if submission_id is None:
            print("\ninterrupted before the submit was confirmed; `ray job list` shows whether the job exists",
                  file=sys.stderr)
            return EXIT_STOPPED
        print(f"\nstopped following (exit {EXIT_DETACHED}); job {submission_id} goes on. "
              f"Stop it with: tfray stop {submission_id}")
        return EXIT_DETACHED
    if status is None:
        print(f"\njob {submission_id} is still running after --timeout {args.timeout:g}s; "
              f"follow it with `ray job logs --follow {submission_id}`")
        return EXIT_STILL_RUNNING
    print(f"\njob {submission_id} {status.value}")
    return {"SUCCEEDED": EXIT_OK, "STOPPED": EXIT_STOPPED}.get(status.value, EXIT_FAILED)


def cmd_stop(args) -> int:
    from controller.remote import jobs_api as remote
    try:
        status = remote.stop(remote.connect(args.address), args.submission_id, args.wait)
    except remote.SubmitError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"job {args.submission_id} {status.value}")
    return EXIT_OK if status.is_terminal() else EXIT_STILL_RUNNING
