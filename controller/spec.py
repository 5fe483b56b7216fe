"""The job spec: what to train and how to run it, validated on the way in.

A job spec is a YAML file loaded into pydantic v2 models that reject unknown
keys and describe every field (``tfray schema`` prints the JSON Schema).
The parts live by concept: what to train in ``controller.spec_training``, how
to run it in ``controller.spec_running``, the whole job in
``controller.job_spec``, Ray's runtime environment for the tasks in
``controller.spec_runtime_env``, reading a file in ``controller.spec_file``; this
module is the one place callers import them from. Checks that need the file
system (does the entrypoint exist, can the storage path be written) live in
``controller.entrypoint`` and ``controller.preflight``.
"""

from controller.job_spec import JobSpec, SpecError
from controller.spec_file import format_validation_error, load_spec, parse_spec
from controller.spec_running import (
                                     CheckpointPolicy,
                                     Elastic,
                                     FailurePolicySpec,
                                     FaultAction,
                                     FaultSpec,
                                     Placement,
                                     StorageMode,
                                     Timeouts,
)
from controller.spec_runtime_env import RuntimeEnvSpec
from controller.spec_training import ROLE_ORDER, Entrypoint, Resources, Role, RoleSpec, SpecModel, Strategy

__all__ = ["CheckpointPolicy", "Elastic", "Entrypoint", "FailurePolicySpec", "FaultAction", "FaultSpec", "JobSpec",
           "Placement", "ROLE_ORDER", "Resources", "Role", "RoleSpec", "RuntimeEnvSpec", "SpecError", "SpecModel",
           "StorageMode", "Strategy", "Timeouts", "format_validation_error", "load_spec", "parse_spec"]
