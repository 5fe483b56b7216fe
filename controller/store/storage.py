"""Where a job's files live when the cluster has no shared file system.

Three cases, one layout (``<storage>/<job>/``: checkpoints, manifest.json,
metrics.jsonl, job.json):

* **Shared file system** (a local path every node sees, e.g. NFS): tasks
  write their checkpoints straight into it. This is all a one-machine run
  needs.
* **Local disks only**: each task writes into a folder on its own node
  (``protocol.layout.node_job_dir``); the controller streams each sealed checkpoint
  from the chief's task actor through Ray in chunks into the head node's storage
  path, seal last (``protocol/streaming.py``). A restart streams the newest
  checkpoint back the same way, from the job's inbox on the head. In ``auto`` mode a
  task finds out which case it is in by looking for the token the controller
  wrote into the job folder (``protocol.layout.TOKEN_FILE``).
* **Cloud storage** (``gs://``, ``s3://``, any URI ``pyarrow.fs`` reads):
  checkpoints are gathered to the head as above, into a local mirror of the
  job folder, and :class:`Mirror` uploads what changed (each checkpoint's
  seal after its other files) and, when a job is re-run, downloads the job
  folder first, so a new head resumes where the old one stopped.

No TensorFlow here: the driver imports this module.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from pathlib import Path

from protocol.layout import CHECKPOINTS_DIR, COMPLETE_MARKER

log = logging.getLogger("tfray")

CACHE_DIR_ENV = "TFRAY_CACHE_DIR"  # the head's mirror of jobs stored at a URI (default: ~/.cache/tfray)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(path: str) -> bool:
    """True for ``gs://...``, ``s3://...``, ``file://...`` and the like (not for plain paths)."""
    return bool(_URI.match(path))


def mirror_dir(uri: str) -> Path:
    """The head's local folder that mirrors storage at ``uri`` (one folder per URI)."""
    root = Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "tfray") / "storage"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", uri)[:80]
    return root / f"{slug}-{hashlib.sha256(uri.encode()).hexdigest()[:10]}"


class Mirror:
    """Keeps a job folder at a storage URI in step with the head's local copy (``pyarrow.fs``)."""

    def __init__(self, uri: str, local_dir: str | os.PathLike):
        from pyarrow import fs  # only jobs stored at a URI need it

        self.uri = uri.rstrip("/")
        self.local_dir = Path(local_dir)
        self.fs, self.root = fs.FileSystem.from_uri(self.uri)
        self._fs_module = fs
        self._synced: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime_ns) last uploaded
        self._last_sync = 0.0

    def download(self) -> int:
        """Copy the job folder from the URI into the local mirror (a re-run resumes from it); files copied."""
        selector = self._fs_module.FileSelector(self.root, recursive=True, allow_not_found=True)
        copied = 0
        for info in self.fs.get_file_info(selector):
            if info.type != self._fs_module.FileType.File:
                continue
            rel = os.path.relpath(info.path, self.root)
            target = self.local_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open_input_stream(info.path) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            self._synced[rel] = self._stat(target)
            copied += 1
        if copied:
            log.info("downloaded %d file(s) of %s into %s", copied, self.uri, self.local_dir)
        return copied

    def fetch(self, rel: str, target: str | os.PathLike, max_bytes: int | None = None) -> bool:
        """Copy one file of the job folder (its last ``max_bytes`` only, when given) to ``target``; False
        when it is not there. For ``tfray status`` of a job that runs elsewhere."""
        path = f"{self.root}/{rel}"
        if self.fs.get_file_info(path).type != self._fs_module.FileType.File:
            return False
        with self.fs.open_input_file(path) as src, open(target, "wb") as dst:
            size = src.size()
            start = max(0, size - max_bytes) if max_bytes else 0
            src.seek(start)
            shutil.copyfileobj(src, dst)
        return True

    def sync(self, min_interval_s: float = 0.0) -> int:
        """Upload what changed since the last sync (seals after the files they seal) and delete
        checkpoints pruned here; returns how many files were uploaded. Skipped if the last sync
        was under ``min_interval_s`` ago."""
        now = time.monotonic()
        if min_interval_s and now - self._last_sync < min_interval_s:
            return 0
        self._last_sync = now
        current = {str(p.relative_to(self.local_dir)): self._stat(p)
                   for p in self.local_dir.rglob("*") if p.is_file() and not p.name.startswith(".")}
        changed = [rel for rel, stat in current.items() if self._synced.get(rel) != stat]
        # Checkpoint files, then their seals, then the manifest that lists them, then the rest.
        changed.sort(key=lambda rel: (not rel.startswith(CHECKPOINTS_DIR + "/"), Path(rel).name == COMPLETE_MARKER,
                                      rel))
        for rel in changed:
            self._upload(rel)
            self._synced[rel] = current[rel]
        gone = [rel for rel in self._synced if rel not in current]
        for folder in sorted({"/".join(rel.split("/")[:2]) for rel in gone if rel.startswith(CHECKPOINTS_DIR + "/")}):
            if not (self.local_dir / folder).exists():
                self.fs.delete_dir_contents(f"{self.root}/{folder}", missing_dir_ok=True)
                self.fs.delete_dir(f"{self.root}/{folder}")
        for rel in gone:
            self._synced.pop(rel, None)
        return len(changed)

    def _upload(self, rel: str) -> None:
        dest = f"{self.root}/{rel}"
        self.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        with open(self.local_dir / rel, "rb") as src, self.fs.open_output_stream(dest) as out:
            shutil.copyfileobj(src, out)

    @staticmethod
    def _stat(path: Path) -> tuple[int, int]:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
