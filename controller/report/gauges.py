"""The job's numbers as gauges for Prometheus: what a dashboard of a days-long job plots.

:class:`JobGauges` looks at the controller's parts after each step and hands
a list of samples (name, tags, value) to an exporter: Ray's metrics
(``controller.ray.prometheus``, served on each node's metrics endpoint and
scraped by the Prometheus and Grafana that Ray sets up) in real runs, a list
in unit tests. No Ray here. Every series a job has is set on every export, a
state it left at 0, so a dashboard never shows a stale value.

Samples go out at most once per ``settings.METRICS_EXPORT_S``, and at once
when the job's state changes.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from controller import settings
from controller.states.state import JobState, State, TaskStatus

# name -> (description, tag keys); Ray's exporter prefixes every name with "ray_". The job's label is
# `tfray_job`, never `job` (nor `instance`): Prometheus sets those on every scrape target (Ray's prometheus.yml
# has job_name 'ray', honor_labels false) and renames a colliding exposed label to `exported_job`.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tfray_job_state": ("1 for the state the job is in, 0 for the others", ("tfray_job", "state")),
    "tfray_attempt": ("The job's attempt (each `tfray run` of it is one)", ("tfray_job",)),
    "tfray_step": ("The last step each task reported", ("tfray_job", "task")),
    "tfray_epoch": ("The last epoch each task reported", ("tfray_job", "task")),
    "tfray_examples_per_second": ("Training speed each task reported", ("tfray_job", "task")),
    "tfray_restarts": ("Restarts of the whole cluster in this attempt", ("tfray_job",)),
    "tfray_budget_spent": ("Units of each failure budget spent", ("tfray_job", "budget")),
    "tfray_budget_limit": ("Each failure budget's limit", ("tfray_job", "budget")),
    "tfray_checkpoint_step": ("Step of the newest complete checkpoint", ("tfray_job",)),
    "tfray_seconds_since_checkpoint": ("Seconds since the newest complete checkpoint was sealed", ("tfray_job",)),
    "tfray_tasks": ("How many tasks are in each state", ("tfray_job", "state")),
    "tfray_task_alive": ("1 while the task runs, else 0", ("tfray_job", "task")),
    "tfray_recovery_seconds": ("Seconds spent recovering (from a failure to running again) in this attempt",
                               ("tfray_job",)),
    "tfray_bound": ("1 for what bounds the job now (input, compute, memory, peers, straggler), 0 for the others",
                    ("tfray_job", "verdict")),
    "tfray_step_share": ("Share of each task's steps in each part (input, compute, peers, loop), its newest window",
                         ("tfray_job", "task", "part")),
    "tfray_cpu_cores": ("Cores each task's training process used in its newest window", ("tfray_job", "task")),
    "tfray_memory_peak_mb": ("Peak memory of each task's training process, in MB", ("tfray_job", "task")),
}
VERDICTS = ("input", "compute", "memory", "peers", "straggler")  # controller/report/bounds.py's
PARTS = ("input", "compute", "peers", "loop")


class Sample(NamedTuple):
    name: str
    tags: dict
    value: float


class JobGauges:
    """Turns the controller's state into samples; tracks the time spent recovering."""

    def __init__(self, job: str, export: Callable[[list[Sample]], None], clock: Callable[[], float],
                 wall_clock: Callable[[], float]):
        self.job = job
        self.export = export
        self.clock = clock
        self.wall_clock = wall_clock
        self.recovery_s = 0.0
        self._recovering_since: float | None = None
        self._last_state: JobState | None = None
        self._last_export = float("-inf")

    def observe(self, state: State, attempt, tasks, collector, store) -> None:
        """After a step: track recovery; export when the state changed or the interval passed."""
        now = self.clock()
        if state.name is JobState.RECOVERING and self._recovering_since is None:
            self._recovering_since = now
        elif state.name in (JobState.RUNNING, *(s for s in JobState if s.is_terminal)) \
                and self._recovering_since is not None:
            self.recovery_s += now - self._recovering_since
            self._recovering_since = None
        changed = state.name is not self._last_state
        if not changed and now - self._last_export < settings.METRICS_EXPORT_S:
            return
        self._last_state, self._last_export = state.name, now
        self.export(self.samples(state.name, attempt, tasks, collector, store, now))

    def samples(self, state: JobState, attempt, tasks, collector, store, now: float) -> list[Sample]:
        job = {"tfray_job": self.job}
        out = [Sample("tfray_job_state", {**job, "state": s.value}, float(s is state)) for s in JobState]
        out += [Sample("tfray_attempt", job, attempt.number), Sample("tfray_restarts", job, attempt.restarts)]
        for budget, limit in attempt.limits.items():
            out += [Sample("tfray_budget_spent", {**job, "budget": budget}, attempt.spent.get(budget, 0)),
                    Sample("tfray_budget_limit", {**job, "budget": budget}, limit)]
        for row in (collector.latest.values() if collector is not None else ()):
            task, values = {**job, "task": row["task"]}, row.get("values") or {}
            out.append(Sample("tfray_step", task, row.get("step", 0)))
            for name, key in (("tfray_epoch", "epoch"), ("tfray_examples_per_second", "examples_per_s")):
                if isinstance(values.get(key), (int, float)):
                    out.append(Sample(name, task, values[key]))
        latest = store.latest()
        if latest is not None:
            out += [Sample("tfray_checkpoint_step", job, latest.step),
                    Sample("tfray_seconds_since_checkpoint", job, max(0.0, self.wall_clock() - latest.time))]
        counts = {s: 0 for s in TaskStatus}
        for key, status in tasks.statuses.items():
            counts[status] += 1
            out.append(Sample("tfray_task_alive", {**job, "task": str(key)}, float(status is TaskStatus.ALIVE)))
        out += [Sample("tfray_tasks", {**job, "state": s.value}, n) for s, n in counts.items()]
        recovering = now - self._recovering_since if self._recovering_since is not None else 0.0
        out.append(Sample("tfray_recovery_seconds", job, self.recovery_s + recovering))
        return out + self._bound_samples(job, getattr(collector, "bounds", None))

    @staticmethod
    def _bound_samples(job: dict, bounds: dict | None) -> list[Sample]:
        """What bounds the job, and each training task's newest window (controller/report/bounds.py)."""
        if not bounds:
            return []
        verdict = bounds["job"]["verdict"]
        out = [Sample("tfray_bound", {**job, "verdict": v}, float(v == verdict)) for v in VERDICTS]
        for task, entry in bounds["tasks"].items():
            figures, tags = entry["figures"], {**job, "task": task}
            out += [Sample("tfray_step_share", {**tags, "part": part}, figures[part]) for part in PARTS
                    if isinstance(figures.get(part), (int, float))]
            out += [Sample(name, tags, figures[key]) for name, key in
                    (("tfray_cpu_cores", "cpu_cores"), ("tfray_memory_peak_mb", "memory_peak_mb"))
                    if isinstance(figures.get(key), (int, float))]
        return out
