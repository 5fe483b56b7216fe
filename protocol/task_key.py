"""A task's name: ``role-index`` (``worker-1``), formatted and parsed by :class:`TaskKey` only.

Part of the wire protocol (``protocol.wire`` imports both names from here,
and every other module may take them from there), kept apart because the job
spec and the plan need them too: reading a spec (``tfray validate``) then
costs one small dataclass, not the protocol's dozen or so (about 20 ms of a
command that should answer at once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The roles, in the order tasks are planned: TF_CONFIG's task types, then the tf.data service's two servers
# (never in TF_CONFIG: they run no strategy).
ROLES = ("chief", "worker", "ps", "evaluator", "data_dispatcher", "data_worker")
DATA_ROLES = ("data_dispatcher", "data_worker")
_TASK_NAME = re.compile(rf"({'|'.join(sorted(ROLES, key=len, reverse=True))})-(\d+)")


@dataclass(frozen=True, order=True)
class TaskKey:
    """A task's identity: its role and its index within the role, written ``role-index``."""

    role: str
    index: int

    def __str__(self) -> str:
        return f"{self.role}-{self.index}"

    @classmethod
    def parse(cls, name: str) -> "TaskKey":
        """``'worker-1'`` -> ``TaskKey('worker', 1)``; ValueError for anything else."""
        match = _TASK_NAME.fullmatch(name.strip())
        if not match:
            raise ValueError(f"'{name}' is not a task name: use role-index, e.g. worker-1 "
                             f"(roles: {', '.join(ROLES)})")
        return cls(match.group(1), int(match.group(2)))
