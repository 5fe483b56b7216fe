"""A folder streamed through Ray in chunks, from the node that has it to the process that asks.

Without a shared file system, checkpoints and the job's folders travel
between a task's node and the head: the side that has the files serves
them from an actor method that is a generator over
``controller.layout.read_chunks`` (the task actor for its node's files, the
job's inbox on the head for the job folder), and the side that wants them
consumes the stream here, writing each piece as it comes
(``controller.layout.write_chunks``): the inbox, for files coming to the
head, so the driver never touches them; the task actor, for a restore.
Ray holds at most ``STREAM_AHEAD`` pieces of a stream in flight, so neither
side nor the object store ever holds a whole checkpoint. Pieces travel as
numpy arrays: Ray moves those without pickling a copy, and the writer
writes straight from the object store. No TensorFlow here.
"""

from __future__ import annotations

import time
from pathlib import Path

from controller.layout import write_chunks

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
