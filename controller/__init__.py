"""tfray's controller: the driver side of a Ray-orchestrated tf.distribute job.

It reads a job spec, plans the tasks, writes every task's TF_CONFIG, starts
one Ray actor per task in one placement group, watches them, and gathers
metrics and checkpoints. It never imports TensorFlow (a test proves it).
"""

__version__ = "0.1.0"

__all__ = ["run", "load_spec"]


def __getattr__(name: str):
    """``from controller import run, load_spec`` without importing Ray until a job runs."""
    if name == "run":
        from controller.api import run

        return run
    if name == "load_spec":
        from controller.spec import load_spec

        return load_spec
    raise AttributeError(f"module 'controller' has no attribute {name!r}")
