"""The progress line of a running job: how far (step, epoch 7/15), how well (its metrics), how long (elapsed, ETA).

What is not known is not shown. The number of epochs in all comes from the
training's reports (Keras' ``fit`` says how many it runs, through
``workers.keras.JobCallback``) or else from the spec's entrypoint arguments
(``epochs: 15``, ``--epochs 15``) as the attempt's record keeps them; without
either the line says ``epoch 7`` alone. The ETA is timed from the end of the first epoch reported in this run
of the cluster, never from the run's start: the first epoch also carries
TensorFlow's start, the cluster forming and tracing, which the others do
not. So there is no ETA until one more epoch has ended, and a restart of
the cluster starts the timing over.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.states.text import duration

EPOCH_KEY = "epoch"  # the value of a report that says which epoch just ended (1 for the first)


def epochs_asked(arguments: dict | list | tuple | None) -> int | None:
    """The epochs an entrypoint is asked for, from its keywords (``{"epochs": 15}``) or its command line
    (``--epochs 15``, ``--epochs=15``), as a spec's entrypoint has them and an attempt's record keeps them
    (``controller.machine.resume.fingerprint``); None when they do not say."""
    if isinstance(arguments, dict):
        return whole_number(arguments.get("epochs"))
    value = None
    argv = list(arguments or ())
    for i, arg in enumerate(argv):
        if arg == "--epochs" and i + 1 < len(argv):
            value = argv[i + 1]
        elif isinstance(arg, str) and arg.startswith("--epochs="):
            value = arg.partition("=")[2]
    return whole_number(value)


def whole_number(value, minimum: int = 1) -> int | None:
    """``value`` as a whole number at least ``minimum`` (``15``, ``15.0``, ``"15"``), or None when it is not one."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a count that crossed as a float (numpy's integers do)
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= minimum else None


def epochs_text(epoch: int, total: int | None) -> str:
    """``7/15`` when the total is known, ``7`` when it is not."""
    return f"{epoch}/{total}" if total else str(epoch)


@dataclass(frozen=True)
class Progress:
    """The latest training progress of the chief, as the CLI shows it."""

    task: str
    step: int
    values: dict  # the metrics it reported (the epoch is shown apart)
    epoch: int | None = None  # the last epoch that ended, as reported
    total_epochs: int | None = None
    elapsed_s: float | None = None  # since this attempt began
    eta_s: float | None = None  # until the last epoch ends, at the pace of the epochs timed so far
    bound: str | None = None  # what bounds the job, in a word or two (controller/report/bounds.py)

    def line(self) -> str:
        parts = [f"step {self.step}"]
        if self.epoch is not None:
            parts.append(f"epoch {epochs_text(self.epoch, self.total_epochs)}")
        for key, value in self.values.items():
            if key == EPOCH_KEY:
                continue
            if isinstance(value, float):
                parts.append(f"{key} {value:.4g}")
            elif isinstance(value, (int, str)):
                parts.append(f"{key} {value}")
        if self.elapsed_s is not None:
            parts.append(f"elapsed {duration(self.elapsed_s)}")
        if self.eta_s is not None:
            parts.append(f"ETA {duration(self.eta_s)}")
        if self.bound:
            parts.append(self.bound)
        return f"[{self.task}] " + "  ".join(parts)


class Pace:
    """The chief's epochs against the clock: the epoch it is at, the total, and the time left."""

    def __init__(self, started_at: float, total_epochs: int | None = None):
        self.started_at = started_at  # when the attempt began
        self.spec_total = total_epochs  # what the spec asks for, if it says
        self.reported_total: int | None = None  # what the training said it runs (wins over the spec)
        self.epoch: int | None = None
        self._timed_from: tuple[int, float, int] | None = None  # (restart, time, epoch) the timing starts at
        self._eta_s: float | None = None

    @property
    def total(self) -> int | None:
        return self.reported_total or self.spec_total

    def observe(self, row: dict, now: float) -> None:
        """One metrics.jsonl row of the chief, made at ``now``."""
        total = whole_number(row.get("total_epochs"))
        self.reported_total = total or self.reported_total
        epoch = whole_number((row.get("values") or {}).get(EPOCH_KEY), minimum=0)
        if epoch is None:  # a report between epochs, or the final one: the epoch is still the last one said
            return
        restart = row.get("restart", 0)
        start = self._timed_from
        if start is None or start[0] != restart or epoch < start[2]:
            self._timed_from, self._eta_s = (restart, now, epoch), None  # a new run of the cluster: time anew
        elif epoch > start[2]:
            per_epoch = (now - start[1]) / (epoch - start[2])
            self._eta_s = per_epoch * (self.total - epoch) if self.total and epoch < self.total else None
        self.epoch = epoch

    def progress(self, task: str, row: dict, now: float, bound: str | None = None) -> Progress:
        values = {k: v for k, v in (row.get("values") or {}).items() if k != EPOCH_KEY}
        return Progress(task, row.get("step", 0), values, epoch=self.epoch, total_epochs=self.total,
                        elapsed_s=now - self.started_at, eta_s=self._eta_s, bound=bound)
