"""One driver per job: a lease on the job's folder, held for the driver's whole life.

Two drivers on one job name would both write ``job.json`` and the manifest,
and one's pruning would delete the checkpoint the other restores. The lease
is an exclusive ``flock`` on ``<job>/.tfray-lease``: the kernel (or the NFS
lock manager) releases it when its holder's process ends, however it ends,
so a lease whose holder is gone is simply taken, and the next attempt
carries on from the lost one's record (``DRIVER_LOST``). The file says who
holds it (host, pid, since) so a refused driver can say who runs the job.
On the cluster the job's named report inbox is a second lease
(``controller/ray/inbox.py``): it covers drivers on other machines that
share a storage URI.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LEASE_FILE = ".tfray-lease"  # hidden: the URI mirror does not upload it


class JobRunningError(RuntimeError):
    """Another driver holds the job's lease; the message says who and what to do."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    since: float  # epoch seconds

    @classmethod
    def me(cls) -> "Holder":
        return cls(socket.gethostname(), os.getpid(), time.time())

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"driver pid {self.pid} on {self.host} since {since}"


def running_message(job: str, holder: Holder | None, spec_hint: str = "JOB.yaml") -> str:
    who = holder.describe() if holder else "another driver"
    return (f"job {job} is running ({who}); follow it with `tfray status {spec_hint}`, stop it with Ctrl-C in its "
            "terminal (or `tfray stop ID` when submitted), or use another job name")


class FileLease:
    def __init__(self, job_dir: str | os.PathLike):
        self.path = Path(job_dir) / LEASE_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> Holder | None:
        """Who holds the lease now, or None when nobody does (read only: nothing is taken)."""
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._read(fd) or Holder("?", 0, 0.0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def acquire(self, job: str) -> None:
        """Take the lease for this process, or raise JobRunningError naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            os.close(fd)
            raise JobRunningError(running_message(job, holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(Holder.me())).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def _read(fd: int) -> Holder | None:
        try:
            return Holder(**json.loads(os.pread(fd, 4096, 0) or b"null"))
        except (TypeError, ValueError, OSError):
            return None
