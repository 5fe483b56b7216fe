"""The job's folder on the head: prepared before a run, kept in step while it runs.

It holds the driver's lease (one driver per job), the checkpoint manifest,
``job.json`` and the storage token, and, when the storage path is a URI, the
mirror that downloads the folder before a run and uploads what changed. A
checkpoint a task could not write into the storage path is streamed here
from the task's node by the task group, seal last, while the job runs on
(``controller/machine/gathers.py``), and registered once it is in. A torn
``job.json`` is set aside and the record starts anew; a torn manifest is
rebuilt from the sealed folders; the checkpoints are kept either way.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Callable

from controller.machine.gathers import Gather, Gathers, Outcome
from controller.machine.record import AttemptRecord, JobRecord, TornRecordError
from controller.spec import JobSpec
from controller.states.task_group import FolderFetchError, TaskGroup
from controller.store.checkpoints import CheckpointManifest, CheckpointRecord
from controller.store.lease import FileLease
from controller.store.storage import Mirror
from protocol.layout import BACKUPS_DIR, GATHERED_DIRS, LOGS_DIR, TOKEN_FILE, checkpoint_dir
from protocol.wire import CheckpointReport, FolderReport

log = logging.getLogger("tfray")


class StorageError(RuntimeError):
    """The job's storage cannot be prepared (the message says which path and why)."""


class JobStore:
    def __init__(self, spec: JobSpec, group: TaskGroup, clock: Callable[[], float] = time.monotonic):
        self.spec = spec
        self.job_dir = spec.job_dir
        self.manifest = CheckpointManifest(self.job_dir, keep=spec.checkpoint.keep)
        self.record = JobRecord(self.job_dir, spec.name)
        self.lease = FileLease(self.job_dir)
        self.mirror: Mirror | None = None  # uploads the job folder when storage_path is a URI
        self.token = uuid.uuid4().hex  # tasks that can read it in the job folder share its file system
        self.gathers = Gathers(group, clock)  # folders on their way here from tasks' nodes

    def prepare(self) -> None:
        """Take the job's lease (JobRunningError when another driver has it), make the folder (downloading it
        from the URI first), set a torn record aside and clear half-written checkpoints."""
        self.job_dir.mkdir(parents=True, exist_ok=True)
        self.lease.acquire(self.spec.name)
        if self.spec.storage_uri is not None:
            try:
                self.mirror = Mirror(self.spec.storage_uri, self.job_dir)
                self.mirror.download()  # a re-run resumes from what the URI holds
            except Exception as err:
                raise StorageError(f"storage_path {self.spec.storage_path}: cannot read {self.spec.storage_uri}: "
                                   f"{type(err).__name__}: {err}") from None
            self.manifest = CheckpointManifest(self.job_dir, keep=self.spec.checkpoint.keep)
        (self.job_dir / TOKEN_FILE).write_text(self.token)
        try:
            self.record.attempts()
        except TornRecordError as err:
            log.warning("%s; it is set aside as %s and the record starts anew (the checkpoints are kept)", err,
                        self.record.set_aside())
        self.manifest.reconcile()  # nothing runs yet: half-written checkpoints can go

    def quarantine(self, record: CheckpointRecord, reason: str) -> Path:
        aside = self.manifest.quarantine(record, reason)
        log.warning("checkpoint of step %d set aside as %s: %s", record.step, aside, reason)
        self.sync()
        return aside

    def latest(self) -> CheckpointRecord | None:
        return self.manifest.latest()

    @property
    def backups_dir(self) -> Path:
        """The code's own checkpoint folder: every task's AIP_CHECKPOINT_DIR (``protocol.layout.output_dirs``)."""
        return self.job_dir / BACKUPS_DIR

    def backups_hold_files(self) -> bool:
        """Whether the code's own checkpoint folder holds any file: what a restarted script that resumes by
        itself would find."""
        return any(path.is_file() for path in self.backups_dir.rglob("*"))

    def reconcile(self) -> None:
        """Between runs of the cluster (no task writes): half-written checkpoints go."""
        self.manifest.reconcile()

    def adopt_sealed(self) -> None:
        """At the end: checkpoints sealed while the job stopped join the manifest (tasks may still be
        ending, so nothing is deleted)."""
        for record in self.manifest.adopt_sealed():
            log.info("checkpoint at step %d, sealed as the job ended: %s", record.step, record.path)

    def register(self, report: CheckpointReport) -> CheckpointRecord | None:
        """A checkpoint a task reported, registered when it is complete. One on the task's node (it does not
        share the storage path) is gathered here first, on its own: None now, and its record comes from
        :meth:`collect_gathers` once it is in."""
        # Tasks that save past the checkpoint they restored from have restored it: it may be pruned again.
        self.manifest.protected = {step for step in self.manifest.protected if step >= report.step}
        if report.node_copy:
            self.gathers.add(Gather(report.key, f"the checkpoint of step {report.step}", report.path,
                                    checkpoint_dir(self.job_dir, report.step), remove_after=True, replace=True,
                                    step=report.step))
            return None
        return self._register(report.path, report.task)

    def gather_folder(self, report: FolderReport) -> None:
        """A job folder on a node that does not share the storage path, gathered here on its own: the chief's
        model, backups and TensorBoard logs replace ours; a task's log files join the attempt's."""
        name = report.name
        if name not in GATHERED_DIRS and not (name.startswith(f"{LOGS_DIR}/attempt-") and name.count("/") == 1):
            log.warning("a task sent a folder named %r, which is not one of the job's; ignored", name)
            return
        self.gathers.add(Gather(report.key, name, report.path, self.job_dir / name, remove_after=False,
                                replace=name in GATHERED_DIRS))

    def collect_gathers(self) -> list[CheckpointRecord]:
        """The gathers over since the last call, without waiting: the checkpoints that came registered (what
        is returned), those given up said, the job going on from the checkpoints it holds."""
        return self._arrived(self.gathers.collect())

    def wait_for_gathers(self, before: str) -> list[CheckpointRecord]:
        """Every gather over, waited for within its deadline (``before`` the manifest is reconciled for a
        restart, or the actors serving them are released at the end): nothing writes into the folder then."""
        try:
            outcomes = self.gathers.wait_all(before)
        except KeyboardInterrupt:
            self.collect_gathers()  # what was given up is said
            raise
        return self._arrived(outcomes)

    def _arrived(self, outcomes: list[Outcome]) -> list[CheckpointRecord]:
        registered = []
        for gather, outcome in outcomes:
            if isinstance(outcome, FolderFetchError):
                latest = self.latest()
                log.warning("%s on %s's node was not gathered: %s%s", gather.what, gather.task, outcome,
                            "" if gather.step is None else
                            f"; the job goes on from its newest checkpoint, "
                            f"{f'step {latest.step}' if latest else 'none yet'}")
            elif gather.step is None:
                self.sync()
            elif (record := self._register(str(outcome), str(gather.task))) is not None:
                registered.append(record)
        return registered

    def _register(self, path: str, task: str) -> CheckpointRecord | None:
        registered = self.manifest.register(path)
        if registered is None:
            log.warning("checkpoint %s reported by %s is not complete; ignored", path, task)
            return None
        if registered not in self.manifest.records:  # came in after newer ones, older than those kept
            log.info("checkpoint at step %d came after newer ones and is not kept (checkpoint.keep=%d)",
                     registered.step, self.manifest.keep)
            return None
        log.info("checkpoint at step %d: %s", registered.step, registered.path)
        self.sync()
        return registered

    def write(self, entry: AttemptRecord) -> None:
        self.record.write_attempt(entry)

    def sync(self, min_interval_s: float = 0.0) -> None:
        """Upload the folder's changes to the storage URI (if any); a failed upload is retried later."""
        if self.mirror is None:
            return
        try:
            self.mirror.sync(min_interval_s)
        except Exception as err:
            log.warning("could not upload to %s (%s: %s); trying again later", self.spec.storage_uri,
                        type(err).__name__, err)

    def close(self) -> None:
        """The job ended: the other tasks' checkpoint copies go, the rest is uploaded, the lease is released."""
        try:
            self.manifest.remove_workertemp()
            self.sync()
        finally:
            self.lease.release()
