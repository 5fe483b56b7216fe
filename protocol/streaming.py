"""A folder streamed through Ray in chunks, from the node that has it to the process that asks.

Without a shared file system, checkpoints and the job's folders travel
between a task's node and the head: the side that has the files serves
them from an actor method that is a generator over
:func:`read_chunks` (the task actor for its node's files, the
job's inbox on the head for the job folder), and the side that wants them
consumes the stream here, writing each piece as it comes
(:func:`write_chunks`): the inbox, for files coming to the
head, so the driver never touches them; the task actor, for a restore.
Ray holds at most ``STREAM_AHEAD`` pieces of a stream in flight, so neither
side nor the object store ever holds a whole checkpoint. Pieces travel as
numpy arrays: Ray moves those without pickling a copy, and the writer
writes straight from the object store. No TensorFlow here.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from protocol.layout import COMPLETE_MARKER, STREAM_CHUNK_BYTES

STREAM_AHEAD = 4  # pieces a reader may produce before the writer took them (Ray's generator backpressure)


class StreamError(RuntimeError):
    """A folder could not be fetched: its reader failed or did not keep up; the message says which."""


def as_arrays(pieces):
    """``(name, bytes)`` pieces as ``(name, uint8 array)``, no copy: what Ray sends without pickling it."""
    import numpy as np

    for name, piece in pieces:
        yield name, np.frombuffer(piece, dtype=np.uint8)


def streaming(method):
    """``actor.method`` as a call whose answers stream, with at most ``STREAM_AHEAD`` pieces in flight."""
    return method.options(num_returns="streaming", _generator_backpressure_num_objects=STREAM_AHEAD)


def fetch(stream, into: str | Path, timeout_s: float, what: str, replace: bool = True) -> Path:
    """Write what ``stream`` (the ObjectRefGenerator of a streaming read) yields into ``into``; bounded by
    ``timeout_s`` in all. StreamError when the reader failed or the time ran out (the folder is then
    incomplete: a checkpoint without its seal, never restored)."""
    import ray

    deadline = time.monotonic() + timeout_s

    def pieces():
        while True:
            ready, _ = ray.wait([stream], timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                raise StreamError(f"{what} did not arrive within {timeout_s:g}s")
            try:
                ref = next(stream)
            except StopIteration:
                return
            yield ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))

    try:
        return write_chunks(into, pieces(), replace=replace)
    except StreamError:
        raise
    except ray.exceptions.RayError as err:
        raise StreamError(f"{what} could not be read: {type(err).__name__}: {err}") from None


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
