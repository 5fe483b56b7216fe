"""Where a job's files live: the layout the controller and the tasks agree on.

A job folder ``<storage>/<job>/`` holds ``checkpoints/ckpt-<step>/`` (the
chief's checkpoints, each sealed by ``COMPLETE.json`` once its files are
written; the seal lists every file with its size and CRC-32, so a restore
can tell a truncated or altered checkpoint from a good one), ``quarantine/``
(checkpoints set aside because they failed that check or their restore),
``checkpoints/workertemp/<task>/`` (the other tasks' discarded
copies), ``manifest.json``, ``metrics.jsonl``, ``job.json`` and
``logs/attempt-<N>/`` (each task's output, and the driver's console). A task
that cannot see the head's storage path writes into a folder on its own
node (:func:`node_job_dir`), and its files travel in pieces
(``protocol.streaming``). Sealing and checking a checkpoint is
``protocol.seal``; writing a file atomically is ``protocol.atomic_files``.
Both sides import this module; it has no Ray and no TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

COMPLETE_MARKER = "COMPLETE.json"
CHECKPOINTS_DIR = "checkpoints"
WORKERTEMP_DIR = "workertemp"
MANIFEST = "manifest.json"
QUARANTINE_DIR = "quarantine"
MODEL_DIR = "model"  # the final model (AIP_MODEL_DIR of the chief; ctx.save_model)
BACKUPS_DIR = "backups"  # the code's own checkpoints (AIP_CHECKPOINT_DIR: BackupAndRestore, CheckpointManager)
# Keras fit's automatic backups (workers/keras_backup.py): inside the backups, so they travel with them to and
# from a node that does not share the storage path; in a folder of their own, so they never meet the script's.
KERAS_BACKUP_DIR = f"{BACKUPS_DIR}/auto"
CODE_TENSORBOARD_DIR = "tensorboard/code"  # the code's own TensorBoard logs (AIP_TENSORBOARD_LOG_DIR)
GATHERED_DIRS = (MODEL_DIR, BACKUPS_DIR, CODE_TENSORBOARD_DIR)  # the chief's folders that reach the head
LOGS_DIR = "logs"  # every task's output, by attempt: logs/attempt-<N>/<task>.log, and the driver's console
DRIVER_LOG = "driver"  # the driver's console of an attempt: logs/attempt-<N>/driver.log, beside its tasks' logs
TF_STATE_FILE = "checkpoint"  # TensorFlow's name for the file that names a folder's newest checkpoint
CKPT_PREFIX = "ckpt"  # a checkpoint folder's TF files: ckpt.index, ckpt.data-*
CHUNK_BYTES = 1 << 20  # files are read in pieces this size, never whole
# Files sent between nodes go in pieces this size: large enough that Ray's cost per object is small against
# the copy, small enough that a process holding a few of them stays small (bench/checkpoints.py).
STREAM_CHUNK_BYTES = 8 << 20
TOKEN_FILE = ".tfray-storage-token"  # written by the controller; a task that reads it shares the file system
NODE_DIR_ENV = "TFRAY_NODE_STORAGE"  # where tasks keep files on their own node (default: <tmp>/tfray-node)


def checkpoint_dir(job_dir: str | os.PathLike, step: int) -> Path:
    """Where the chief writes the checkpoint of ``step``."""
    return Path(job_dir) / CHECKPOINTS_DIR / f"ckpt-{step:09d}"


def workertemp_dir(job_dir: str | os.PathLike, task: str, step: int) -> Path:
    """Where a non-chief task writes its (discarded) copy of a checkpoint."""
    return Path(job_dir) / CHECKPOINTS_DIR / WORKERTEMP_DIR / task / f"ckpt-{step:09d}"


def node_job_dir(node_id: str, job_name: str) -> Path:
    """A task's own folder for the job on its node, when the storage path is not shared."""
    root = Path(os.environ.get(NODE_DIR_ENV) or Path(tempfile.gettempdir()) / "tfray-node")
    return root / node_id[:16] / job_name


def output_dirs(job_dir: str | os.PathLike, task: str, is_chief: bool) -> dict[str, Path]:
    """The folders Vertex AI gives training code, by environment variable, inside the job folder. Every
    task gets the same checkpoint and TensorBoard folders (TensorFlow's BackupAndRestore, ModelCheckpoint
    and TensorBoard callbacks write other tasks' copies to temporary folders themselves, and every task
    restores from the chief's); the model folder is the chief's, the others save to a temporary one, as
    TensorFlow's multi-worker saving asks (every task saves, one copy is kept)."""
    job = Path(job_dir)
    model = job / MODEL_DIR if is_chief else job / CHECKPOINTS_DIR / WORKERTEMP_DIR / task / MODEL_DIR
    return {"AIP_MODEL_DIR": model, "AIP_CHECKPOINT_DIR": job / BACKUPS_DIR,
            "AIP_TENSORBOARD_LOG_DIR": job / CODE_TENSORBOARD_DIR}


def task_log(job_dir: str | os.PathLike, attempt: int, task: str) -> Path:
    """Where a task's output of one attempt goes (every run of the cluster in that attempt appends)."""
    return Path(job_dir) / LOGS_DIR / f"attempt-{attempt}" / f"{task}.log"


def driver_log(job_dir: str | os.PathLike, attempt: int) -> Path:
    """Where the driver keeps its console of one attempt (what `tfray run` printed, each line stamped); a task
    is never named ``driver`` (task names are ``role-index``), so it cannot clash with a task's log."""
    return task_log(job_dir, attempt, DRIVER_LOG)
