"""`tfray status` of a job that runs somewhere else: at its storage URI, or on a cluster's head.

* A job stored at a URI (``gs://``, ``s3://``, ``file://``) whose driver is
  not on this machine: the head uploads ``job.json``, the manifest and
  ``metrics.jsonl`` as they change, so their copies at the URI are read
  (the metrics' tail only) into a scratch folder and shown from there.
* ``--address``: a short job is submitted through the head's Jobs API,
  ``python -m controller status JOB.yaml --json`` with the same working
  folder as ``tfray submit`` ships, and its printed view is read back
  (``controller.remote.head``). It sees what the controller on the head
  sees, whatever the storage.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from controller.machine.record import EVENTS_FILE, JOB_STATE_FILE
from controller.remote.head import json_object, run_json
from controller.report.metrics import METRICS_FILE
from controller.spec import JobSpec
from controller.status.gather import job_view
from controller.store.lease import FileLease
from protocol.layout import CHECKPOINTS_DIR, MANIFEST

METRICS_TAIL_BYTES = 256 * 1024  # as much of metrics.jsonl as status reads locally (metrics.last_rows)
VIEW_KEYS = ("job", "state")  # what makes a JSON object in a status job's output its view


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
    from controller.remote.jobs_api import spec_in_working_dir  # the Jobs API client: only where it is used

    return run_json(address, ["status", spec_in_working_dir(spec_path, working_dir), "--json"], working_dir,
                    VIEW_KEYS)


def parse_view(output: str) -> dict | None:
    """The JSON view in a status job's output (Ray may print lines around it)."""
    return json_object(output, VIEW_KEYS)
