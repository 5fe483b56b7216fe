"""The actor side: what runs inside each TensorFlow task process.

``workers.task_actor`` is the Ray actor of one task (it imports no
TensorFlow until the entrypoint runs), ``workers.context`` is what user code
sees, and ``workers.keras`` holds the Keras callback and restore helper.
This package is the only place TensorFlow is imported.
"""

from workers.context import CheckpointUnreadable, TaskContext, get_context

__all__ = ["CheckpointUnreadable", "TaskContext", "get_context"]
