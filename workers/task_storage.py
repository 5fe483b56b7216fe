"""Where a task's files go: the head's storage path if its node sees it, else a folder on its node.

A task that cannot see the head's storage path (local disks on a multi-node
cluster, or a URI) writes into its node's folder; the chief's sealed
checkpoints are then streamed to the head through Ray (the job's inbox
reads them from this task's actor in chunks, ``protocol/streaming.py``), and a
restart's checkpoint comes back the same way (from the job's inbox, which
lives on the head). In ``auto`` mode a task finds
out by reading the token the controller wrote into the job folder. The
Vertex AI folders a task's code writes to (``AIP_MODEL_DIR``,
``AIP_CHECKPOINT_DIR``, ``AIP_TENSORBOARD_LOG_DIR``) live in the same job
folder; on a node that does not share it, the job's backups are brought to
the node before a run and the chief's folders are gathered to the head after
it, so a script's own backups survive a restart wherever it lands.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from protocol.layout import BACKUPS_DIR, GATHERED_DIRS, TOKEN_FILE, node_job_dir, output_dirs, task_log
from protocol.streaming import fetch, streaming
from protocol.wire import CheckpointReport, FolderReport, Report, RestorePoint, TaskLaunch
from workers.inbox_sender import InboxSender


def _read_token(job_dir: str) -> str | None:
    try:
        with open(os.path.join(job_dir, TOKEN_FILE)) as f:
            return f.read().strip()
    except OSError:
        return None


class TaskStorage:
    def __init__(self, inbox, sender: InboxSender, gather_timeout_s: float):
        self.inbox = inbox
        self.sender = sender  # the task's reports, in order, to the inbox
        self.gather_timeout_s = gather_timeout_s
        self.gather = False  # True when this task cannot write into the job's storage path
        self.note = ""

    def prepare(self, launch: TaskLaunch) -> tuple[str, RestorePoint | None]:
        """This run's job folder and restore point, fetching the checkpoint through Ray if need be (the point
        then names the copy on this node)."""
        import ray

        storage, restore = launch.storage, launch.restore
        sees_storage = storage.mode == "shared" or (storage.mode == "auto" and (
            storage.token is None or _read_token(storage.job_dir) == storage.token))
        self.gather = not sees_storage
        self.note = ""  # what the task's log should say about where its files go
        if sees_storage:
            return storage.job_dir, restore
        local = node_job_dir(ray.get_runtime_context().get_node_id(), launch.job_name)
        local.mkdir(parents=True, exist_ok=True)
        self.note = (f"{storage.job_dir} is not shared with this node: checkpoints go through {local} and are "
                     "gathered to the head")
        # The job's own backups, for code that resumes from them (the head's copy; empty when it has none).
        self._from_head(Path(storage.job_dir) / BACKUPS_DIR, local / BACKUPS_DIR, "the job's backups")
        if restore is None:
            return str(local), None
        copy = self._from_head(restore.path, local / "restore" / launch.task / os.path.basename(restore.path),
                               f"checkpoint {restore.path}")
        return str(local), dataclasses.replace(restore, path=str(copy))

    def _from_head(self, folder: str | Path, into: Path, what: str) -> Path:
        """A folder of the head's job folder, streamed here by the job's inbox (which runs on the head)."""
        return fetch(streaming(self.inbox.read_chunks).remote(str(folder)), into, self.gather_timeout_s,
                     f"{what} (from the head)")

    @staticmethod
    def output_env(launch: TaskLaunch, job_dir: str) -> dict[str, str]:
        """The AIP_* variables of this run, their folders made."""
        env = {}
        for name, folder in output_dirs(job_dir, launch.task, launch.is_chief).items():
            folder.mkdir(parents=True, exist_ok=True)
            env[name] = str(folder)
        return env

    def finish(self, launch: TaskLaunch, job_dir: str) -> None:
        """After a run: a non-chief's model copy goes; a chief that gathers tells the head where its folders
        are (the job's inbox streams them from this actor), the task's log folder too."""
        if not launch.is_chief:
            model = output_dirs(job_dir, launch.task, is_chief=False)["AIP_MODEL_DIR"]
            shutil.rmtree(model, ignore_errors=True)
        if not self.gather:
            return
        logs = task_log(job_dir, launch.attempt, launch.task).parent
        folders = {logs.relative_to(job_dir).as_posix(): logs}
        if launch.is_chief:
            folders.update({name: Path(job_dir) / name for name in GATHERED_DIRS})
        for name, folder in folders.items():
            if folder.is_dir() and any(folder.iterdir()):
                self.sender.send(FolderReport(launch.key, name, str(folder)))

    def forward(self, report: Report) -> None:
        """Pass a report on to the inbox (queued: never waits). A checkpoint of a task that gathers stays on
        this node until the driver streamed it to the head (which removes it here); the report says so."""
        if self.gather and isinstance(report, CheckpointReport):
            report = dataclasses.replace(report, node_copy=True)
        self.sender.send(report)
