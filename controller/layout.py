"""Where a job's files live: the layout the controller and the tasks agree on.

A job folder ``<storage>/<job>/`` holds ``checkpoints/ckpt-<step>/`` (the
chief's checkpoints, each sealed by ``COMPLETE.json`` once its files are
written; the seal lists every file with its size and CRC-32, so a restore
can tell a truncated or altered checkpoint from a good one), ``quarantine/``
(checkpoints set aside because they failed that check or their restore),
``checkpoints/workertemp/<task>/`` (the other tasks' discarded
copies), ``manifest.json``, ``metrics.jsonl`` and ``job.json``. A task
that cannot see the head's storage path writes into a folder on its own
node (:func:`node_job_dir`) and its checkpoint's files travel in chunks
(:func:`read_chunks` on the side that has them, :func:`write_chunks` on the
other), so no process ever holds a whole checkpoint. Both sides import this
module; it has no Ray and no TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

COMPLETE_MARKER = "COMPLETE.json"
CHECKPOINTS_DIR = "checkpoints"
WORKERTEMP_DIR = "workertemp"
MANIFEST = "manifest.json"
QUARANTINE_DIR = "quarantine"
MODEL_DIR = "model"  # the final model (AIP_MODEL_DIR of the chief; ctx.save_model)
BACKUPS_DIR = "backups"  # the code's own checkpoints (AIP_CHECKPOINT_DIR: BackupAndRestore, CheckpointManager)
CODE_TENSORBOARD_DIR = "tensorboard/code"  # the code's own TensorBoard logs (AIP_TENSORBOARD_LOG_DIR)
GATHERED_DIRS = (MODEL_DIR, BACKUPS_DIR, CODE_TENSORBOARD_DIR)  # the chief's folders that reach the head
LOGS_DIR = "logs"  # every task's output, by attempt: logs/attempt-<N>/<task>.log
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


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def file_digest(path: str | os.PathLike) -> dict:
    """A file's size and CRC-32 (fast enough to seal and check large checkpoints; it guards against torn
    and altered files, not against an adversary)."""
    crc, size = 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            crc, size = zlib.crc32(chunk, crc), size + len(chunk)
    return {"size": size, "crc32": f"{crc:08x}"}


def seal(path: str | os.PathLike, step: int, epoch: int | None, metrics: dict, batch: int | None = None) -> None:
    """Mark a fully written checkpoint folder complete (called by the chief after saving): the seal lists
    every file with its size and CRC-32. ``epoch`` counts the epochs begun before the save's one ended:
    with ``batch`` (the last batch done in that epoch) the save was mid-epoch."""
    folder = Path(path)
    files = {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != COMPLETE_MARKER}
    write_json_atomic(folder / COMPLETE_MARKER, {"step": step, "epoch": epoch, "batch": batch, "metrics": metrics,
                                                 "time": time.time(), "files": files})


def write_tf_state(folder: str | os.PathLike, prefixes: list[str]) -> None:
    """TensorFlow's own ``checkpoint`` state file in ``folder``, naming checkpoint prefixes relative to it
    (the newest last), so ``tf.train.latest_checkpoint(folder)``, ``tf.train.CheckpointManager`` and
    TF's side-car evaluator find them. Text, written atomically; no TensorFlow needed."""
    folder = Path(folder)
    if not prefixes:
        (folder / TF_STATE_FILE).unlink(missing_ok=True)
        return
    lines = [f'model_checkpoint_path: "{prefixes[-1]}"', *(f'all_model_checkpoint_paths: "{p}"' for p in prefixes)]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{TF_STATE_FILE}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, folder / TF_STATE_FILE)


def verify_checkpoint(path: str | os.PathLike) -> str | None:
    """What is wrong with a sealed checkpoint's files (missing, cut short, altered), or None when they are
    as sealed. A seal from before file lists were kept can only be checked for presence."""
    folder = Path(path)
    sealed = read_seal(folder)
    if sealed is None:
        return "it has no readable seal (COMPLETE.json)"
    for name, want in (sealed.get("files") or {}).items():
        file = folder / name
        if not file.is_file():
            return f"{name} is missing"
        try:
            got = file_digest(file)
        except OSError as err:
            return f"{name} cannot be read ({err.strerror or err})"
        if got["size"] != want.get("size"):
            return f"{name} has {got['size']} bytes, {want.get('size')} when sealed"
        if got["crc32"] != want.get("crc32"):
            return f"{name} has changed since it was sealed (CRC-32 {got['crc32']}, sealed {want.get('crc32')})"
    return None


def read_seal(path: str | os.PathLike) -> dict | None:
    """The seal of a checkpoint folder, or None when it is missing or unreadable (incomplete)."""
    try:
        sealed = json.loads((Path(path) / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return sealed if isinstance(sealed, dict) and isinstance(sealed.get("step"), int) else None


def sealed_checkpoints(job_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Every complete checkpoint folder of a job on disk, as (step, path), oldest first."""
    root = Path(job_dir) / CHECKPOINTS_DIR
    found = []
    for folder in root.glob("ckpt-*") if root.is_dir() else ():
        sealed = read_seal(folder)
        if sealed is not None:
            found.append((int(sealed["step"]), folder))
    return sorted(found)


def read_chunks(folder: str | os.PathLike, remove_after: bool = False,
                chunk_bytes: int = STREAM_CHUNK_BYTES) -> Iterator[tuple[str, bytes]]:
    """Every file under ``folder`` as ``(relative path, piece)`` pairs, one file's pieces in order and
    together, the checkpoint seal last (an empty file is one empty piece); then the folder is removed if
    ``remove_after``. Nothing when the folder does not exist."""
    folder = Path(folder)
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: (p.name == COMPLETE_MARKER, p))
    for path in files:
        rel = path.relative_to(folder).as_posix()
        with open(path, "rb") as f:
            piece = f.read(chunk_bytes)
            yield rel, piece
            while piece := f.read(chunk_bytes):
                yield rel, piece
    if remove_after:
        shutil.rmtree(folder, ignore_errors=True)


class ChunkWriter:
    """Writes ``(relative path, piece)`` pairs (as :func:`read_chunks` yields them) into ``folder``: each file
    under a temporary name, renamed once its last piece is in, so a reader sees whole files or none, and a
    checkpoint's seal only after every file it seals. ``replace``: the files are the folder's whole content
    (it is emptied first); else they join what is there. ``abort`` removes a file cut short."""

    def __init__(self, folder: str | os.PathLike, replace: bool = True):
        self.folder = Path(folder)
        if replace and self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._name: str | None = None
        self._tmp: Path | None = None
        self._file: BinaryIO | None = None

    def add(self, name: str, piece) -> None:
        if name != self._name:
            self._finish_file()
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"refusing to write {name!r} outside {self.folder}")
            target = self.folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            self._name, self._tmp = name, target.with_name(f".{target.name}.tmp")
            self._file = open(self._tmp, "wb")
        self._file.write(piece)

    def close(self) -> Path:
        self._finish_file()
        return self.folder

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
            self._name = self._file = None

    def _finish_file(self) -> None:
        if self._file is not None:
            self._file.close()
            os.replace(self._tmp, self.folder / self._name)
            self._name = self._file = None


def write_chunks(folder: str | os.PathLike, pieces: Iterable[tuple[str, bytes]], replace: bool = True) -> Path:
    """Write the pieces with a :class:`ChunkWriter`; a stream cut short leaves no half-written file."""
    writer = ChunkWriter(folder, replace)
    try:
        for name, piece in pieces:
            writer.add(name, piece)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
