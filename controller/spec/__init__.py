"""The job spec: what to train and how to run it, validated on the way in.

A job spec is a YAML file loaded into pydantic v2 models that reject unknown
keys and describe every field (``tfray schema`` prints the JSON Schema).
The parts live by concept: what to train in ``controller.spec.training``, how
to run it in ``controller.spec.running``, the whole job in
``controller.spec.job``, Ray's runtime environment for the tasks in
``controller.spec.runtime_env``, reading a file in ``controller.spec.file``; this
module is the one place callers import them from. Checks that need the file
system (does the entrypoint exist, can the storage path be written) live in
``controller.spec.entrypoint`` and ``controller.spec.preflight``.
"""

from controller.spec.file import format_validation_error, load_spec, parse_spec
from controller.spec.job import JobSpec, SpecError
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
from controller.spec.training import ROLE_ORDER, Entrypoint, Resources, Role, RoleSpec, SpecModel, Strategy

__all__ = ["CheckpointPolicy", "Elastic", "Entrypoint", "FailurePolicySpec", "FaultAction", "FaultSpec", "JobSpec",
           "Placement", "ROLE_ORDER", "Resources", "Role", "RoleSpec", "RuntimeEnvSpec", "SpecError", "SpecModel",
           "StorageMode", "Strategy", "Timeouts", "format_validation_error", "load_spec", "parse_spec"]
