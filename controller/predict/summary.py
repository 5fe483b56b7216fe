"""What a prediction run ends with, and the line it prints on a pipe while it runs: pure arithmetic and text.

The summary gives rows, wall time, rows/s, the actor-seconds the model's actors lived during the run and the
node-seconds of the nodes they ran on (each node counted for the whole run: it was held for it), and, with
the spec's ``predict.price_per_node_hour``, the cost of those node-hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class PredictFailedError(RuntimeError):
    """A prediction run that failed on Ray (the cause is its message; the actors' output is in Ray's logs)."""


@dataclass(frozen=True)
class ActorSpan:
    """One prediction actor's life, as Ray's actor table has it (seconds since the epoch; ``end_s`` None while
    it lives), and its node."""

    start_s: float
    end_s: float | None
    node_id: str
    restarts: int = 0


@dataclass(frozen=True)
class PredictResult:
    """How a prediction run went: what ``controller.api.predict`` returns and ``tfray predict`` prints."""

    rows: int
    output: str
    model: str
    wall_s: float
    actor_s: float
    nodes: int
    actors: int
    restarts: int = 0  # actor restarts during the run (a killed actor is restarted and its batch run again)
    price_per_node_hour: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def node_s(self) -> float:
        return self.nodes * self.wall_s

    @property
    def cost(self) -> float | None:
        """node-hours x price, or None without a price."""
        if self.price_per_node_hour is None:
            return None
        return self.node_s / 3600.0 * self.price_per_node_hour


def actor_seconds(spans: list[ActorSpan], run_start_s: float, run_end_s: float) -> float:
    """The seconds every actor lived inside the run (an actor still alive counts to the run's end)."""
    total = 0.0
    for span in spans:
        start = max(span.start_s, run_start_s)
        end = min(span.end_s if span.end_s is not None else run_end_s, run_end_s)
        total += max(0.0, end - start)
    return total


def duration(seconds: float) -> str:
    """1.2s, 42s, 3m05s, 1h02m."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def render_summary(result: PredictResult) -> str:
    """The lines ``tfray predict`` ends with."""
    restarted = f" ({result.restarts} restarted, their batches run again)" if result.restarts else ""
    lines = [(f"predicted {result.rows:,} rows in {duration(result.wall_s)} ({result.rows_per_s:,.1f} rows/s) "
              f"with {result.model}"),
             f"  output: {result.output} (Parquet)",
             (f"  actors: {result.actors}{restarted}, {result.actor_s:,.1f} actor-seconds; nodes: {result.nodes}, "
              f"{result.node_s:,.1f} node-seconds")]
    if result.cost is not None:
        lines.append(f"  cost: {result.cost:,.4f} ({result.node_s / 3600:,.4f} node-hours at "
                     f"{result.price_per_node_hour:g} per node-hour)")
    if result.metrics:
        lines.append("  metrics: " + "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    return "\n".join(lines)


def progress_line(rows_done: int, rows_total: int | None, elapsed_s: float) -> str:
    """One line of a run's progress, for a pipe (a terminal gets Ray Data's bars)."""
    rate = rows_done / elapsed_s if elapsed_s > 0 else 0.0
    of = f" of {rows_total:,}" if rows_total is not None else ""
    share = f" ({100.0 * rows_done / rows_total:.0f}%)" if rows_total else ""
    return f"predict: {rows_done:,}{of} rows written{share}, {rate:,.1f} rows/s, elapsed {duration(elapsed_s)}"
