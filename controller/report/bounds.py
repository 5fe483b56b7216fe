"""What bounds a job: each task's window turned into figures, and a verdict with what to do (pure).

A task's report carries where its time went since its last one
(``protocol.breakdown.Breakdown``). :func:`figures` makes that shares of a step
and use against what the task reserved; :func:`task_verdict` says what bounds
the task, :func:`job_verdict` what bounds the job: the one straggler the
others wait for, or else what bounds most of its tasks. Each verdict says the
figure behind it and what to do about it, in the words of what was seen.

In order, for a task: memory (its peak at 90 % of what it reserved, or of its
node: a warning before the OOM), input (30 % of its steps waiting for
batches, and at least a millisecond a step, below which the wait cannot be
told from the cost of calling the step), peers (30 % in the gradients'
all-reduce), else compute. For the job, a straggler comes first: in a
synchronous job every task waits in the all-reduce for the slowest, so the
one that waits least, while the others wait 20 % of their steps or more and
at least 15 points more than it, is the one they wait for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from statistics import median

MEMORY_SHARE = 0.9  # of the reserved memory (or the node's) at peak: memory-bound
INPUT_SHARE = 0.3  # of a step waiting for its batch: input-bound
INPUT_FLOOR_S = 0.001  # ... and at least this a step: less cannot be told from the cost of calling the step
PEERS_SHARE = 0.3  # of a step in the all-reduce: peer-bound
LOOP_SHARE = 0.3  # of a step in the training loop's own cost: a compute verdict says the steps are too small
STRAGGLER_WAIT = 0.2  # the others wait at least this share of their steps ...
STRAGGLER_GAP = 0.15  # ... and this much more than the straggler
CPU_FULL = 0.8  # of the reserved cores used: the task uses its CPU share
PRIORITY = ("memory", "input", "peers", "compute")  # a tie between tasks' verdicts goes to the first


@dataclass(frozen=True)
class Figures:
    """One task's window as shares of a step (None where not measured) and use against its reservations."""

    task: str
    node: str | None
    steps: int
    step_s: float  # a step's wall time, the window's mean
    input: float | None = None  # shares of the timed steps
    compute: float | None = None
    peers: float | None = None
    loop: float | None = None  # the training loop's own share: between steps, and calling each
    input_step_s: float | None = None  # input wait a step, in seconds
    checkpoint: float = 0.0  # share of the window held by checkpoint saves
    cpu_cores: float | None = None  # cores the training process used on average
    cpu_share: float | None = None  # cores it reserved (None: no CPU reserved, the node's)
    node_cores: int | None = None
    memory_peak_mb: float | None = None  # the larger of its peak RSS and its PSS
    memory_limit_mb: float | None = None  # what it reserved, or else its node's memory
    memory_of: str = "memory_mb"  # which limit that is: memory_mb | the node


@dataclass(frozen=True)
class Verdict:
    """What bounds a task or the job, the figure behind it, and what to do."""

    kind: str  # memory | input | peers | compute | straggler
    task: str  # the task it is about (the straggler; for the job, the task whose figure is shown)
    figure: str
    actions: tuple[str, ...]
    node: str | None = None
    cause: str | None = None  # a straggler's own verdict

    @property
    def word(self) -> str:
        """One short word for the progress line: ``input-bound``, ``straggler worker-1``."""
        return f"straggler {self.task}" if self.kind == "straggler" else f"{self.kind}-bound"

    def to_json(self) -> dict:
        return {"verdict": self.kind, "word": self.word, "task": self.task, "node": self.node,
                "figure": self.figure, "actions": list(self.actions), "cause": self.cause}


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def figures(task: str, breakdown: dict | None) -> Figures | None:
    """A metrics row's ``breakdown`` as figures; None when it holds no trained step."""
    b = breakdown or {}
    steps, window = b.get("steps") or 0, b.get("window_s") or 0.0
    if steps <= 0 or window <= 0:
        return None
    timed = b.get("timed_steps") or 0
    parts = {k: b.get(f"{k}_s") for k in ("input", "compute", "peers", "loop")}
    shares: dict = {}
    step_s = window / steps
    if timed > 0 and parts["input"] is not None and parts["compute"] is not None:
        total = sum(v or 0.0 for v in parts.values())
        if total > 0:
            shares = {k: (v or 0.0) / total for k, v in parts.items()}
            shares["input_step_s"] = parts["input"] / timed
            step_s = total / timed
    peak = max([v for v in (b.get("rss_peak_mb"), b.get("pss_mb")) if v is not None], default=None)
    limit, of = (b.get("memory_mb"), "memory_mb") if b.get("memory_mb") else (b.get("node_memory_mb"), "node")
    cpu = b.get("cpu_s")
    return Figures(task=task, node=b.get("node"), steps=steps, step_s=step_s,
                   input=shares.get("input"), compute=shares.get("compute"),
                   peers=shares.get("peers") if parts["peers"] is not None else None,
                   loop=shares.get("loop") if parts["loop"] is not None else None,
                   input_step_s=shares.get("input_step_s"), checkpoint=(b.get("checkpoint_s") or 0.0) / window,
                   cpu_cores=cpu / window if cpu is not None else None, cpu_share=b.get("cpu_share") or None,
                   node_cores=b.get("node_cores"), memory_peak_mb=peak, memory_limit_mb=limit, memory_of=of)


def _usable_cores(f: Figures) -> float | None:
    return min(f.cpu_share or f.node_cores or 0, f.node_cores or f.cpu_share or 0) or None


def _cpu_text(f: Figures) -> str:
    if f.cpu_cores is None:
        return ""
    share = f" of its {f.cpu_share:g} reserved" if f.cpu_share else ""
    node = f" (node: {f.node_cores} cores)" if f.node_cores else ""
    return f"{f.cpu_cores:.2f} cores used{share}{node}"


def _cpu_full(f: Figures) -> bool:
    usable = _usable_cores(f)
    return bool(usable and f.cpu_cores is not None and f.cpu_cores >= CPU_FULL * usable)


def _memory(f: Figures) -> Verdict | None:
    if not (f.memory_peak_mb and f.memory_limit_mb) or f.memory_peak_mb < MEMORY_SHARE * f.memory_limit_mb:
        return None
    of = "its memory_mb" if f.memory_of == "memory_mb" else "its node's memory"
    share = _pct(f.memory_peak_mb / f.memory_limit_mb)
    figure = f"peak {f.memory_peak_mb:.0f} MB of {of} {f.memory_limit_mb:.0f} MB ({share})"
    more = ("raise roles.<role>.resources.memory_mb" if f.memory_of == "memory_mb" else
            "give the task more memory: a node with more, or memory_mb set so that it gets one")
    return Verdict("memory", f.task, figure, (
        more,
        ("or make the step smaller: a smaller batch per replica, fewer or narrower layers, "
         "mixed precision on a GPU")), node=f.node)


def _input(f: Figures) -> Verdict | None:
    if f.input is None or f.input < INPUT_SHARE or (f.input_step_s or 0.0) < INPUT_FLOOR_S:
        return None
    figure = f"{_pct(f.input)} of each step waiting for input ({_ms(f.input_step_s or 0.0)} of {_ms(f.step_s)})"
    if _cpu_full(f):
        figure += f"; {_cpu_text(f)}"
        first = ("the input pipeline is short of CPU, not of parallelism: parse once (store the data as "
                 "pre-parsed TFRecords or .cache() after the parsing), reserve more cores "
                 "(roles.<role>.resources.cpu), or run the pipeline on CPU nodes of its own with the tf.data "
                 "service (roles data_dispatcher and data_worker; README, \"Input-bound jobs\")")
    else:
        figure += f"; the CPU is idle meanwhile ({_cpu_text(f)})" if f.cpu_cores is not None else ""
        first = ("the input pipeline waits rather than works: map(..., num_parallel_calls=tf.data.AUTOTUNE), "
                 "interleave(..., num_parallel_calls=tf.data.AUTOTUNE) over several files, "
                 "and .prefetch(tf.data.AUTOTUNE) as its last step")
    return Verdict("input", f.task, figure, (
        first, "no parsing or decoding at each step: files stored pre-parsed, or .cache() once they are",
        "a larger batch spreads each batch's fixed cost"), node=f.node)


def _peers(f: Figures) -> Verdict | None:
    if f.peers is None or f.peers < PEERS_SHARE:
        return None
    figure = f"{_pct(f.peers)} of each step in the gradients' all-reduce ({_ms(f.peers * f.step_s)} of {_ms(f.step_s)})"
    return Verdict("peers", f.task, figure, (
        "fewer, larger all-reduces: a larger batch per replica (fewer steps for the same data)",
        ("the spec's collective (NCCL between GPUs), a faster network between the nodes, "
         "or the tasks packed on fewer nodes (placement: pack)")), node=f.node)


def _compute(f: Figures) -> Verdict:
    share = f"{_pct(f.compute)} of each step computing ({_ms(f.step_s)} a step)" if f.compute is not None else (
        f"{_ms(f.step_s)} a step")
    cpu = _cpu_text(f)
    actions = ["a faster processor or an accelerator (roles.<role>.resources.gpu), or a simpler model"]
    if f.loop is not None and f.loop >= LOOP_SHARE:
        share += f"; {_pct(f.loop)} of it the training loop's own cost (calling each step, callbacks)"
        actions.insert(0, "the steps are too small for their fixed cost: a larger batch, or "
                          "model.compile(steps_per_execution=N) to run N steps a call")
    elif _cpu_full(f):
        actions.insert(0, "it uses the cores it has: reserve more (roles.<role>.resources.cpu) or move it to a "
                          "faster node")
    elif f.cpu_cores is not None and _usable_cores(f):
        actions.insert(0, "its cores are not all busy: a larger batch gives each step more to do in parallel")
    return Verdict("compute", f.task, share + (f"; {cpu}" if cpu else ""), tuple(actions), node=f.node)


def task_verdict(f: Figures) -> Verdict:
    """What bounds one task in its window: memory, input, peers, else compute."""
    return _memory(f) or _input(f) or _peers(f) or _compute(f)


def job_verdict(tasks: list[Figures]) -> Verdict | None:
    """What bounds the job: a straggler the others wait for, else the verdict most of its tasks share (the
    figure of the task where it is strongest). None without figures."""
    if not tasks:
        return None
    verdicts = {f.task: task_verdict(f) for f in tasks}
    memory = [v for v in verdicts.values() if v.kind == "memory"]
    if memory:
        return memory[0]
    straggler = _straggler(tasks, verdicts)
    if straggler is not None:
        return straggler
    counts = Counter(v.kind for v in verdicts.values())
    kind = max(PRIORITY, key=lambda k: (counts[k], -PRIORITY.index(k)))
    by_task = {f.task: f for f in tasks}
    strongest = max((t for t, v in verdicts.items() if v.kind == kind),
                    key=lambda t: getattr(by_task[t], kind if kind != "memory" else "input") or 0.0)
    return verdicts[strongest]


def _straggler(tasks: list[Figures], verdicts: dict[str, Verdict]) -> Verdict | None:
    waits = [f for f in tasks if f.peers is not None]
    if len(waits) < 2:
        return None
    slow = min(waits, key=lambda f: f.peers)
    others = [f.peers for f in waits if f is not slow]
    if median(others) < STRAGGLER_WAIT or median(others) - slow.peers < STRAGGLER_GAP:
        return None
    # Without it, the step takes as long as the slowest of the others' own work (their step less their wait).
    own = max(1.0 - p for p in others)
    faster = 1.0 / own - 1.0 if own > 0 else 0.0
    cause = verdicts[slow.task]
    where = f" on node {slow.node[:12]}" if slow.node else ""
    figure = (f"the other tasks wait {_pct(median(others))} of each step for {slow.task}{where}, which waits "
              f"{_pct(slow.peers)}; without it the job would go about {_pct(faster)} faster")
    return Verdict("straggler", slow.task, figure, (
        (f"look at {slow.task}'s node{where}: other work on it, a slower processor, a smaller CPU share; "
         "or move it (placement, the node's resources)"),
        f"its own bound: {cause.figure}",
        *cause.actions[:1]), node=slow.node, cause=cause.kind)


def from_rows(rows: list[dict]) -> dict | None:
    """What bounds the job, from metrics.jsonl rows (oldest first, a tail will do): each training task's newest
    window of the newest attempt and run of the cluster, its figures and verdict, and the job's verdict, as
    JSON: ``{"job": ..., "tasks": {task: {"figures": ..., "verdict": ...}}}``; None when no row has a window."""
    windows = [r for r in rows if isinstance(r.get("breakdown"), dict)]
    if not windows:
        return None
    newest = max((r.get("attempt", 0), r.get("restart", 0)) for r in windows)
    latest: dict[str, dict] = {}
    for row in windows:
        if (row.get("attempt", 0), row.get("restart", 0)) == newest:
            latest[str(row.get("task"))] = row
    tasks = [f for task, row in latest.items() if (f := figures(task, row["breakdown"])) is not None]
    job = job_verdict(tasks)
    if job is None:
        return None
    return {"job": job.to_json(),
            "tasks": {f.task: {"figures": {k: v for k, v in vars(f).items() if k != "task"},
                               "verdict": task_verdict(f).to_json()} for f in sorted(tasks, key=lambda f: f.task)}}
