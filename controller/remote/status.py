"""`tfray status` of a job that runs somewhere else: at its storage URI, or on a cluster's head.

* A job stored at a URI (``gs://``, ``s3://``, ``file://``) whose driver is
  not on this machine: the head uploads ``job.json``, the manifest and
  ``metrics.jsonl`` as they change, so their copies at the URI are read
  (the metrics' tail only) into a scratch folder and shown from there.
* ``--address``: a short job is submitted through the head's Jobs API,
  ``python -m controller status JOB.yaml --json`` with the same working
  folder as ``tfray submit`` ships, and its printed view is read back. It
  sees what the controller on the head sees, whatever the storage.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from controller import settings
from controller.machine.record import EVENTS_FILE, JOB_STATE_FILE
from controller.report.metrics import METRICS_FILE
from controller.spec import JobSpec
from controller.status.gather import job_view
from controller.store.lease import FileLease
from protocol.layout import CHECKPOINTS_DIR, MANIFEST

METRICS_TAIL_BYTES = 256 * 1024  # as much of metrics.jsonl as status reads locally (metrics.last_rows)


def view_from_uri(spec: JobSpec) -> dict:
    """The job's view from the copies at its storage URI (needs pyarrow, as the URI's uploads did)."""
    from controller.store.storage import Mirror

    with tempfile.TemporaryDirectory(prefix="tfray-status-") as scratch:
        mirror = Mirror(spec.storage_uri, scratch)
        for rel, tail in ((JOB_STATE_FILE, None), (EVENTS_FILE, None), (MANIFEST, None),
                          (METRICS_FILE, METRICS_TAIL_BYTES)):
            mirror.fetch(rel, Path(scratch) / rel, tail)
        view = job_view(spec, job_dir=scratch)
        view["job_dir"] = spec.storage_uri
        if view.get("checkpoint"):
            # The manifest names the head's mirror; the URI's copy is the one a reader can reach.
            view["checkpoint"]["path"] = f"{spec.storage_uri}/{CHECKPOINTS_DIR}/{Path(view['checkpoint']['path']).name}"
        return view


def reads_from_uri(spec: JobSpec) -> bool:
    """True for a URI job whose driver is not this machine's (the head's uploads are then the news)."""
    return spec.storage_uri is not None and FileLease(spec.job_dir).holder() is None


def view_through_jobs_api(address: str | None, spec_path: str, working_dir: str = ".") -> dict:
    """Run ``status --json`` on the cluster's head as a short Ray job; the view it printed."""
    from controller.remote import jobs_api as remote
    client = remote.connect(address)
    url = remote.api_url(client)
    entrypoint = remote.entrypoint_for(spec_path, working_dir, ("status", "--json"))
    submission_id = remote._call("cannot ask the head for the job's status", url, client.submit_job,
                                 entrypoint=entrypoint, runtime_env=remote.runtime_env_for(working_dir),
                                 metadata={"tfray": "status"})
    status = remote._wait_terminal(client, submission_id, settings.REMOTE_STATUS_S)
    logs = remote._call("cannot read the status job's output", url, client.get_job_logs, submission_id)
    if not status.is_terminal():
        raise remote.SubmitError(f"the status job {submission_id} on {url} did not end within "
                                 f"{settings.REMOTE_STATUS_S:g}s; is the head overloaded? Its output so far:\n{logs}")
    view = parse_view(logs)
    if view is None:
        raise remote.SubmitError(f"the status job {submission_id} on {url} ended {status.value} without a status; "
                                 f"its output:\n{logs[-3000:]}")
    return view


def parse_view(output: str) -> dict | None:
    """The JSON view in a status job's output (Ray may print lines around it)."""
    decoder = json.JSONDecoder()
    offset = 0
    for line in output.splitlines(keepends=True):
        if line.startswith("{"):
            try:
                view, _ = decoder.raw_decode(output, offset)
            except ValueError:
                view = None
            if isinstance(view, dict) and "job" in view and "state" in view:
                return view
        offset += len(line)
    return None
