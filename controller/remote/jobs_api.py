"""Jobs on a remote Ray cluster through its Jobs API: ``tfray submit`` and ``tfray stop``.

``tfray submit JOB.yaml`` does what ``ray job submit --working-dir . -- python
-m controller run JOB.yaml`` does, through Ray's ``JobSubmissionClient``: the
working folder is shipped as the job's ``runtime_env`` and the controller runs
as the job's driver on the head node, where it reaches the cluster through
``RAY_ADDRESS``. The CLI validates the spec before anything is uploaded.

The address is the head's Jobs API (the dashboard port, 8265). The cluster
configs never open that port to the internet: ``ray dashboard CLUSTER.yaml``
forwards it over SSH to ``http://127.0.0.1:8265``, the default here. Ray's
token auth applies as for every Ray client: ``RAY_AUTH_MODE=token`` and the
cluster's token in ``~/.ray/auth_token`` (or ``RAY_AUTH_TOKEN_PATH`` /
``RAY_AUTH_TOKEN``). Ray is imported lazily, so the CLI starts without it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import TextIO

from controller import settings

DEFAULT_ADDRESS = "http://127.0.0.1:8265"  # where `ray dashboard CLUSTER.yaml` forwards the head's Jobs API
# Never shipped: the local virtualenv, results and VCS data (Ray also honours .gitignore and .rayignore).
WORKING_DIR_EXCLUDES = [".git", ".venv", "runs", "__pycache__", "*.pyc"]

AUTH_HINT = (
    "export RAY_AUTH_MODE=token and give this client the cluster's token: ~/.ray/auth_token (chmod 600), "
    "or RAY_AUTH_TOKEN_PATH=<file>, or RAY_AUTH_TOKEN=<token>. With the cluster configs the token is the "
    "~/.ray/auth_token that `ray up` copied to every node (docs/clusters.md)."
)


class SubmitError(RuntimeError):
    """The Jobs API could not be reached or refused this client; the message says what to do."""


def resolve_address(address: str | None) -> str:
    """--address, else $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS, else the forwarded dashboard port."""
    return (address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
            or DEFAULT_ADDRESS)


def spec_in_working_dir(spec_path: str | os.PathLike, working_dir: str | os.PathLike) -> str:
    """The spec's path inside the working folder, as the job on the cluster finds it there."""
    spec, root = Path(spec_path).resolve(), Path(working_dir).resolve()
    if not spec.is_relative_to(root):
        raise SubmitError(f"{spec_path} is outside the working folder {root}: only that folder is shipped "
                          "to the cluster; move the spec into it or pass --working-dir")
    return spec.relative_to(root).as_posix()


def controller_command(argv: list[str]) -> str:
    """The job's shell command: ``python -m controller ARGV``."""
    # `python` is the head node's interpreter (the cluster configs put their virtualenv first on PATH).
    return shlex.join(["python", "-m", "controller", *argv])


def entrypoint_for(spec_path: str | os.PathLike, working_dir: str | os.PathLike) -> str:
    """The job's shell command: ``run`` on the spec, by its path inside the working folder."""
    return controller_command(["run", spec_in_working_dir(spec_path, working_dir)])


def runtime_env_for(working_dir: str | os.PathLike) -> dict:
    return {"working_dir": str(Path(working_dir).resolve()), "excludes": list(WORKING_DIR_EXCLUDES)}


def connect(address: str | None):
    """A JobSubmissionClient for the cluster, or a SubmitError that says how to fix the connection."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    url = resolve_address(address)
    # Ray lets $RAY_API_SERVER_ADDRESS / $RAY_ADDRESS override its address argument; --address must win,
    # so they are out of the way while the client resolves it (it keeps the URL; later calls use that).
    hidden = {k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if address and k in os.environ}
    try:
        return JobSubmissionClient(url)
    except AuthenticationError as err:
        raise SubmitError(auth_message(url, err)) from None
    except Exception as err:  # noqa: BLE001 -- refused, a bad URL, a timeout: all mean "not reachable as given"
        raise SubmitError(
            f"cannot reach the Ray Jobs API at {url} ({type(err).__name__}: {err}). Is the cluster up, and is "
            "`ray dashboard cluster_configs/<cloud>.yaml` running in another terminal? It forwards the head's "
            "port 8265 to this machine over SSH; the cluster configs never expose it to the internet."
        ) from None
    finally:
        os.environ.update(hidden)


def auth_message(url: str, err: Exception) -> str:
    text = str(err)
    if "Authentication failed" in text or "403" in text:
        return f"the Ray cluster at {url} rejected this client's token (not the cluster's token). {AUTH_HINT}"
    return f"the Ray cluster at {url} requires token authentication and this client sent no token. {AUTH_HINT}"


def _call(what: str, url: str, fn, *args, **kwargs):
    """One Jobs API call, with auth, connection and server errors turned into SubmitError."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        return fn(*args, **kwargs)
    except AuthenticationError as err:
        raise SubmitError(auth_message(url, err)) from None
    except (ConnectionError, requests.exceptions.RequestException) as err:
        raise SubmitError(f"{what}: lost the Ray Jobs API at {url}: {err}") from None
    except RuntimeError as err:  # the server answered with an error (unknown id, id reused, ...)
        raise SubmitError(f"{what}: {err}") from None


def api_url(client) -> str:
    """The Jobs API URL a client talks to (for messages)."""
    return getattr(client, "_address", "the Jobs API")


def submit(client, spec, spec_path: str, working_dir: str, submission_id: str | None = None) -> str:
    """Submit the controller run of one job spec; returns the submission id.

    Right after a head starts, its job agent may not be up yet and the Jobs API answers "No available
    agent to submit job, please try again later" (nothing was created): that is retried, bounded.
    """
    refused: list[SubmitError] = []  # "no agent yet" answers, the last one raised when the wait runs out

    def submitted() -> str | None:
        try:
            return _call(
                "cannot submit", api_url(client), client.submit_job,
                entrypoint=entrypoint_for(spec_path, working_dir),
                runtime_env=runtime_env_for(working_dir),
                submission_id=submission_id,
                metadata={"tfray_job": spec.name},
            )
        except SubmitError as err:
            if "No available agent" not in str(err):
                raise
            if not refused:
                print(f"tfray: the head's job agent is not up yet; trying again for up to {settings.AGENT_WAIT_S:g}s",
                      file=sys.stderr, flush=True)
            refused.append(err)
            return None

    try:
        return settings.poll_until(submitted, settings.AGENT_WAIT_S, settings.AGENT_RETRY_S, "the head's job agent")
    except settings.WaitTimeout:
        raise refused[-1] from None


# Ray's driver prints the autoscaler's events as "(autoscaler +12s) Adding 2 node(s) ..." (coloured on a
# terminal), including its one-time "Tip: use `ray status` ..." line.
AUTOSCALER_EVENT = re.compile(r"^(?:\x1b\[[0-9;]*m)*\(autoscaler \+[0-9hms]+\)")
AUTOSCALER_NOTE = ("tfray: Ray's autoscaler events are left out here: they are the whole cluster's, often about "
                   "earlier jobs, and cannot be told apart by job. `ray job logs {id}` keeps them; `ray status` "
                   "on the head shows the cluster's nodes and demand.")


class JobLogFilter:
    """Passes a job's log stream on line by line, leaving out Ray's autoscaler events.

    Ray's driver prints every autoscaler event of the cluster, not only its own job's: events of a job that
    ended moments before (its nodes, demand that no node type can meet) arrive seconds late, so a followed job
    would start with them. The job's own controller reports what its placement group waits for; the
    complete log, events included, stays available through `ray job logs`.
    """

    def __init__(self, out: TextIO, note: str):
        self.out, self.note, self.partial, self.hidden = out, note, "", 0

    def feed(self, chunk: str) -> None:
        lines = (self.partial + chunk).split("\n")
        self.partial = lines.pop()  # a line cut between chunks waits for its end
        kept = [line for line in lines if not self._hide(line)]
        if kept:
            self.out.write("\n".join(kept) + "\n")
            self.out.flush()

    def close(self) -> None:
        if self.partial and not self._hide(self.partial):
            self.out.write(self.partial)
            self.out.flush()
        self.partial = ""

    def _hide(self, line: str) -> bool:
        if not AUTOSCALER_EVENT.match(line):
            return False
        if not self.hidden:
            print(self.note, file=sys.stderr, flush=True)
        self.hidden += 1
        return True


async def _tail(client, submission_id: str, lines: JobLogFilter) -> None:
    async for chunk in client.tail_job_logs(submission_id):
        lines.feed(chunk)


def follow(client, submission_id: str, timeout_s: float, out: TextIO | None = None):
    """Stream the job's logs, less Ray's autoscaler events, until it ends; its terminal JobStatus, or None if
    timeout_s passed first."""
    lines = JobLogFilter(out or sys.stdout, AUTOSCALER_NOTE.format(id=submission_id))
    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(_tail(client, submission_id, lines), timeout=timeout_s))
    except asyncio.TimeoutError:
        return None
    except Exception as err:  # noqa: BLE001 -- the log stream broke (a proxy, a restart): polling tells the end
        print(f"tfray: the log stream ended early ({err}); waiting for the job's status", file=sys.stderr)
    finally:
        lines.close()  # a last line without its newline
    # The stream closes when the driver exits; the terminal status follows within moments.
    status = _wait_terminal(client, submission_id,
                            max(timeout_s - (time.monotonic() - started), settings.STATUS_SETTLE_S))
    return status if status.is_terminal() else None


def stop(client, submission_id: str, wait_s: float):
    """Ask the job to stop (its controller gets SIGTERM and tears down); its status after up to wait_s."""
    _call(f"cannot stop {submission_id}", api_url(client), client.stop_job, submission_id)
    return _wait_terminal(client, submission_id, wait_s)


def _wait_terminal(client, submission_id: str, timeout_s: float):
    """Poll until the job's status is terminal or ``timeout_s`` passes; the last status seen."""
    status = None

    def ended() -> bool:
        nonlocal status
        status = _call(f"cannot read the status of {submission_id}", api_url(client), client.get_job_status,
                       submission_id)
        return status.is_terminal()

    try:
        settings.poll_until(ended, timeout_s, settings.STATUS_POLL_S, f"the end of {submission_id}")
    except settings.WaitTimeout:
        pass  # the caller says what a job still running means
    return status


def relative_storage_note(spec) -> str | None:
    """A warning when results would land inside the shipped working folder, which Ray deletes later."""
    if os.path.isabs(os.path.expanduser(spec.storage_path)) or "://" in spec.storage_path:
        return None
    return (f"note: storage_path '{spec.storage_path}' is relative, so on the cluster it resolves inside the "
            "job's unpacked working folder on the head node, which Ray deletes when it is no longer used. "
            "To keep checkpoints and metrics give an absolute path (e.g. ~/tfray-runs, on the head) or a "
            "bucket URI (s3://..., gs://...).")
