"""A controller command run on a cluster's head, its JSON read back: ``status --address`` and ``jobs --address``.

The command (``python -m controller status JOB.yaml --json``, ``... jobs
~/tfray-runs --json``) is submitted through the head's Jobs API as a short
job, with the working folder shipped as ``tfray submit`` ships it, so it runs
the code it is given and reads what the controllers on the head wrote, where
they wrote it: whatever the storage, nothing needs to reach this machine but
the printed answer. Ray may print lines around that answer; the one JSON
object with the keys asked for is taken from the job's output.
"""

from __future__ import annotations

import json

from controller import settings


def run_json(address: str | None, argv: list[str], working_dir: str, keys: tuple[str, ...]) -> dict:
    """Run ``python -m controller ARGV`` on the head as a short job and return the JSON object it printed that
    holds every one of ``keys``; SubmitError, with the job's output, when it does not print one in time."""
    from controller.remote import jobs_api as remote

    client = remote.connect(address)
    url = remote.api_url(client)
    command = argv[0]
    submission_id = remote._call(f"cannot ask the head for `tfray {command}`", url, client.submit_job,
                                 entrypoint=remote.controller_command(argv),
                                 runtime_env=remote.runtime_env_for(working_dir), metadata={"tfray": command})
    status = remote._wait_terminal(client, submission_id, settings.REMOTE_STATUS_S)
    logs = remote._call(f"cannot read the output of the {command} job", url, client.get_job_logs, submission_id)
    if not status.is_terminal():
        raise remote.SubmitError(f"the {command} job {submission_id} on {url} did not end within "
                                 f"{settings.REMOTE_STATUS_S:g}s; is the head overloaded? Its output so far:\n{logs}")
    answer = json_object(logs, keys)
    if answer is None:
        raise remote.SubmitError(f"the {command} job {submission_id} on {url} ended {status.value} without an "
                                 f"answer; its output:\n{logs[-3000:]}")
    return answer


def json_object(output: str, keys: tuple[str, ...]) -> dict | None:
    """The first JSON object in ``output`` that starts a line and holds every one of ``keys``."""
    decoder = json.JSONDecoder()
    offset = 0
    for line in output.splitlines(keepends=True):
        if line.startswith("{"):
            try:
                answer, _ = decoder.raw_decode(output, offset)
            except ValueError:
                answer = None
            if isinstance(answer, dict) and all(key in answer for key in keys):
                return answer
        offset += len(line)
    return None
