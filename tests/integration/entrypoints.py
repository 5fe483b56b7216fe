"""Small function entrypoints for integration tests that need real actors but not TensorFlow."""

import time

MAX_WAIT_S = 120  # bound on how long a task waits to be killed by the controller


def fail_on(ctx, role: str = "worker", index: int = 1) -> str:
    """The chosen task raises at once; the others wait, as MWMS peers stuck in a collective would."""
    if (ctx.role, ctx.index) == (role, index):
        raise ValueError(f"boom from {ctx.role}-{ctx.index}")
    deadline = time.monotonic() + MAX_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.1)
    return "not killed"


def count_steps(ctx, steps: int = 600, interval_s: float = 0.2) -> int:
    """Reports a step every interval; long enough to be stopped with Ctrl-C. Nothing to save, so a
    preemption notice stops it at once."""
    from workers.preemption import TaskPreempted

    for step in range(1, steps + 1):
        ctx.report({"loss": 1.0 / step}, step=step)
        if ctx.preemption_notice is not None:
            raise TaskPreempted(f"{ctx.task}: stopped at step {step} on a preemption notice")
        time.sleep(interval_s)
    return steps


def checkpointed_steps(ctx, steps: int = 30, every: int = 5, interval_s: float = 0.05) -> dict:
    """A training loop in miniature, without TensorFlow: counts steps, reports each one, and writes a
    checkpoint (a JSON file) every few steps through the context, resuming from the newest one.

    Every task takes part in a save, as under MultiWorkerMirroredStrategy: the chief's copy is the
    job's, the others write to temporary folders the context removes. The training tasks move in
    lockstep, as a collective makes them: no task starts a step before every peer finished the one
    before, so a lost peer stalls the others, as it does in MultiWorkerMirroredStrategy.
    """
    import json
    import os

    start = 0
    if ctx.latest_checkpoint:
        with open(os.path.join(ctx.latest_checkpoint, "state.json")) as f:
            start = json.load(f)["step"]
    from workers.preemption import TaskPreempted

    def save(step: int) -> None:
        folder = ctx.checkpoint_dir(step)
        with open(os.path.join(folder, "state.json"), "w") as f:
            json.dump({"step": step}, f)
        ctx.commit_checkpoint(step, epoch=step // every)

    barrier = _Barrier(ctx) if ctx.role != "evaluator" else None
    for step in range(start + 1, steps + 1):
        # Every task learns of any peer's preemption notice at the same step boundary (a real
        # job all-reduces the flag), saves the last completed step, and stops.
        if barrier and barrier.wait(step - 1, notice=ctx.preemption_notice is not None):
            if (step - 1) % every and step - 1 > start:
                save(step - 1)
            raise TaskPreempted(f"{ctx.task}: saved at step {step - 1} on a preemption notice")
        time.sleep(interval_s)
        ctx.report({"loss": 1.0 / step}, step=step)
        if step % every == 0:
            save(step)
    return {"step": steps, "start": start}


class _Barrier:
    """A file-system stand-in for a collective: every training task of this run of the cluster
    posts its step, and waits (bounded) until all have reached it."""

    def __init__(self, ctx):
        import hashlib
        import json
        import os

        config = json.loads(os.environ["TF_CONFIG"])
        run = hashlib.sha1(json.dumps(config["cluster"], sort_keys=True).encode()).hexdigest()[:12]
        self.folder = os.path.join(ctx.job_dir, "barrier", run)
        os.makedirs(self.folder, exist_ok=True)
        self.me = os.path.join(self.folder, ctx.task)
        self.peers = [f"{role}-{i}" for role, members in config["cluster"].items() for i in range(len(members))]

    def wait(self, step: int, notice: bool = False) -> bool:
        """Post this task's step (and notice flag); wait until every peer posted it; return
        whether any of them has a preemption notice."""
        import os

        tmp = self.me + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{step} {int(notice)}")
        os.replace(tmp, self.me)
        deadline = time.monotonic() + MAX_WAIT_S
        while not all(self._read(peer)[0] >= step for peer in self.peers):
            if time.monotonic() > deadline:
                raise TimeoutError(f"peers did not reach step {step} within {MAX_WAIT_S}s")
            time.sleep(0.01)
        return any(self._read(peer)[1] for peer in self.peers)

    def _read(self, peer: str) -> tuple[int, bool]:
        import os

        try:
            with open(os.path.join(self.folder, peer)) as f:
                step, notice = f.read().split()
            return int(step), notice == "1"
        except (OSError, ValueError):
            return -1, False


def devices_seen(ctx) -> dict:
    """What this task's training process and its launcher (its parent) were given about GPUs and threads, and
    the process's nice value: written to
    ``<job>/devices-<task>.json`` (read from /proc, so the launcher's is what it really has)."""
    import json
    import os

    names = ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "TFRAY_GPU_MEMORY_LIMIT_MB", "TFRAY_COLLECTIVE",
             "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
    with open(f"/proc/{os.getppid()}/environ", "rb") as f:
        launcher = dict(item.decode().split("=", 1) for item in f.read().split(b"\0") if b"=" in item)
    seen = {"process": {n: os.environ.get(n) for n in names}, "launcher": {n: launcher.get(n) for n in names},
            "nice": os.getpriority(os.PRIO_PROCESS, 0)}
    with open(os.path.join(ctx.job_dir, f"devices-{ctx.task}.json"), "w") as f:
        json.dump(seen, f)
    return seen


def runtime_state(ctx) -> dict:
    """Whether this process, forked from a launcher that imported TensorFlow, inherited a started TF runtime
    (and, so the probe is known to see one, whether it sees the runtime this process then starts)."""
    import sys

    from workers.gpus import runtime_untouched

    state = {"tf_imported": "tensorflow" in sys.modules, "untouched": runtime_untouched()}
    import tensorflow as tf

    tf.constant(1.0) + 1.0
    return {**state, "untouched_after_an_op": runtime_untouched()}


def slow_input(ctx, epochs: int = 3, steps: int = 12, batch_sleep_s: float = 0.04) -> dict:
    """A Keras fit whose input pipeline sleeps for every batch (a slow read, or a parse in Python): a job bound
    by its input, as tfray's breakdown must say (tests/integration/test_bounds.py)."""
    import tensorflow as tf

    from workers.keras import JobCallback

    strategy = ctx.make_strategy()

    def slow_read(x):
        time.sleep(batch_sleep_s)
        return x

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    data = (tf.data.Dataset.range(steps * 8).map(lambda i: tf.cast(i % 7, tf.float32) / 7).batch(8)
            .map(lambda x: tf.py_function(slow_read, [x], tf.float32))
            .map(lambda x: (tf.reshape(x, [8, 1]), tf.reshape(x, [8, 1]))).with_options(options))
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.layers.Input((1,)), tf.keras.layers.Dense(4), tf.keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    model.fit(data, epochs=epochs, verbose=0, callbacks=[JobCallback(ctx, global_batch_size=8)])
    return {"step": int(model.optimizer.iterations.numpy())}
