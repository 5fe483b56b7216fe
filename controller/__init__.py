"""tfray's controller: the driver side of a Ray-orchestrated tf.distribute job.

It reads a job spec, plans the tasks, writes every task's TF_CONFIG, starts
one Ray actor per task in one placement group, watches them, and gathers
metrics and checkpoints. It never imports TensorFlow (a test proves it).
"""

__version__ = "0.1.0"
