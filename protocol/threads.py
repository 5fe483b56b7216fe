"""The environment variables that size a training process's thread pools, named once.

The plan sets them (``controller/plan/tasks.py``, from the spec's ``process``
section) and the task reads them back from its training process
(``workers/process_settings.py``), so both sides name the same three.
"""

OMP = "OMP_NUM_THREADS"  # OpenMP's pool (and libraries that follow it)
TF_INTRA_OP = "TF_NUM_INTRAOP_THREADS"  # TensorFlow's pool for the work inside one op
TF_INTER_OP = "TF_NUM_INTEROP_THREADS"  # TensorFlow's pool for ops run side by side
THREAD_VARS = (OMP, TF_INTRA_OP, TF_INTER_OP)
