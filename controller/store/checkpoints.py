"""The checkpoint registry: which checkpoints exist, which are complete, which to keep.

Only the chief's copy is the job's checkpoint. A checkpoint is a folder
``checkpoints/ckpt-<step>`` that the chief fills with TensorFlow's files and
then seals by writing ``COMPLETE.json`` (step, epoch, metrics) atomically
(the layout is ``protocol.layout``, shared with the tasks). A folder
without that marker is a half-written checkpoint (the task died while
saving) and is never restored. The controller lists sealed checkpoints in
``manifest.json`` (written atomically: temp file, fsync, rename), keeps the
newest N and deletes the rest, along with the other workers' ``workertemp``
copies.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from protocol.atomic_files import write_json_atomic, write_tf_state
from protocol.layout import CHECKPOINTS_DIR, CKPT_PREFIX, MANIFEST, QUARANTINE_DIR, WORKERTEMP_DIR
from protocol.seal import read_seal

log = logging.getLogger("tfray")


@dataclass(frozen=True)
class CheckpointRecord:
    """One complete checkpoint of the job."""

    step: int
    path: str
    epoch: int | None = None
    metrics: dict = field(default_factory=dict)
    time: float = 0.0
    batch: int | None = None  # saved mid-epoch: the last batch done in epoch ``epoch``


class CheckpointManifest:
    """The job's list of complete checkpoints, kept on disk in ``manifest.json``."""

    def __init__(self, job_dir: str | os.PathLike, keep: int):
        self.job_dir = Path(job_dir)
        self.keep = keep
        self.path = self.job_dir / MANIFEST
        self.records: list[CheckpointRecord] = []
        self.protected: set[int] = set()  # steps a restart is restoring: never pruned
        self.torn = False  # manifest.json could not be read; reconcile() rebuilds it from the sealed folders
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.records = [CheckpointRecord(**r) for r in data["checkpoints"]]
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
                log.warning("%s cannot be read (%s: %s); rebuilding it from the sealed checkpoint folders",
                            self.path, type(err).__name__, err)
                self.records, self.torn = [], True

    def latest(self) -> CheckpointRecord | None:
        """The newest checkpoint that is still complete on disk."""
        for record in reversed(self.records):
            if read_seal(record.path) is not None:
                return record
        return None

    def register(self, path: str | os.PathLike) -> CheckpointRecord | None:
        """Add a sealed checkpoint; returns None (and registers nothing) if it is not complete."""
        sealed = read_seal(path)
        if sealed is None:
            return None
        record = CheckpointRecord(
            step=int(sealed["step"]),
            path=str(Path(path).resolve()),
            epoch=sealed.get("epoch"),
            metrics=sealed.get("metrics", {}),
            time=sealed.get("time", 0.0),
            batch=sealed.get("batch"),
        )
        by_step = {r.step: r for r in self.records}
        by_step[record.step] = record
        self.records = sorted(by_step.values(), key=lambda r: r.step)
        self._prune()
        self._save()
        return record

    def reconcile(self) -> None:
        """Bring the manifest in line with the disk before a run (no task may be writing).

        Adds sealed checkpoints the manifest missed (the driver died between
        the seal and the registration), drops entries whose folder is gone,
        and deletes half-written checkpoints and leftover workertemp copies.
        """
        root = self.job_dir / CHECKPOINTS_DIR
        if root.is_dir():
            for folder in sorted(root.glob("ckpt-*")):
                if read_seal(folder) is None:
                    shutil.rmtree(folder, ignore_errors=True)
        self.adopt_sealed()
        self.remove_workertemp()
        self.records = [r for r in self.records if read_seal(r.path) is not None]
        if self.records or self.path.exists():
            self._save()

    def adopt_sealed(self) -> list[CheckpointRecord]:
        """Register sealed checkpoints the manifest missed (sealed while the job stopped, or the driver died
        between a seal and its registration); nothing is deleted, so tasks may still be running."""
        root = self.job_dir / CHECKPOINTS_DIR
        known = {r.path for r in self.records}
        missed = [f for f in sorted(root.glob("ckpt-*")) if str(f.resolve()) not in known] if root.is_dir() else []
        return [r for r in map(self.register, missed) if r is not None]

    def quarantine(self, record: CheckpointRecord, reason: str) -> Path:
        """Set a checkpoint aside (never restored, never deleted): out of the manifest, into the job's
        quarantine folder with a note of why. Where it went."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.job_dir / QUARANTINE_DIR / f"{Path(record.path).name}-{stamp}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        if Path(record.path).exists():
            shutil.move(record.path, aside)
        aside.mkdir(parents=True, exist_ok=True)
        (aside / "QUARANTINED.txt").write_text(f"set aside {time.ctime()}: {reason}\n")
        self.records = [r for r in self.records if r.path != record.path]
        self._save()
        return aside

    def remove_workertemp(self) -> None:
        """Delete the non-chief tasks' checkpoint copies."""
        shutil.rmtree(self.job_dir / CHECKPOINTS_DIR / WORKERTEMP_DIR, ignore_errors=True)

    def _prune(self) -> None:
        """Keep the newest ``keep`` and any a restart is restoring; delete the rest."""
        kept = self.records[-self.keep:] + [r for r in self.records if r.step in self.protected]
        for old in [r for r in self.records if r not in kept]:
            self.records.remove(old)
            shutil.rmtree(old.path, ignore_errors=True)

    def _save(self) -> None:
        write_json_atomic(self.path, {"checkpoints": [asdict(r) for r in self.records]})
        root = self.job_dir / CHECKPOINTS_DIR
        if root.is_dir():  # TensorFlow's own view of the same list, for tf.train.latest_checkpoint & co.
            write_tf_state(root, [f"{Path(r.path).name}/{CKPT_PREFIX}" for r in self.records
                                  if (Path(r.path) / f"{CKPT_PREFIX}.index").exists()])
