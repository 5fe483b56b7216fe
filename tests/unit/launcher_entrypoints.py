"""Entrypoints for tests/unit/test_launcher.py: no TensorFlow, run in processes the launcher forks."""

import json
import os
import sys
import time


def who(ctx, extra: int = 0) -> dict:
    ctx.report({"x": 1.0}, step=1)
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return {"task": ctx.task, "extra": extra, "pid": os.getpid(),
            "tf_config_index": tf_config.get("task", {}).get("index")}


def process_group(ctx) -> int:
    """The training process's own process group, read by itself: read from outside, the process may already have
    ended and been reaped."""
    return os.getpgid(0)


def boom(ctx) -> None:
    raise ValueError(f"boom from {ctx.task}")


def sleep(ctx, seconds: float = 60) -> None:
    time.sleep(seconds)


_KEPT = []  # alive until the process ends, as a script's own objects would be


def leave_temporaries(ctx, marker: str) -> dict:
    """What a stock script leaves for its interpreter's exit: an atexit handler, a TemporaryDirectory and a
    multiprocessing temp folder (pymp-*); where they are."""
    import atexit
    import multiprocessing.util
    import tempfile

    atexit.register(lambda: open(marker, "w").write("ran"))
    kept = tempfile.TemporaryDirectory(prefix="tfray-test-")
    _KEPT.append(kept)
    return {"temporary_directory": kept.name, "pymp": multiprocessing.util.get_temp_dir()}


if __name__ == "__main__":
    from workers import get_context

    get_context().report({"x": 2.0}, step=2)
    print(f"main with {sys.argv[1:]}", flush=True)
    sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]))
