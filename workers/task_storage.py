"""Where a task's files go: the head's storage path if its node sees it, else a folder on its node.

A task that cannot see the head's storage path (local disks on a multi-node
cluster, or a URI) writes into its node's folder; the chief's sealed
checkpoints are then sent to the head through Ray with their files, and a
restart's checkpoint comes back the same way. In ``auto`` mode a task finds
out by reading the token the controller wrote into the job folder. The
Vertex AI folders a task's code writes to (``AIP_MODEL_DIR``,
``AIP_CHECKPOINT_DIR``, ``AIP_TENSORBOARD_LOG_DIR``) live in the same job
folder; on a node that does not share it, the job's backups are brought to
the node before a run and the chief's folders are gathered to the head after
it, so a script's own backups survive a restart wherever it lands.
"""

from __future__ import annotations

import os
import shutil

from controller import wire
from controller.layout import (
    BACKUPS_DIR,
    GATHERED_DIRS,
    TOKEN_FILE,
    node_job_dir,
    output_dirs,
    read_tree,
    task_log,
    write_tree,
)
from controller.wire import TaskLaunch


def _read_token(job_dir: str) -> str | None:
    try:
        with open(os.path.join(job_dir, TOKEN_FILE)) as f:
            return f.read().strip()
    except OSError:
        return None


class TaskStorage:
    def __init__(self, inbox, gather_timeout_s: float):
        self.inbox = inbox
        self.gather_timeout_s = gather_timeout_s
        self.gather = False  # True when this task cannot write into the job's storage path
        self.note = ""

    def prepare(self, launch: TaskLaunch) -> tuple[str, str | None]:
        """This run's job folder and restore checkpoint, fetching the checkpoint through Ray if need be."""
        import ray

        sees_storage = launch.storage_mode == "shared" or (launch.storage_mode == "auto" and (
            launch.storage_token is None or _read_token(launch.job_dir) == launch.storage_token))
        self.gather = not sees_storage
        self.note = ""  # what the task's log should say about where its files go
        if sees_storage:
            return launch.job_dir, launch.restore_from
        local = node_job_dir(ray.get_runtime_context().get_node_id(), launch.job_name)
        local.mkdir(parents=True, exist_ok=True)
        self.note = (f"{launch.job_dir} is not shared with this node: checkpoints go through {local} and are "
                     "gathered to the head")
        if launch.backup_files:  # the job's own backups, for code that resumes from them
            write_tree(local / BACKUPS_DIR, ray.get(launch.backup_files[0], timeout=self.gather_timeout_s))
        if not launch.restore_from:
            return str(local), None
        if not launch.restore_files:
            raise RuntimeError(f"{launch.task} cannot see {launch.restore_from} and was sent no copy of it")
        files = ray.get(launch.restore_files[0], timeout=self.gather_timeout_s)
        restore = write_tree(local / "restore" / launch.task / os.path.basename(launch.restore_from), files)
        return str(local), str(restore)

    @staticmethod
    def output_env(launch: TaskLaunch, job_dir: str) -> dict[str, str]:
        """The AIP_* variables of this run, their folders made."""
        env = {}
        for name, folder in output_dirs(job_dir, launch.task, launch.is_chief).items():
            folder.mkdir(parents=True, exist_ok=True)
            env[name] = str(folder)
        return env

    def finish(self, launch: TaskLaunch, job_dir: str) -> None:
        """After a run: a non-chief's model copy goes; a chief that gathers sends its folders to the head
        (bounded, so the run's end never waits forever)."""
        if not launch.is_chief:
            model = output_dirs(job_dir, launch.task, is_chief=False)["AIP_MODEL_DIR"]
            shutil.rmtree(model, ignore_errors=True)
        if not self.gather:
            return
        import ray

        logs = task_log(job_dir, launch.attempt, launch.task)
        sent = {logs.parent.relative_to(job_dir).as_posix(): {p.name: p.read_bytes() for p in
                                                              logs.parent.glob(f"{logs.name}*")}}
        if launch.is_chief:
            sent.update({name: read_tree(os.path.join(job_dir, name)) for name in GATHERED_DIRS
                         if os.path.isdir(os.path.join(job_dir, name))})
        for name, files in sent.items():
            if files:
                ray.get(self.inbox.report.remote(wire.folder_report(launch.key, name, files)),
                        timeout=self.gather_timeout_s)

    def forward(self, record: dict) -> None:
        """Pass a report on to the inbox (fire and forget). A checkpoint of a task that gathers travels
        with its files; the run ends only once the head has them."""
        if not (self.gather and record.get("kind") == wire.CHECKPOINT):
            self.inbox.report.remote(record)
            return
        import ray

        ray.get(self.inbox.report.remote({**record, "files": read_tree(record["path"])}),
                timeout=self.gather_timeout_s)
        shutil.rmtree(record["path"], ignore_errors=True)  # the head's copy is the checkpoint now
