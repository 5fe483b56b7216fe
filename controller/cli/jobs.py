"""The CLI's list of jobs: ``tfray jobs STORAGE_PATH``, every job under a storage path, one line each; with
``--address``, under a storage path on a cluster's head (read there by a short Jobs API job, as ``tfray status
--address`` reads one job)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from controller.cli.cluster import add_address
from controller.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from controller.store.storage import is_uri

JOBS_EPILOG = """\
examples:
  tfray jobs runs                                  every job under the folder runs/
  tfray jobs cluster_configs/jobs/digits_mwms.yaml every job under that spec's storage_path
  tfray jobs runs --json | jq '.jobs[] | select(.state == "FAILED") | .job'
  tfray jobs cluster_configs/jobs/digits_mwms_cluster.yaml --address http://127.0.0.1:8265
                                                   every job under its storage_path on the cluster's head

  JOB          STATE      ATTEMPT  STEP  EPOCH  UPDATED    CHECKPOINT
  digits-mwms  SUCCEEDED  1        510   15/15  2h05m ago  step 510, 2h05m old
  resnet       RUNNING    2        140   7/10   3s ago     step 140, 2m10s old

STATE is the last attempt's (`tfray status JOB.yaml` tells its story); RUNNING* when no driver
holds the job now. EPOCH is the chief's last reported epoch, of how many when the training or the
spec said. UPDATED is how long ago the job's record or its chief last said anything. A job is a
folder <storage_path>/<name> with a job.json; a storage path at a URI (gs://, s3://) is not listed:
`tfray status JOB.yaml` reads one job there. With --address the folder is read on the head (a short
job through its Jobs API, the working folder shipped as `tfray submit` ships it), so give it as the
head sees it: '~/tfray-runs' (quoted: the head's home, not yours), /home/ray/tfray-runs, or a spec
file here whose storage_path is one.
"""

# A bucket is not listed (its jobs would be read one by one through pyarrow); one job there, its status is.
URI_UNLISTED = "`tfray jobs` lists a folder on this machine (`tfray status JOB.yaml` reads one job at its URI)"


def storage_folder(given: str) -> tuple[Path | None, str | None]:
    """The folder to list for STORAGE_PATH (a folder, or a spec file whose storage_path it is) and, when
    there is none, why (an error) or None (a spec whose storage folder is not made yet: no jobs)."""
    path = Path(given).expanduser()
    if is_uri(given):
        return None, f"{given} is a URI: {URI_UNLISTED}"
    if not path.exists():
        return None, f"{given} does not exist: give a storage folder or a job spec file"
    if path.is_dir():
        return path, None
    from controller.spec import load_spec  # here: `tfray --help` imports no pydantic (test_cli_imports.py)

    spec = load_spec(given)  # SpecError names the file and the field (exit 2)
    if spec.storage_uri is not None:
        return None, f"{given}: storage_path {spec.storage_path} is a URI: {URI_UNLISTED}"
    return spec.resolve(spec.storage_path), None


def head_folder(given: str) -> tuple[str | None, str | None]:
    """With --address: the folder to list on the head for STORAGE_PATH (a folder there, or a spec file here
    whose storage_path it is), as the head reads it, and, when there is none, why (an error)."""
    if is_uri(given):
        return None, f"{given} is a URI: {URI_UNLISTED}"
    folder, named = given, given
    if Path(given).expanduser().is_file():  # a spec file here; a folder is the head's, not looked for here
        from controller.spec import load_spec

        spec = load_spec(given)  # SpecError names the file and the field (exit 2)
        if spec.storage_uri is not None:
            return None, f"{given}: storage_path {spec.storage_path} is a URI: {URI_UNLISTED}"
        folder, named = spec.storage_path, f"{given}: storage_path {spec.storage_path}"
    # A relative path on the head is inside some submitted job's own working folder (`tfray submit` warns of
    # it: Ray deletes that folder): no listing can name it. `~` is the head user's home: the head expands it.
    if not (folder.startswith("~") or os.path.isabs(folder)):
        return None, (f"{named} is relative: with --address the storage folder is read on the head, so give it as "
                      "the head sees it, e.g. '~/tfray-runs' (quoted: the head's home) or /home/ray/tfray-runs, or a "
                      "spec whose storage_path is one")
    return folder, None


def cmd_jobs(args) -> int:
    if args.address:
        return _jobs_on_head(args)
    from controller.status.jobs import job_rows

    folder, error = storage_folder(args.storage_path)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        rows = job_rows(folder) if folder.is_dir() else []
    except OSError as err:  # a folder this user may not read
        print(f"error: cannot list {folder}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    made = "" if folder.is_dir() else " (the folder is not made yet: a job's first `tfray run` makes it)"
    _print_jobs({"storage_path": str(folder), "jobs": rows}, args.json, f"no jobs in {folder}{made}")
    return EXIT_OK


def _jobs_on_head(args) -> int:
    """`tfray jobs --json` run on the head (controller.remote.head), shown as here."""
    from controller.remote.head import run_json
    from controller.remote.jobs_api import SubmitError

    folder, error = head_folder(args.storage_path)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        answer = run_json(args.address, ["jobs", folder, "--json"], args.working_dir, ("storage_path", "jobs"))
    except SubmitError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _print_jobs(answer, args.json, f"no jobs in {answer['storage_path']} on the head")
    return EXIT_OK


def _print_jobs(listing: dict, as_json: bool, none_text: str) -> None:
    from controller.status.jobs import render_jobs

    if as_json:
        print(json.dumps(listing, indent=2))
    else:
        print(render_jobs(listing["jobs"]) if listing["jobs"] else none_text)


def add_commands(sub) -> None:
    p = sub.add_parser("jobs", help="every job under a storage path: state, attempt, step, epoch, when it last "
                       "said anything, newest checkpoint", description="List the jobs under a storage path, read "
                       "from their folders as `tfray status` reads one (no Ray is started; with --address, on the "
                       "cluster's head).",
                       epilog=JOBS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("storage_path", metavar="STORAGE_PATH", help="a storage folder (on the head with --address), "
                   "or a job spec file whose storage_path is listed")
    p.add_argument("--json", action="store_true", help="the same as one JSON object, for scripts")
    add_address(p, "list the storage folder on the cluster's head (a short job through its Jobs API) instead of "
                "one here; ")
    p.add_argument("--working-dir", default=".", help="with --address: the folder shipped with the listing job, as "
                   "`tfray submit` ships it (default: the current one)")
    p.set_defaults(func=cmd_jobs)
