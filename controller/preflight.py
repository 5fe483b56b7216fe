"""Checks on this machine before anything starts: can the job's storage path be created and written?

A path like ``/proc/x`` or a read-only mount passes the spec's model and
would fail after Ray started, with a traceback from every task. Here it is
tried for real, in the nearest folder that exists, with a temporary folder
that is removed at once. A storage URI is not checked (the head's mirror
is).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from controller.spec import JobSpec, SpecError


def check_storage(spec: JobSpec) -> None:
    """SpecError naming ``storage_path`` when the job's folder could not be created and written here."""
    if spec.storage_uri is not None:
        return
    folder = spec.job_dir
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    where = f"storage_path: {spec.storage_path} ({folder})"
    if existing is None:
        raise SpecError(f"{where}: no part of it exists")
    if not existing.is_dir():
        raise SpecError(f"{where}: {existing} is a file, not a folder; choose another storage_path")
    try:
        Path(tempfile.mkdtemp(prefix=".tfray-check-", dir=existing)).rmdir()
    except OSError as err:
        raise SpecError(f"{where}: cannot create folders in {existing} ({err.strerror or err}); choose a "
                        "storage_path this user can write") from None
    if folder.exists() and not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        raise SpecError(f"{where}: this user cannot read and write it")
