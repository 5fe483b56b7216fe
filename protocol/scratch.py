"""A run's scratch folder on its task's node (the launcher's request, the stop file), and what killed runs left.

The task actor removes its run's folder when the run ends. An actor that is
killed (SIGKILL, its node's raylet gone) cannot, so each folder's name
carries the pid of the actor that made it: the next run made on that
machine removes the folders whose actor no longer exists, and so does the
driver, on its own machine, when the job releases its actors.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "tfray-run-"
_OWNED = re.compile(rf"{PREFIX}(\d+)-")


def make_scratch() -> str:
    """A new scratch folder for a run of this actor, after removing those of actors that are gone."""
    remove_orphans()
    return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")


def remove_orphans(folder: str | None = None) -> list[Path]:
    """Remove the scratch folders in ``folder`` (the temp folder) whose actor's process no longer exists."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = _OWNED.match(path.name)
        if owner and not _alive(int(owner[1])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True
