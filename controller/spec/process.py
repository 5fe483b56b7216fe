"""The job spec, part four: how each task's training process runs on its node (priority, thread pools).

A training process should run as the user's own would, launched by hand:
Ray starts its worker processes at nice 15 (its ``worker_niceness``), and a
process forked from one inherits that, so without this the training loses
the CPU to every log shipper and daemon on the node. Ray also sets
``OMP_NUM_THREADS`` to the actor's CPUs rounded down (1 for a fraction).
docs/design.md §8 says why each default is what it is.
"""

from __future__ import annotations

from pydantic import Field, StrictInt

from controller.spec.training import SpecModel

MAX_THREADS = 4096


class ProcessSpec(SpecModel):
    """How each task's training process runs: its CPU priority and its thread pools."""

    niceness: StrictInt | None = Field(
        0, ge=-20, le=19,
        description="The nice value of each task's processes (its actor, launcher and training process). Ray "
        "starts its workers at nice 15; tfray starts a local Ray with RAY_worker_niceness=0 (so do the "
        "cluster_configs), and each task also sets this value itself where the system lets it (a lower value "
        "than the process has needs root or CAP_SYS_NICE; otherwise the task's log says what it runs at). "
        "null leaves Ray's.")
    threads: StrictInt | None = Field(
        None, ge=1, le=MAX_THREADS,
        description="Threads for the training process's pools: OMP_NUM_THREADS and TensorFlow's intra-op and "
        "inter-op pools (TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS). Unset: OMP_NUM_THREADS is the task's "
        "cpu rounded up (at least 1), where Ray rounds a fraction down, and TensorFlow sizes its pools itself "
        "(the cores the process may run on), as it does when launched by hand. A variable of the same name in "
        "env wins.")
