"""The checkpoint scenario: 1 MB, 100 MB and 1 GB of model state, saved, restored and sent between nodes.

``python -m bench.checkpoints --mb 1,100,1024`` measures, for each size:

- ``save`` (its own process, TensorFlow, no Ray): a Keras model holding that
  much state (one Dense kernel, SGD: no optimizer slots) saved through
  ``workers.keras.save`` with a context as a task has it: the seconds the call
  held training (the first save, and the median of the next ones), the
  seconds until the checkpoint was sealed and reported, the same for a plain
  synchronous ``tf.train.Checkpoint.write`` (what ``save`` did before), and
  the seconds ``workers.keras.restore`` takes into a fresh model;
- ``gather`` (its own process, no TensorFlow): a two-node Ray on this machine,
  a real task actor on the second node holding a sealed checkpoint of that
  size on its disk, and the driver streaming it to the head with
  ``RayTaskGroup.start_gather`` (what the controller does when the storage
  path is not shared), against ``shutil.copytree`` of the same folder (both
  read it from the page cache); the peak growth of the driver's RSS while it
  streams; and the other way, a task fetching it from the job's inbox on the
  head (a restore), against the same copy; and Ray alone: the same bytes
  streamed as pieces of the same size from memory on the node, no files (the
  most a gather through Ray could reach here).

Each figure is the median of ``--reps``; ``results.json`` and ``table.md`` go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MB = 2**20


def make_checkpoint(folder: Path, mb: int) -> Path:
    """A sealed checkpoint folder with one data file of ``mb`` MiB of random bytes (no TensorFlow)."""
    from protocol.seal import seal

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "ckpt.data-00000-of-00001", "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(MB))
    (folder / "ckpt.index").write_bytes(os.urandom(4096))
    seal(folder, 1, 1, {})
    return folder


# ------------------------------------------------------------------ save (TensorFlow)

def measure_save(mb: int, reps: int, work: Path) -> dict:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    from protocol.wire import CheckpointReport
    from workers import keras as job_keras
    from workers.context import TaskContext

    sealed: dict[int, float] = {}

    def send(report) -> None:
        if isinstance(report, CheckpointReport):
            sealed[report.step] = time.perf_counter()

    def context(restore_from: str | None = None) -> TaskContext:
        return TaskContext(job_name="ckpt", job_dir=str(work), attempt=1, strategy="one_device", role="chief",
                           index=0, is_chief=True, num_workers=1, send=send, restore_from=restore_from,
                           restore_epoch=1)

    def model():
        units = mb * MB // (1024 * 4)
        m = tf.keras.Sequential([tf.keras.layers.Input(shape=(1024,)), tf.keras.layers.Dense(units, use_bias=False)])
        m.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")
        return m

    ctx, m = context(), model()
    held, to_seal = [], []
    for step in range(1, reps + 2):
        m.layers[0].kernel.assign_add(tf.ones_like(m.layers[0].kernel))  # a training step changed the state
        began = time.perf_counter()
        job_keras.save(ctx, m, step, epoch=step)
        held.append(time.perf_counter() - began)
        job_keras.wait_for_saves()
        to_seal.append(sealed[step] - began)
    plain = []
    checkpoint = tf.train.Checkpoint(model=m, optimizer=m.optimizer)
    for step in range(reps):
        began = time.perf_counter()
        checkpoint.write(str(work / f"plain-{step}" / "ckpt"))
        plain.append(time.perf_counter() - began)
    restore_s = []
    for _ in range(reps):
        fresh = model()
        began = time.perf_counter()
        job_keras.restore(context(str(work / "checkpoints" / f"ckpt-{reps + 1:09d}")), fresh)
        restore_s.append(time.perf_counter() - began)
    return {"mb": mb, "save_first_held_s": held[0], "save_held_s": statistics.median(held[1:]),
            "save_to_sealed_s": statistics.median(to_seal[1:]), "plain_write_s": statistics.median(plain),
            "restore_s": statistics.median(restore_s)}


# ------------------------------------------------------------------ gather (Ray, no TensorFlow)

class _PeakRss:
    """The driver's peak RSS while a block runs, sampled every few milliseconds."""

    def __enter__(self):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self.before = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.growth_mb = max(0, self.peak - self.before) / MB


class Fetcher:
    """On a task's node: fetch a folder of the head's job folder from the job's inbox, as a restore does;
    and stream pieces from memory, no files, for Ray's own transfer speed (the ceiling of a gather)."""

    def pieces(self, mb: int, chunk_bytes: int):
        import numpy as np

        piece = np.ones(chunk_bytes, dtype=np.uint8)
        for _ in range(mb * MB // chunk_bytes):
            yield piece

    def fetch(self, inbox, folder: str, into: str) -> float:
        from protocol.streaming import fetch, streaming

        began = time.perf_counter()
        fetch(streaming(inbox.read_chunks).remote(folder), into, 600, "the restore checkpoint")
        took = time.perf_counter() - began
        shutil.rmtree(into, ignore_errors=True)
        return took


def measure_gather(mbs: list[int], reps: int, work: Path) -> list[dict]:
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from controller.plan.launch import actor_config
    from controller.ray.group import RayTaskGroup
    from controller.ray.inbox import Inbox
    from controller.store.lease import Holder
    from protocol.layout import STREAM_CHUNK_BYTES
    from protocol.seal import verify_checkpoint
    from protocol.streaming import streaming
    from protocol.wire import TaskKey
    from workers.task_actor import TaskActor

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "temp_dir": tempfile.mkdtemp(prefix="tfr", dir="/tmp")})
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    on_node = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
    group = RayTaskGroup("ckpt-bench")
    group.inbox = Inbox("ckpt-bench", Holder.me())
    key = TaskKey("worker", 0)
    group.actors[key] = ray.remote(TaskActor).options(num_cpus=0, max_concurrency=4, scheduling_strategy=on_node)\
        .remote(actor_config(key, {"TFRAY_PREIMPORT_TF": "0"}), group.inbox.actor)
    fetcher = ray.remote(Fetcher).options(num_cpus=0, scheduling_strategy=on_node).remote()
    out = []
    try:
        for mb in mbs:
            source = make_checkpoint(work / "node" / f"ckpt-{mb}", mb)
            fetched, copied, restored, growth, moved = [], [], [], [], []
            for _ in range(reps):
                into, plain = work / "head" / f"ckpt-{mb}", work / "copy" / f"ckpt-{mb}"
                began = time.perf_counter()
                shutil.copytree(source, plain)
                copied.append(time.perf_counter() - began)
                shutil.rmtree(plain)
                with _PeakRss() as rss:
                    began = time.perf_counter()
                    handle = group.start_gather(key, str(source), into, remove_after=False, replace=True,
                                                timeout_s=600)
                    outcome = group.finished_gathers([handle], wait_s=600).get(handle)  # the bench waits: it times it
                    if not isinstance(outcome, Path):
                        raise RuntimeError(f"the gather of {mb} MB failed: {outcome or 'no answer within 600s'}")
                    fetched.append(time.perf_counter() - began)
                growth.append(rss.growth_mb)
                assert verify_checkpoint(into) is None, "the streamed checkpoint differs from its seal"
                restored.append(ray.get(fetcher.fetch.remote(group.inbox.actor, str(into), str(work / "task"))))
                shutil.rmtree(into)
                began = time.perf_counter()
                for ref in streaming(fetcher.pieces).remote(mb, STREAM_CHUNK_BYTES):
                    ray.get(ref)
                moved.append(time.perf_counter() - began)
            shutil.rmtree(source)
            copy_s = statistics.median(copied)
            out.append({"mb": mb, "copy_s": copy_s, "gather_s": statistics.median(fetched),
                        "restore_fetch_s": statistics.median(restored),
                        "ray_pieces_s": statistics.median(moved),
                        "gather_vs_copy": copy_s / statistics.median(fetched),
                        "restore_vs_copy": copy_s / statistics.median(restored),
                        "driver_rss_growth_mb": max(growth), "chunk_mb": STREAM_CHUNK_BYTES / MB})
    finally:
        group.shutdown()
        ray.shutdown()
        cluster.shutdown()
    return out


# ------------------------------------------------------------------ the sweep

def table(saves: list[dict], gathers: list[dict]) -> str:
    lines = ["| model state | save holds training (s): first / then | save to sealed (s) | plain synchronous "
             "write (s) | restore (s) |", "|---|---|---|---|---|"]
    for s in saves:
        lines.append(f"| {s['mb']} MB | {s['save_first_held_s']:.3f} / {s['save_held_s']:.3f} | "
                     f"{s['save_to_sealed_s']:.3f} | {s['plain_write_s']:.3f} | {s['restore_s']:.3f} |")
    lines += ["", "| checkpoint | plain copy (s) | Ray alone: the same bytes as pieces from memory (s) | gathered "
              "through Ray to the head (s) | gather / copy speed | restored from the head (s) | restore / copy speed "
              f"| driver RSS growth (MB, chunk {gathers[0]['chunk_mb']:.0f} MB) |" if gathers else "",
              "|---|---|---|---|---|---|---|---|"]
    for g in gathers:
        ray_alone = f"{g['ray_pieces_s']:.3f}" if "ray_pieces_s" in g else "n/a"
        lines.append(f"| {g['mb']} MB | {g['copy_s']:.3f} | {ray_alone} | {g['gather_s']:.3f} | "
                     f"{g['gather_vs_copy']:.2f} | {g['restore_fetch_s']:.3f} | {g['restore_vs_copy']:.2f} | "
                     f"{g['driver_rss_growth_mb']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkpoints", description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=["save", "gather"], help="one part only, in this process")
    parser.add_argument("--mb", default="1,100,1024", help="model state sizes in MiB")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    mbs = [int(m) for m in args.mb.split(",") if m]
    out = Path(args.out or tempfile.mkdtemp(prefix="tfr-ckpt-", dir="/tmp"))
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    if args.part == "save":
        results = []
        for mb in mbs:
            work = Path(tempfile.mkdtemp(prefix="save-", dir=out))
            results.append(measure_save(mb, args.reps, work))
            shutil.rmtree(work)
        (out / "save.json").write_text(json.dumps(results, indent=1))
        return 0
    if args.part == "gather":
        work = Path(tempfile.mkdtemp(prefix="gather-", dir=out))
        (out / "gather.json").write_text(json.dumps(measure_gather(mbs, args.reps, work), indent=1))
        shutil.rmtree(work)
        return 0
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for part in ("save", "gather"):
        with open(out / f"{part}.log", "w") as log:
            subprocess.run([sys.executable, "-m", "bench.checkpoints", part, f"--mb={args.mb}",
                            f"--reps={args.reps}", f"--out={out}"], cwd=REPO, env=env, stdout=log,
                           stderr=subprocess.STDOUT, timeout=3600)
    saves = json.loads((out / "save.json").read_text()) if (out / "save.json").exists() else []
    gathers = json.loads((out / "gather.json").read_text()) if (out / "gather.json").exists() else []
    text = table(saves, gathers)
    print(text)
    (out / "table.md").write_text(text + "\n")
    return 0 if saves and gathers else 1


if __name__ == "__main__":
    sys.exit(main())
