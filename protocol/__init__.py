"""What crosses the process line between the driver and the tasks: one copy of each contract.

``protocol.wire`` is the protocol itself (task names, which it takes from
``protocol.task_key``, an actor's config and its GPUs, from
``protocol.devices``, a task's launch, its reports and how it ended),
``protocol.layout`` where a job's files live, and ``protocol.streaming`` how
files travel between nodes in pieces. ``controller`` and ``workers`` both
import this package and never each other; it imports neither, nor Ray, nor
TensorFlow.
"""
