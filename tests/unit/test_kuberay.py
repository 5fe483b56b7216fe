"""The KubeRay manifests (cluster_configs/kuberay/) are valid the way Kubernetes reads them, and locked down.

Each custom resource is validated offline against KubeRay's own CRD schema for a named release (a vendored
copy, cluster_configs/kuberay/crd/, with its source), with unknown keys refused as a structural schema
refuses them; the operator's own checks that no schema says (validation.go) are written out; then what the
manifests promise: autoscaling, spot groups marked as values to change with a drain before a reclaimed pod
stops, token auth from a Secret, nothing reachable from outside, and a RayJob that runs a valid job spec.
Nothing here talks to a cluster.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from controller.spec import check_entrypoint, load_spec

REPO = Path(__file__).resolve().parents[2]
KUBERAY = REPO / "cluster_configs" / "kuberay"
CRDS = KUBERAY / "crd"
IMAGE_HOME = "/home/ray"  # the Ray image's home; the repository is at /home/ray/tfray (Dockerfile)


def documents(name: str) -> dict[str, dict]:
    """A manifest file's objects by kind."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all((KUBERAY / name).read_text())}


def strict(schema):
    """The schema as the API server applies it: an object that names its properties takes no others
    (unless x-kubernetes-preserve-unknown-fields), where plain JSON Schema would let a typo through."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: strict(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"):
        closed["additionalProperties"] = False
    return closed


def vendored(plural: str) -> dict:
    return json.loads((CRDS / f"ray.io_{plural}.v1.json").read_text())


def problems(plural: str, document: dict) -> list[str]:
    # OpenAPI v3.0 schemas are JSON Schema draft 4 with extensions (booleans for exclusiveMinimum and the like).
    validator = jsonschema.Draft4Validator(strict(vendored(plural)["openAPIV3Schema"]))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


RAYCLUSTER = documents("raycluster.yaml")
RAYJOB = documents("rayjob.yaml")["RayJob"]
CLUSTER = RAYCLUSTER["RayCluster"]


def test_the_vendored_schemas_say_which_kuberay_they_are_and_where_they_came_from():
    readme = (CRDS / "README.md").read_text()
    version = re.search(r"\| \*\*(v\d+\.\d+\.\d+)\*\* \|", readme).group(1)
    for plural, kind in (("rayclusters", "RayCluster"), ("rayjobs", "RayJob")):
        data = vendored(plural)
        assert data["kind"] == kind and data["kuberay_version"] == version
        assert data["source"] == (f"https://github.com/ray-project/kuberay/blob/{version}/ray-operator/config/crd/"
                                  f"bases/ray.io_{plural}.yaml")
        assert data["source"] in readme and re.fullmatch(r"[0-9a-f]{64}", data["crd_sha256"])


@pytest.mark.parametrize("plural, document", [("rayclusters", CLUSTER), ("rayjobs", RAYJOB)],
                         ids=["RayCluster", "RayJob"])
def test_the_manifests_validate_against_kuberays_crd_schema(plural, document):
    assert document["apiVersion"] == "ray.io/v1"
    assert problems(plural, document) == []


@pytest.mark.parametrize("label, change, expected", [
    ("a misspelt key", lambda c: c["spec"]["workerGroupSpecs"][0].update(maxReplica=4),
     "workerGroupSpecs.0: Additional properties are not allowed ('maxReplica'"),
    ("a count as text", lambda c: c["spec"]["workerGroupSpecs"][1].update(maxReplicas="8"),
     "workerGroupSpecs.1.maxReplicas: '8' is not of type 'integer'"),
    ("an auth mode there is not", lambda c: c["spec"]["authOptions"].update(mode="tokens"),
     "authOptions.mode: 'tokens' is not one of"),
    ("a container without a name", lambda c: c["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].pop(
        "name"), "'name' is a required property"),
])
def test_the_schema_check_refuses_what_kubernetes_would(label, change, expected):
    cluster = json.loads(json.dumps(CLUSTER))
    change(cluster)
    assert any(expected in problem for problem in problems("rayclusters", cluster)), problems("rayclusters", cluster)


def guarded_by_cel(schema: dict, path: tuple = ()) -> list[tuple]:
    """The field paths whose rules are CEL (x-kubernetes-validations), which no JSON Schema library runs."""
    found = [path] if "x-kubernetes-validations" in schema else []
    for name, sub in schema.get("properties", {}).items():
        found += guarded_by_cel(sub, (*path, name))
    return found


@pytest.mark.parametrize("plural, document", [("rayclusters", CLUSTER), ("rayjobs", RAYJOB)],
                         ids=["RayCluster", "RayJob"])
def test_no_field_that_only_a_cel_rule_checks_is_set(plural, document):
    paths = guarded_by_cel(vendored(plural)["openAPIV3Schema"])
    assert paths  # the schemas have such rules: this test looks at something
    for path in paths:
        node = document
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        assert node is None, f"{'.'.join(path)} is set; its CEL rule is not checked offline"


def ray_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_the_operators_own_checks_that_the_schema_cannot_say():
    """ray-operator/controllers/ray/utils/validation.go at the vendored release."""
    spec = CLUSTER["spec"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", CLUSTER["metadata"]["name"])  # a DNS-1035 label
    assert spec["authOptions"]["mode"] == "token" and ray_version(spec["rayVersion"]) >= (2, 52, 0)
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        start = group.get("rayStartParams", {})
        assert not (group.get("resources") and {"num-cpus", "num-gpus", "memory", "resources"} & set(start))
        assert "labels" not in start  # the group's labels field instead
        assert group["template"]["spec"].get("restartPolicy", "Never") == "Never"  # autoscaler v2
    for group in spec["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    selector = RAYJOB["spec"]["clusterSelector"]
    assert selector["ray.io/cluster"] == CLUSTER["metadata"]["name"]
    assert RAYJOB["spec"].get("submissionMode") != "SidecarMode" and not RAYJOB["spec"].get("backoffLimit")
    assert RAYJOB["spec"]["activeDeadlineSeconds"] > 0


def test_nothing_is_reachable_from_outside_and_auth_is_on():
    spec = CLUSTER["spec"]
    head = spec["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP" and head["enableIngress"] is False
    assert spec["authOptions"] == {"mode": "token", "secretName": "tfray-ray-token"}
    pods = [head["template"]["spec"], *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]
    assert not any(pod.get("hostNetwork") for pod in pods)
    policy = RAYCLUSTER["NetworkPolicy"]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"ray.io/cluster": CLUSTER["metadata"]["name"]}}
    assert policy["policyTypes"] == ["Ingress"] and policy["ingress"] == [{"from": [{"podSelector": {}}]}]
    texts = [(KUBERAY / name).read_text() for name in ("raycluster.yaml", "rayjob.yaml")]
    assert not any("kind: Secret" in text or "NodePort" in text or "LoadBalancer" in text for text in texts)


def test_autoscaling_on_and_spot_groups_marked_as_values_to_change():
    spec = CLUSTER["spec"]
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["version"] == "v2"
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no training on the head
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu-on-demand", "cpu-spot", "gpu-spot"}
    assert groups["gpu-spot"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    lines = (KUBERAY / "raycluster.yaml").read_text().splitlines()
    for name, group in groups.items():
        spot = name.endswith("-spot")
        assert group["labels"]["market-type"] == ("spot" if spot else "on-demand")
        assert ("spot" if spot else "on_demand") in group["resources"]
        if not spot:
            continue
        pod = group["template"]["spec"]
        for key, value in pod["nodeSelector"].items():  # every selector line says it is a value to change
            assert any(f"{key}: {json.dumps(value)}" in line and "# CHANGE" in line for line in lines), key
        drain = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1]
        deadline = int(re.search(r"--deadline-remaining-seconds (\d+)", drain).group(1))
        assert "ray drain-node --reason DRAIN_NODE_REASON_PREEMPTION" in drain
        assert deadline < pod["terminationGracePeriodSeconds"] and f"sleep {deadline}" in drain


def test_every_image_and_the_rayversion_are_the_pinned_ray():
    pinned = re.search(r"^ray==(\S+)$", (REPO / "cluster_configs" / "constraints.txt").read_text(), re.M).group(1)
    assert CLUSTER["spec"]["rayVersion"] == pinned
    dockerfile = (KUBERAY / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{pinned}-" in dockerfile
    assert "pip install --no-cache-dir -c cluster_configs/constraints.txt" in dockerfile
    spec = CLUSTER["spec"]
    containers = [c for g in [spec["headGroupSpec"], *spec["workerGroupSpecs"]] for c in g["template"]["spec"][
        "containers"]]
    assert all(re.fullmatch(r"REGISTRY/tfray:\d+\.\d+\.\d+-(cpu|gpu)", c["image"]) for c in containers)


def test_the_rayjob_runs_a_valid_job_spec_that_fits_the_groups():
    command = shlex.split(RAYJOB["spec"]["entrypoint"])
    assert command[:4] == ["python", "-m", "controller", "run"]
    in_image = Path(command[4])
    spec = load_spec(REPO / in_image.relative_to(f"{IMAGE_HOME}/tfray"))
    check_entrypoint(spec, [str(REPO)])  # the image puts the repository on PYTHONPATH
    offered = {name for g in CLUSTER["spec"]["workerGroupSpecs"] for name in g["resources"]}
    for role in spec.roles.values():
        assert set(role.resources.custom) <= offered
    head = CLUSTER["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    storage = spec.storage_path.replace("~", IMAGE_HOME, 1)
    assert {"name": "runs", "mountPath": storage} in head["volumeMounts"]  # the checkpoints outlive the head pod
    assert RAYJOB["spec"]["activeDeadlineSeconds"] > spec.timeouts.job_s


RAY_GID = 100  # the rayproject images' `ray` user: uid 1000, gid 100 (`users`), as their base-deps Dockerfile makes it


def test_every_pod_that_mounts_the_volume_can_write_to_it():
    """A fresh volume's root belongs to root on most provisioners; fsGroup makes Kubernetes give it to the ray
    user's group (group-writable, setgid) when the pod mounts it."""
    spec = CLUSTER["spec"]
    mounting = 0
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        claims = {v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
        if not claims:
            continue
        mounting += 1
        assert pod.get("securityContext", {}).get("fsGroup") == RAY_GID, group.get("groupName", "head")
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert not (mount["name"] in claims and mount.get("readOnly")), mount
    assert mounting  # the head mounts tfray-runs: this test looks at something
    assert "--chown=ray:users" in (KUBERAY / "Dockerfile").read_text()  # the image's user is in gid 100
