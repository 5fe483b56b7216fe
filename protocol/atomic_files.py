"""Files written so that a reader sees the old one or the new one, never half of one.

Each is written to a temporary file beside it, then renamed over it. The
temporary file is made as ``open()`` makes a file, mode 0666 less the
process's umask, so ``job.json`` and ``manifest.json`` are as readable as the
rest of the job folder (``tempfile.mkstemp`` would make them 0600).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from protocol.layout import TF_STATE_FILE


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
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


def write_tf_state(folder: str | os.PathLike, prefixes: list[str]) -> None:
    """TensorFlow's own ``checkpoint`` state file in ``folder``, naming checkpoint prefixes relative to it
    (the newest last), so ``tf.train.latest_checkpoint(folder)``, ``tf.train.CheckpointManager`` and
    TF's side-car evaluator find them. Text, written atomically; no TensorFlow needed."""
    folder = Path(folder)
    if not prefixes:
        (folder / TF_STATE_FILE).unlink(missing_ok=True)
        return
    lines = [f'model_checkpoint_path: "{prefixes[-1]}"', *(f'all_model_checkpoint_paths: "{p}"' for p in prefixes)]
    fd, tmp = _temp_beside(folder / TF_STATE_FILE)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, folder / TF_STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temp_beside(path: Path) -> tuple[int, Path]:
    """A new, hidden temporary file in ``path``'s folder, open for writing: (its descriptor, its path). Its mode
    is 0666 less the umask, as ``open()`` gives; O_EXCL and a random name keep concurrent writers apart."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")
