"""The CLI's list of jobs: ``tfray jobs STORAGE_PATH``, every job under a storage path, one line each."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from controller.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from controller.store.storage import is_uri

JOBS_EPILOG = """\
examples:
  tfray jobs runs                                  every job under the folder runs/
  tfray jobs cluster_configs/jobs/digits_mwms.yaml every job under that spec's storage_path
  tfray jobs runs --json | jq '.jobs[] | select(.state == "FAILED") | .job'

  JOB          STATE      ATTEMPT  STEP  EPOCH  UPDATED    CHECKPOINT
  digits-mwms  SUCCEEDED  1        510   15/15  2h05m ago  step 510, 2h05m old
  resnet       RUNNING    2        140   7/10   3s ago     step 140, 2m10s old

STATE is the last attempt's (`tfray status JOB.yaml` tells its story); RUNNING* when no driver
holds the job now. EPOCH is the chief's last reported epoch, of how many when the training or the
spec said. UPDATED is how long ago the job's record or its chief last said anything. A job is a
folder <storage_path>/<name> with a job.json; a storage path at a URI (gs://, s3://) is not listed:
`tfray status JOB.yaml` reads one job there.
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


def cmd_jobs(args) -> int:
    from controller.status.jobs import job_rows, render_jobs

    folder, error = storage_folder(args.storage_path)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        rows = job_rows(folder) if folder.is_dir() else []
    except OSError as err:  # a folder this user may not read
        print(f"error: cannot list {folder}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps({"storage_path": str(folder), "jobs": rows}, indent=2))
    elif not rows:
        made = "" if folder.is_dir() else " (the folder is not made yet: a job's first `tfray run` makes it)"
        print(f"no jobs in {folder}{made}")
    else:
        print(render_jobs(rows))
    return EXIT_OK


def add_commands(sub) -> None:
    p = sub.add_parser("jobs", help="every job under a storage path: state, attempt, step, epoch, when it last "
                       "said anything, newest checkpoint", description="List the jobs under a storage path, read "
                       "from their folders as `tfray status` reads one (no Ray is started).",
                       epilog=JOBS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("storage_path", metavar="STORAGE_PATH", help="a storage folder, or a job spec file whose "
                   "storage_path is listed")
    p.add_argument("--json", action="store_true", help="the same as one JSON object, for scripts")
    p.set_defaults(func=cmd_jobs)
