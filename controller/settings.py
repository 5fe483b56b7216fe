"""Controller settings that are not part of a job spec: intervals and defaults.

All polling goes through :meth:`controller.job.Controller.step` with the
interval below, so there is one place to tune how quickly the controller
notices an ended task versus how much it wakes up.
"""

POLL_INTERVAL_S = 0.5  # how long one RUNNING step waits for a task to end
NODE_DEATH_CONFIRM_S = 20.0  # a replacement that dies at once: how long to wait for Ray to call its node dead
FAILURE_SETTLE_S = 2.0  # after a failure, how long to gather other ends that belong to it
REPORT_DRAIN_TIMEOUT_S = 30.0  # bound on one fetch of the report inbox
# Each task's launcher process (workers/zygote.py) imports TensorFlow as soon as its actor starts,
# overlapping the import with the other actors' start and the TF_CONFIG round trip, and forks every
# run's training process from there. A job whose code does not use TensorFlow can set this to "0"
# in its spec's env to skip the import.
PREIMPORT_ENV = "TFRAY_PREIMPORT_TF"
STOP_RUN_TIMEOUT_S = 20.0  # bound on ending a task's run for a restart (kill its process, collect its end)
DRAIN_POLL_S = 2.0  # how often the controller asks Ray which nodes are being drained (preemption notice)
ELASTIC_PROBE_S = 5.0  # an elastic job waits this long for each smaller size once the full size did not fit
STORAGE_SYNC_S = 10.0  # how often a job stored at a URI uploads its metrics and job state while it runs
GATHER_TIMEOUT_S = 300.0  # bound on sending one checkpoint's files to the head (storage without shared disk)

# Set in every task process before TensorFlow is imported (DESIGN.md §4):
# tf-keras instead of Keras 3 (multi-worker fit needs it), and SO_REUSEPORT for
# TF's gRPC server so it can bind the port the task actor keeps reserved.
TASK_ENV = {
    "TF_USE_LEGACY_KERAS": "1",
    "TF_GRPC_REUSE_PORT": "true",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",
}

# Every ParameterServerStrategy task needs this: a call to a lost server fails
# at once instead of waiting, so the coordinator can re-queue it elsewhere.
PSS_TASK_ENV = {"GRPC_FAIL_FAST": "use_caller"}
