"""A Kubeflow TFJob (``kubeflow.org/v1``) as a job spec: ``tfray import-tfjob TFJOB.yaml``.

Each entry of ``tfReplicaSpecs`` (Chief or Master, Worker, PS, Evaluator, in
any case, as the operator reads them) becomes a role with its replica count
(1 when unset) and the resources of its ``tensorflow`` container; a PS makes
the job ``parameter_server``, else it is ``multi_worker_mirrored``. The
container's command line becomes the entrypoint with its exact argv, its env
the spec's env; ``runPolicy.activeDeadlineSeconds`` the job's time limit and
``backoffLimit`` the error budgets. ``restartPolicy`` (``Never`` when unset,
the operator's default) is said per role against what tfray's failure policy
does. Everything about pods (image, volumes, placement, ports, cleanup) is
listed as not carried over, but not what the API server wrote into a TFJob
that ``kubectl get tfjob NAME -o yaml`` returned: its bookkeeping, the
operator's defaults (``SetDefaults_TFJob``: cleanPodPolicy None, the
``tfjob-port`` 2222, suspend false) and the pod templates' (``importers/kubernetes.py``).

What the code sees differs in TF_CONFIG only as docs/migrating.md says: the
operator lists every replica type in the cluster map, the evaluator too, at
``<job>-<type>-<i>.<namespace>.svc:2222``, and calls a Master ``master``
(training-operator ``pkg/controller.v1/tensorflow/tensorflow.go``,
``genClusterSpec``); tfray gives each task its own host:port, keeps the
evaluator out of the training cluster (docs/design.md §4) and calls it chief.
"""

from __future__ import annotations

import copy
from typing import Any

from controller.importers.command_line import entrypoint_from
from controller.importers.common import (
    Imported,
    ManifestError,
    cpu_cores,
    describe_leftovers,
    environment,
    job_name,
    leftovers,
    mapping,
    memory_mb,
    one_program,
)
from controller.importers.kubernetes import drop_pod_defaults, drop_server_metadata, returned_by_server

ROLE_OF = {"chief": "chief", "master": "chief", "worker": "worker", "ps": "ps", "evaluator": "evaluator"}
ORDER = ("chief", "worker", "ps", "evaluator")
CONTAINER = "tensorflow"  # the container the operator trains in (TFJobDefaultContainerName)
OPERATOR_PORT = {"name": "tfjob-port", "containerPort": 2222}  # the port the operator adds (TFJobDefaultPort)
GPUS = ("nvidia.com/gpu", "amd.com/gpu")
WALK = {"metadata", "spec", "template", "runPolicy"}
TAKEN_FROM_CONTAINER = ("name", "command", "args", "env", "resources")
HINTS = {
    "image": "tasks run in the Ray nodes' Python: install the code's packages there (the node image, "
             "node_setup.sh) or list them in runtime_env.pip",
    "volumes": "tasks see their nodes' file systems: use a folder every node sees, or a gs:// / s3:// URI",
    "volumeMounts": "tasks see their nodes' file systems: use a folder every node sees, or a gs:// / s3:// URI",
    "nodeSelector": "tasks are placed by Ray resources: give the role custom resources that a node type offers "
                    "(roles.<role>.resources.custom)",
    "affinity": "tasks are placed by Ray resources and the spec's placement (pack, spread)",
    "tolerations": "tasks are placed by Ray resources; taints are the Ray nodes' business",
    "serviceAccountName": "cloud credentials come from the Ray nodes",
    "ports": "tfray reserves each task's port itself",
    "workingDir": "scripts are found relative to the spec's folder",
    "cleanPodPolicy": "every end of a tfray job releases every actor and the placement group",
    "ttlSecondsAfterFinished": "nothing is left to clean up; job.json keeps the record",
    "schedulingPolicy": "tfray gang-schedules every task in one placement group; queues and priorities are "
                        "not carried (timeouts.scheduling_s bounds the wait)",
    "successPolicy": "tfray's job succeeds when every chief and worker finished (MWMS) or the chief did (PSS)",
    "enableDynamicWorker": "an elastic MWMS job is `elastic: {min_workers: N}`",
    "initContainers": "steps before training belong in the script, or on the nodes (data every node sees)",
    "containers": "a side-car container has no task to sit beside: run it on the Ray nodes if it is needed",
    "namespace": "", "labels": "", "annotations": "", "imagePullPolicy": "", "imagePullSecrets": "",
}
RESTART = {  # what tfray's failure policy does, said against each restartPolicy
    "ExitCode": "kept: a task killed by a signal (exit 128-255: OOM, kill, a lost node) is recovered on the budgets, "
                "and an error exit of your code fails the job",
    "OnFailure": "a task whose process dies or hangs, or whose node goes, is recovered on the budgets, but an "
                 "exception in your code fails the job at once instead of being retried (it would fail again)",
    "Never": "cannot be kept for one role: tfray's budgets are per cause, not per role, so a lost task is "
             "recovered as for the other roles",
}
RESTART["Always"] = RESTART["OnFailure"]


def import_tfjob(manifest: Any, source: str, fallback_name: str = "imported") -> Imported:
    """The job spec a TFJob manifest becomes, with what changed and what did not carry over."""
    if not isinstance(manifest, dict) or manifest.get("kind") != "TFJob":
        kind = manifest.get("kind") if isinstance(manifest, dict) else type(manifest).__name__
        raise ManifestError(f"{source}: kind is {kind!r}, not TFJob; import-tfjob reads one Kubeflow TFJob "
                            "(for a Vertex AI CustomJob use import-vertex)")
    rest = copy.deepcopy(manifest)
    if returned_by_server(rest):
        _drop_operator_defaults(rest)
    drop_server_metadata(rest)
    for key in ("apiVersion", "kind"):
        rest.pop(key, None)
    spec = mapping(rest.get("spec"), f"{source}: spec")
    imported = Imported({"name": job_name(mapping(rest.get("metadata"), f"{source}: metadata").pop("name", None),
                                          fallback_name)})
    replicas = _replicas(spec.pop("tfReplicaSpecs", None), source, imported)
    counts = {role: r["count"] for role, r in replicas.items()}
    pss = counts.get("ps", 0) > 0
    imported.spec["strategy"] = "parameter_server" if pss else "multi_worker_mirrored"
    imported.spec["roles"] = {role: {"count": r["count"], **({"resources": r["resources"]} if r["resources"] else {})}
                              for role, r in replicas.items()}
    if pss and counts.get("chief") != 1:
        raise ManifestError(f"{source}: tfReplicaSpecs has PS but no Chief: TF2's ParameterServerStrategy needs a "
                            "chief (the coordinator that runs your code); add a Chief replica (TF1 estimator "
                            "jobs, where worker 0 led, do not run on TF 2.16 and later)")
    if replicas.get("chief", {}).get("label", "").lower() == "master":
        imported.changed.append(f"tfReplicaSpecs.{replicas['chief']['label']}: the chief role; its TF_CONFIG task "
                                "type is chief, where the operator wrote master")
    if "evaluator" in replicas:
        imported.changed.append("the evaluator is not in the other tasks' TF_CONFIG cluster and gets a cluster of its "
                                "own, {evaluator: [itself]}; the operator listed it in every task's cluster, which "
                                "hangs a ParameterServerStrategy coordinator (docs/design.md §4)")
    programs = {role: r["program"] for role, r in replicas.items()}
    one_program(programs, {"chief", "evaluator"} if pss else set(programs), imported)
    _run_policy(mapping(spec.get("runPolicy"), f"{source}: spec.runPolicy"), replicas, imported, source)
    found = {r["label"]: r["leftovers"] for r in replicas.values()}
    found[""] = leftovers(rest, "", WALK)
    imported.not_carried += describe_leftovers(found, HINTS)
    return imported


def _drop_operator_defaults(tfjob: dict) -> None:
    """Drop, in place, what the training operator's defaulting (``SetDefaults_TFJob``) and the pod templates'
    wrote into a TFJob the API server returned, where it is still the default. Malformed parts are left for
    the importer to refuse."""
    def child(node: Any, key: str) -> Any:
        return node.get(key) if isinstance(node, dict) else None

    policy = child(child(tfjob, "spec"), "runPolicy")
    for key, default in (("cleanPodPolicy", "None"), ("suspend", False)):
        if isinstance(policy, dict) and key in policy and policy[key] == default \
                and type(policy[key]) is type(default):
            del policy[key]
    replicas = child(child(tfjob, "spec"), "tfReplicaSpecs")
    for replica in replicas.values() if isinstance(replicas, dict) else ():
        pod = child(child(replica, "template"), "spec")
        drop_pod_defaults(pod)
        containers = child(pod, "containers")
        for container in containers if isinstance(containers, list) else ():
            if child(container, "name") == CONTAINER and isinstance(container.get("ports"), list):
                container["ports"] = [port for port in container["ports"] if port != OPERATOR_PORT]


def _replicas(specs: Any, source: str, imported: Imported) -> dict[str, dict]:
    if not isinstance(specs, dict) or not specs:
        raise ManifestError(f"{source}: spec.tfReplicaSpecs is missing or empty; a TFJob lists its replicas there")
    replicas: dict[str, dict] = {}
    for label, replica in specs.items():
        role = ROLE_OF.get(str(label).lower())
        where = f"tfReplicaSpecs.{label}"
        if role is None:
            raise ManifestError(f"{source}: {where}: not a TFJob replica type; use Chief (or Master), Worker, PS or "
                                "Evaluator")
        if role in replicas:
            raise ManifestError(f"{source}: {where}: a second {role} replica type ({replicas[role]['label']} is the "
                                "first); a TFJob has one Chief or Master")
        replicas[role] = _replica(replica, role, str(label), source, imported)
    return {role: replicas[role] for role in ORDER if role in replicas}


def _replica(replica: Any, role: str, label: str, source: str, imported: Imported) -> dict:
    where = f"{source}: tfReplicaSpecs.{label}"
    if not isinstance(replica, dict):
        raise ManifestError(f"{where}: must be a mapping with replicas and template")
    count = replica.pop("replicas", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ManifestError(f"{where}.replicas: {count!r} is not a replica count")
    if role in ("chief", "evaluator") and count > 1:
        raise ManifestError(f"{where}.replicas: {count} {role}s; a job has at most one {role}")
    pod = mapping(mapping(replica.get("template"), f"{where}.template").get("spec"), f"{where}.template.spec")
    containers = pod.pop("containers", None)
    if not isinstance(containers, list) or not containers or not all(isinstance(c, dict) for c in containers):
        raise ManifestError(f"{where}.template.spec.containers: missing, or not a list of containers; the operator "
                            f"runs the `{CONTAINER}` container")
    main = next((c for c in containers if c.get("name") == CONTAINER), containers[0])
    path = f"template.spec.containers[{main.get('name', 0)}]"
    mounts = main.get("volumeMounts") if isinstance(main.get("volumeMounts"), list) else []
    program = entrypoint_from(main.get("command"), main.get("args"), f"{where}.{path}", main.get("workingDir"),
                              tuple(m["mountPath"] for m in mounts if isinstance(m, dict)
                                    and isinstance(m.get("mountPath"), str)))
    program.where = f"{label}.{path}"
    program.env.update(environment(main.get("env"), f"{label}.{path}.env", source, imported))
    resources = container_resources(mapping(main.get("resources"), f"{where}.{path}.resources"),
                                    f"{label}.{path}.resources", imported, source)
    for key in TAKEN_FROM_CONTAINER:
        main.pop(key, None)
    restart = replica.pop("restartPolicy", "Never")  # the operator's default (TFJobDefaultRestartPolicy)
    if not isinstance(restart, str) or restart not in RESTART:
        raise ManifestError(f"{where}.restartPolicy: {restart!r}; use Always, OnFailure, ExitCode or Never")
    found = leftovers(replica, "", WALK) + leftovers(main, path, set())
    found += [(f"template.spec.containers[{c.get('name', i)}]", c) for i, c in enumerate(containers) if c is not main]
    return {"label": label, "count": count, "resources": resources, "program": program, "leftovers": found,
            "restart": restart}


def container_resources(resources: dict, where: str, imported: Imported, source: str) -> dict:
    """A container's resources as a role's (each limit, else its request): cpu, memory_mb, gpu."""
    limits = mapping(resources.get("limits"), f"{source}: {where}.limits")
    requests = mapping(resources.get("requests"), f"{source}: {where}.requests")
    out: dict = {}
    for name in [*limits, *(n for n in requests if n not in limits)]:
        value = limits.get(name, requests.get(name))
        field = f"{where}.{'limits' if name in limits else 'requests'}.{name}"
        if name == "cpu":
            out["cpu"] = cpu_cores(value, f"{source}: {field}")
        elif name == "memory":
            out["memory_mb"] = memory_mb(value, f"{source}: {field}")
        elif name in GPUS:
            out["gpu"] = int(cpu_cores(value, f"{source}: {field}"))
        else:
            imported.not_carried.append(f"{field} {value}: tfray reserves CPU, memory, GPUs and Ray "
                                        "custom resources")
    if "cpu" not in out:
        imported.changed.append(f"{where}: no cpu, so each task reserves tfray's default of 1 CPU")
    return {key: out[key] for key in ("cpu", "memory_mb", "gpu") if key in out}


def _run_policy(policy: dict, replicas: dict[str, dict], imported: Imported, source: str) -> None:
    deadline = policy.pop("activeDeadlineSeconds", None)
    if deadline is not None:
        if not isinstance(deadline, int) or isinstance(deadline, bool) or deadline < 1:
            raise ManifestError(f"{source}: runPolicy.activeDeadlineSeconds: {deadline!r} is not a number of seconds")
        imported.spec["timeouts"] = {"job_s": deadline}
    backoff = policy.pop("backoffLimit", None)
    failure = {}
    if backoff is not None:
        if not isinstance(backoff, int) or isinstance(backoff, bool) or backoff < 0:
            raise ManifestError(f"{source}: runPolicy.backoffLimit: {backoff!r} is not a number of retries")
        failure = {"max_task_failures": backoff, "max_infrastructure_failures": backoff}
        imported.changed.append(f"runPolicy.backoffLimit {backoff}: max_task_failures and max_infrastructure_failures "
                                f"are {backoff}; a lost node spends max_preemptions (10) instead, never these")
    policies = {r["label"]: r["restart"] for r in replicas.values()}
    if set(policies.values()) == {"Never"}:
        failure = {"max_preemptions": 0, "max_task_failures": 0, "max_infrastructure_failures": 0}
        imported.changed.append("restartPolicy Never on every replica (the operator's default): every budget is 0, "
                                "so the first failure ends the job as under TFJob; raise failure.max_preemptions "
                                "(spot nodes) and max_task_failures to let tfray recover from the newest checkpoint")
    else:
        for policy_name in dict.fromkeys(policies.values()):
            labels = ", ".join(label for label, p in policies.items() if p == policy_name)
            imported.changed.append(f"restartPolicy {policy_name} ({labels}): {RESTART[policy_name]}")
    if failure:
        imported.spec["failure"] = failure

