"""Checkpoints whose files TensorFlow writes in the background, each sealed once its write is done.

A thread of the training process takes them in order: ``checkpoint.sync()``
returns when TensorFlow's asynchronous write of it (and of any before it) is
done, and then its ``seal`` runs (the seal file, TF's state file, the report
to the controller). ``workers/keras.py`` saves through one of these.
"""

from __future__ import annotations

import atexit
import os
import queue
import sys
import threading


class Sealer:
    """Saves whose files TensorFlow still writes: each is sealed and reported, in order, once its write is
    done (a thread of the process that trains; started with its first save, so never in the launcher)."""

    def __init__(self):
        self._pid: int | None = None
        self._queue: queue.Queue | None = None
        self._error: BaseException | None = None

    def after(self, checkpoint, seal) -> None:
        """Call ``seal()`` once ``checkpoint``'s write in flight is done."""
        self.raise_error()
        if self._pid != os.getpid():  # first save of this process
            self._pid, self._queue = os.getpid(), queue.Queue()
            threading.Thread(target=self._seal_forever, name="tfray-sealer", daemon=True).start()
            atexit.register(self.wait)  # the process ends with its saves sealed (a stop on notice, a return)
        self._queue.put((checkpoint, seal))

    def wait(self) -> None:
        """Until every save so far is sealed; raises what a seal raised."""
        if self._queue is not None and self._pid == os.getpid():
            self._queue.join()
        self.raise_error()

    def raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _seal_forever(self) -> None:
        while True:
            checkpoint, seal = self._queue.get()
            try:
                checkpoint.sync()  # TensorFlow's write of it is done (and any before it)
                seal()
            except BaseException as err:  # surfaces at the next save or wait, in the training step
                print(f"[tfray] a checkpoint could not be sealed: {type(err).__name__}: {err}", file=sys.stderr,
                      flush=True)
                self._error = err
            finally:
                self._queue.task_done()
