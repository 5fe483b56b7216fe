"""A checkpoint's seal: the list of its files with their sizes and CRC-32s, written once they are all in.

A restore checks the files against it, so a truncated or altered checkpoint is
told from a good one; a folder without a readable seal is incomplete.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path

from protocol.atomic_files import write_json_atomic
from protocol.layout import CHECKPOINTS_DIR, CHUNK_BYTES, COMPLETE_MARKER


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
