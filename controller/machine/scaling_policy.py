"""The scaling policy (pure): which sizes to ask for, how long to wait, when to grow back.

A fixed-size job asks for its full size once, for ``timeouts.scheduling_s``.
An elastic MultiWorkerMirroredStrategy job (``elastic.min_workers``) that
lost capacity asks for the full size for ``elastic.capacity_wait_s``, then
for each smaller size down to ``min_workers`` for ``ELASTIC_PROBE_S`` each,
and runs with the largest that fits. Running small, each new checkpoint is
a chance to grow: when the missing workers fit again, the job restarts at
full size from that checkpoint (a planned restart that spends no budget).
Table-tested in ``tests/unit/test_scaling_policy.py``.
"""

from __future__ import annotations

from controller.spec import Elastic
from controller.states.state import Size


class ScalingPolicy:
    def __init__(self, full_workers: int, elastic: Elastic | None, scheduling_s: float, probe_s: float):
        self.full_workers = full_workers
        self.elastic = elastic
        self.scheduling_s = scheduling_s
        self.probe_s = probe_s

    def sizes(self, capacity_lost: bool) -> tuple[Size, ...]:
        """The sizes to try, in order: the full size first (``capacity_lost``: after a node was lost
        or drained, or to grow back)."""
        if self.elastic is None:
            return (Size(self.full_workers, self.scheduling_s),)
        first = self.elastic.capacity_wait_s if capacity_lost else self.scheduling_s
        smaller = range(self.full_workers - 1, self.elastic.min_workers - 1, -1)
        return (Size(self.full_workers, first), *(Size(workers, self.probe_s) for workers in smaller))

    def should_look_for_room(self, workers: int, new_checkpoint: bool) -> bool:
        """Whether to check the cluster for the missing workers' room now: running small, at a checkpoint."""
        return new_checkpoint and workers < self.full_workers

    def none_fit(self, first_error: str) -> str:
        """The job's failure message when no size fit."""
        if self.elastic is None:
            return first_error
        return (f"{first_error} Not even elastic.min_workers={self.elastic.min_workers} worker(s) "
                f"fit within {self.probe_s:g}s.")
