"""A Vertex AI CustomJob as a job spec: ``tfray import-vertex CUSTOMJOB.json``.

``workerPoolSpecs`` 0 to 3 are the chief (Vertex's primary replica), the
workers, the parameter servers and the evaluator, each with its
``replicaCount``; a ps pool makes the job ``parameter_server``, else it is
``multi_worker_mirrored``. A pool's ``machineSpec`` becomes its role's
resources through the table in ``controller.importers.vertex_machines``; its
``containerSpec`` command line, or its ``pythonPackageSpec`` module, the
entrypoint with its exact argv; ``baseOutputDirectory`` the storage path and
``scheduling.timeout`` the job's time limit. The REST form (``jobSpec``), the
``gcloud --config`` form (``workerPoolSpecs`` at the top, a list or one pool),
snake_case keys (the Python SDK's) and the SDK's bare list of pool specs
(``CustomJob(worker_pool_specs=[...])``) are all read. A container without a
``command`` runs its image's ENTRYPOINT (``importers/command_line.py``).

TF_CONFIG: Vertex AI lists chief, worker and ps in the cluster map and leaves
the evaluator out, as tfray does (docs/design.md §4); the differences are
the addresses and Vertex's extra keys (``job``, ``environment``, ``trial``).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from controller.importers.command_line import entrypoint_from
from controller.importers.common import (
    Imported,
    ManifestError,
    Program,
    describe_leftovers,
    environment,
    job_name,
    leftovers,
    mapping,
    one_program,
)
from controller.importers.vertex_machines import ACCELERATORS, MEMORY_SHARE, machine

POOL_ROLES = ("chief", "worker", "ps", "evaluator")
ROLES_MARK = "<roles>"  # in a machine's note, where the roles on that machine go
WALK = {"jobSpec", "scheduling", "baseOutputDirectory", "containerSpec", "pythonPackageSpec", "machineSpec"}
IMAGE = ("tasks run in the Ray nodes' Python: install the code's packages there (the node image, node_setup.sh) or "
         "list them in runtime_env.pip")
HINTS = {
    "imageUri": IMAGE, "executorImageUri": IMAGE,
    "packageUris": "install the package on the Ray nodes, or give its wheel in runtime_env.py_modules",
    "diskSpec": "tasks use their nodes' disks",
    "nfsMounts": "tasks see their nodes' file systems: mount the share on every Ray node",
    "serviceAccount": "cloud credentials come from the Ray nodes",
    "network": "tasks talk over the Ray cluster's network", "reservedIpRanges": "",
    "enableWebAccess": "`tfray logs JOB.yaml TASK --follow` shows what a task prints",
    "tensorboard": "`tfray tensorboard JOB.yaml` serves the job's curves",
    "restartJobOnWorkerRestart": "tfray restarts by role: an MWMS group restarts together, a PSS worker is "
                                 "replaced alone",
    "strategy": "ask for spot nodes with a custom resource the cluster's spot node types offer, e.g. "
                "roles.worker.resources.custom: {spot: 1}",
    "disableRetries": "set the failure budgets to 0 to never recover",
}


def import_vertex(manifest: Any, source: str, fallback_name: str = "imported") -> Imported:
    """The job spec a CustomJob becomes, with what changed and what did not carry over."""
    if isinstance(manifest, list):  # the Python SDK's worker_pool_specs, as CustomJob(worker_pool_specs=[...]) takes
        manifest = {"workerPoolSpecs": manifest}
    if not isinstance(manifest, dict):
        raise ManifestError(f"{source}: a CustomJob is a mapping (JSON object), or a list of worker pool specs, not "
                            f"a {type(manifest).__name__}")
    rest = _camel(copy.deepcopy(manifest))
    job = rest.get("jobSpec") if isinstance(rest.get("jobSpec"), dict) else rest
    pools = job.pop("workerPoolSpecs", None)
    if isinstance(pools, dict):  # gcloud reads a lone mapping as a list of one, as Vertex AI's config.yaml writes it
        pools = [pools]
    if not isinstance(pools, list) or not pools or len(pools) > len(POOL_ROLES):
        raise ManifestError(f"{source}: workerPoolSpecs must list 1 to 4 worker pools (primary replica, workers, "
                            "parameter servers, evaluators)")
    imported = Imported({"name": job_name(rest.pop("displayName", None), fallback_name)})
    roles, programs, found, machines = {}, {}, {}, {}
    for i, pool in enumerate(pools):
        if not mapping(pool, f"{source}: workerPoolSpecs[{i}]") or _count(pool, i, source) == 0:
            continue
        role, where = POOL_ROLES[i], f"workerPoolSpecs[{i}]"
        resources, said = _resources(pool, where, source)
        roles[role] = {"count": _count(pool, i, source), "resources": resources}
        machines.setdefault(said, []).append(role)
        programs[role] = _program(pool, where, source, imported)
        pool.pop("replicaCount", None)
        found[role] = leftovers(pool, "", WALK)
    imported.changed += [said.replace(ROLES_MARK, ", ".join(owners)) for said, owners in machines.items()]
    if "chief" not in roles:
        raise ManifestError(f"{source}: workerPoolSpecs[0] is empty; it is the primary replica (the chief), which "
                            "every CustomJob has")
    pss = "ps" in roles
    imported.spec.update(strategy="parameter_server" if pss else "multi_worker_mirrored", roles=roles)
    one_program(programs, {"chief", "evaluator"} if pss else set(programs), imported)
    _job_settings(job, imported, source)
    found[""] = leftovers(rest, "", WALK)
    imported.not_carried += describe_leftovers(found, HINTS)
    return imported


def _camel(data: Any) -> Any:
    """snake_case keys as camelCase (the Python SDK's form as the REST API's); env entries as they are."""
    if isinstance(data, list):
        return [_camel(item) for item in data]
    if not isinstance(data, dict):
        return data
    return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key) if isinstance(key, str) else key:
            value if key == "env" else _camel(value) for key, value in data.items()}


def _count(pool: dict, index: int, source: str) -> int:
    value = pool.get("replicaCount", 1)
    try:
        count = int(value)  # the REST API writes int64 as a string: "2"
    except (TypeError, ValueError):
        raise ManifestError(f"{source}: workerPoolSpecs[{index}].replicaCount: {value!r} is not a count") from None
    if count < 0 or (index in (0, 3) and count > 1):
        raise ManifestError(f"{source}: workerPoolSpecs[{index}].replicaCount: {count}; the "
                            f"{POOL_ROLES[index]} pool has at most one replica")
    return count


def _resources(pool: dict, where: str, source: str) -> tuple[dict, str]:
    """A pool's machine as its role's resources, and how that was done."""
    spec = mapping(pool.get("machineSpec"), f"{source}: {where}.machineSpec")
    machine_type = spec.pop("machineType", None)
    shape = machine(machine_type) if isinstance(machine_type, str) else None
    if shape is None:
        raise ManifestError(f"{source}: {where}.machineSpec.machineType: {machine_type!r} is not in tfray's table "
                            "of machine types (docs/migrating.md); set roles.<role>.resources by hand")
    resources = {"cpu": shape.cpus, "memory_mb": shape.memory_mb}
    accelerator, count = spec.pop("acceleratorType", None), spec.pop("acceleratorCount", 0) or 0
    if not isinstance(count, (int, str)) or isinstance(count, bool) or not str(count).isdigit():
        raise ManifestError(f"{source}: {where}.machineSpec.acceleratorCount: {count!r} is not a count")
    count = int(count)
    gpu_type = ACCELERATORS.get(accelerator) if isinstance(accelerator, str) else shape.gpu_type
    if accelerator and gpu_type is None:
        raise ManifestError(f"{source}: {where}.machineSpec.acceleratorType {accelerator}: tfray runs TensorFlow "
                            f"on CPUs and NVIDIA GPUs (known: {', '.join(ACCELERATORS)})")
    said = (f"machineSpec {machine_type} ({ROLES_MARK}): {shape.cpus} CPUs and {MEMORY_SHARE:.0%} of its "
            f"{shape.memory_gib:g} GiB ({shape.memory_mb} MiB), so a task fits on a Ray node of that type (Ray keeps "
            "the rest for its object store)")
    if count or shape.gpus:
        resources["gpu"] = count or shape.gpus
        # The GPU type is kept, not just a GPU count: the job was sized for that GPU's memory and speed, and
        # a user expects it on those GPUs or told at once that the cluster has none (the demand check names
        # the resource), not an OOM on a smaller one. The shipped configs' GPU node types declare it.
        resources["custom"] = {f"accelerator_type:{gpu_type}": 0.001}
        said += (f"; {resources['gpu']} {gpu_type} GPUs, on a node whose GPUs are {gpu_type} (custom "
                 f"accelerator_type:{gpu_type}, the resource Ray gives such nodes)")
    return resources, said


def _program(pool: dict, where: str, source: str, imported: Imported) -> Program:
    container = mapping(pool.get("containerSpec"), f"{source}: {where}.containerSpec")
    package = mapping(pool.get("pythonPackageSpec"), f"{source}: {where}.pythonPackageSpec")
    if bool(container) == bool(package):
        raise ManifestError(f"{source}: {where}: give containerSpec or pythonPackageSpec (one of them)")
    spec, field = (container, "containerSpec") if container else (package, "pythonPackageSpec")
    env = environment(spec.pop("env", None), f"{where}.{field}.env", source, imported)
    if container:
        program = entrypoint_from(spec.pop("command", None), spec.pop("args", None), f"{source}: {where}.{field}")
    else:
        module = spec.pop("pythonModule", None)
        if not isinstance(module, str):
            raise ManifestError(f"{source}: {where}.pythonPackageSpec.pythonModule: missing; it names the module "
                                "to run, e.g. trainer.task")
        argv = [str(a) for a in spec.pop("args", None) or []]
        program = Program(f"{where}.{field}", {"module": module, **({"argv": argv} if argv else {})}, {}, [])
    program.where = f"{where}.{field}"
    program.env.update(env)
    return program


def _job_settings(job: dict, imported: Imported, source: str) -> None:
    output = mapping(job.pop("baseOutputDirectory", None), f"{source}: baseOutputDirectory").get("outputUriPrefix")
    if output:
        if not isinstance(output, str):
            raise ManifestError(f"{source}: baseOutputDirectory.outputUriPrefix: {output!r} is not a URI")
        imported.spec["storage_path"] = output
        imported.changed.append(f"baseOutputDirectory {output}: the job's folder is {output.rstrip('/')}/"
                                f"{imported.spec['name']}/; each task's AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and "
                                "AIP_TENSORBOARD_LOG_DIR are its model/, backups/ and tensorboard/code/")
    timeout = mapping(job.get("scheduling"), f"{source}: scheduling").pop("timeout", None)
    if timeout is not None:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)s?", str(timeout).strip())
        if match is None or float(match.group(1)) < 1:
            raise ManifestError(f"{source}: scheduling.timeout: {timeout!r} is not a duration like '7200s'")
        seconds = float(match.group(1))
        imported.spec["timeouts"] = {"job_s": int(seconds) if seconds.is_integer() else seconds}
