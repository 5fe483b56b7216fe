"""The job spec: what to train and how to run it, validated on the way in.

A job spec is a YAML file loaded into pydantic v2 models that reject unknown
keys and describe every field (``tfray schema`` prints the JSON Schema).
The parts live by concept: what to train in ``controller.spec.training``, how
to run it in ``controller.spec.running``, the whole job in
``controller.spec.job``, Ray's runtime environment for the tasks in
``controller.spec.runtime_env``, how each training process runs (priority,
threads) in ``controller.spec.process``, reading a file in ``controller.spec.file``.
Checks that need the file system (does the entrypoint exist, does it import
Keras 3 where that cannot train, can the storage path be written, is there a
host network for its network faults, what a run exposes) live in ``controller.spec.entrypoint``,
``controller.spec.keras3_imports`` and ``controller.spec.preflight``. This module is the one place callers
outside the package import any of them from (``tests/unit/test_layers.py``
keeps it so); the submodules import one another directly, never this
module, which imports them all.
"""

from controller.spec.entrypoint import IMAGE_ENTRYPOINT, check_entrypoint, find_function
from controller.spec.file import format_validation_error, load_spec, load_yaml, parse_spec, parse_yaml
from controller.spec.job import JobSpec, SpecError
from controller.spec.keras3_imports import find_keras3_imports
from controller.spec.predict import PredictSpec
from controller.spec.preflight import HOST_NETWORK_ENV, check_host_network, check_storage, exposure_warning
from controller.spec.process import ProcessSpec
from controller.spec.roles import GpuMemory, Resources, RoleSpec
from controller.spec.running import (
                                     CheckpointPolicy,
                                     Elastic,
                                     FailurePolicySpec,
                                     FaultAction,
                                     FaultSpec,
                                     Placement,
                                     StorageMode,
                                     Timeouts,
)
from controller.spec.runtime_env import RuntimeEnvSpec
from controller.spec.training import (
                                     DATA_ROLES,
                                     ENV_NAME,
                                     RESERVED_ENV,
                                     ROLE_ORDER,
                                     Collective,
                                     Entrypoint,
                                     Role,
                                     SpecModel,
                                     Strategy,
)

__all__ = ["CheckpointPolicy", "Collective", "DATA_ROLES", "ENV_NAME", "Elastic", "Entrypoint", "FailurePolicySpec", "FaultAction",
           "FaultSpec", "GpuMemory", "HOST_NETWORK_ENV", "IMAGE_ENTRYPOINT", "JobSpec", "Placement", "PredictSpec",
           "ProcessSpec", "RESERVED_ENV", "ROLE_ORDER", "Resources", "Role", "RoleSpec", "RuntimeEnvSpec", "SpecError",
           "SpecModel", "StorageMode", "Strategy", "Timeouts", "check_entrypoint", "check_host_network",
           "check_storage", "exposure_warning", "find_function", "find_keras3_imports", "format_validation_error",
           "load_spec", "load_yaml", "parse_spec", "parse_yaml"]
