"""A GPU job imported from Vertex AI gets a node on every shipped cluster: what `import-vertex` asks for (the GPU's
type, as the custom resource ``accelerator_type:<GPU>``) is what each config's GPU node type offers, as the
demand check (controller/plan/demand.py) reads the config on the head; a GPU type no node type offers is named at
once, with the node types.

Each config is read as its autoscaler reads it, with Ray's own offline code: a `ray up` config through
``prepare_config`` (what `ray up` writes to the head), the KubeRay RayCluster through the conversion KubeRay's
autoscaler makes of it. Nothing starts Ray or calls a cloud.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr
from ray.autoscaler._private.util import prepare_config

from controller.importers.vertex import import_vertex
from controller.importers.vertex_machines import ACCELERATORS
from controller.plan import demand
from controller.plan.tasks import plan
from controller.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "cluster_configs"
CUSTOM_JOB = REPO / "examples" / "imports" / "vertex_pss.json"
RAY_UP = ("aws.yaml", "gcp.yaml", "azure.yaml", "local.yaml")
KUBERAY = "kuberay/raycluster.yaml"
# The GPU machine every shipped GPU node type can hold: 4 vCPUs and one GPU (GCE n1-standard-8 + T4, Azure
# NC4as_T4_v3, EC2 g4dn.xlarge, the KubeRay group's 8 CPUs).
GPU_MACHINE = {"machineType": "n1-standard-4", "acceleratorCount": 1}


def autoscaling_config(name: str) -> dict:
    """The config as the cluster's autoscaler (and tfray's demand check on the head) reads it."""
    if name == KUBERAY:
        cluster = next(doc for doc in yaml.safe_load_all((CONFIG_DIR / name).read_text())
                       if doc["kind"] == "RayCluster")
        cluster["metadata"]["namespace"] = "default"  # what the API server sets on an object applied without one
        return _derive_autoscaling_config_from_ray_cr(cluster)
    return prepare_config(yaml.safe_load((CONFIG_DIR / name).read_text()))


def imported_gpu_job(accelerator: str) -> dict:
    """The shipped CustomJob (chief, T4 workers, ps, evaluator), its workers on ``accelerator``s."""
    job = json.loads(CUSTOM_JOB.read_text())
    job["jobSpec"]["workerPoolSpecs"][1]["machineSpec"] = {**GPU_MACHINE, "acceleratorType": accelerator}
    return import_vertex(job, CUSTOM_JOB.name).spec


def never_fits(spec: dict, config: dict) -> str | None:
    job = parse_spec(spec, base_dir=REPO)
    return demand.never_fits_message([dict(t.bundle) for t in plan(job)], job.placement.value,
                                     demand.node_types(config))


def test_the_examples_gpu_workers_ask_for_their_gpus_type():
    workers = imported_gpu_job("NVIDIA_TESLA_T4")["roles"]["worker"]["resources"]
    assert workers["gpu"] == 1 and "accelerator_type:T4" in workers["custom"]


@pytest.mark.parametrize("config", [*RAY_UP, KUBERAY])
def test_an_imported_t4_job_fits_every_shipped_cluster(config):
    assert never_fits(imported_gpu_job("NVIDIA_TESLA_T4"), autoscaling_config(config)) is None


@pytest.mark.parametrize("config", ["aws.yaml", "gcp.yaml", "azure.yaml", KUBERAY])
@pytest.mark.parametrize("accelerator", ["NVIDIA_TESLA_V100", "NVIDIA_TESLA_A100", "NVIDIA_L4", "NVIDIA_H100_80GB"])
def test_a_gpu_type_the_clusters_nodes_lack_is_named_at_once_with_the_node_types(config, accelerator):
    """The shipped GPU nodes have T4s: a job that asks for another GPU is told so before anything starts."""
    settings = autoscaling_config(config)
    message = never_fits(imported_gpu_job(accelerator), settings)
    gpu = ACCELERATORS[accelerator]
    assert message and f"No node type offers accelerator_type:{gpu} (the node types: " in message, message
    assert all(name in message for name in settings["available_node_types"])
    assert "declare it in the resources of the node type" in message


@pytest.mark.parametrize("accelerator", sorted(ACCELERATORS))
def test_a_config_whose_gpu_node_type_names_its_gpu_fits_a_job_imported_for_it(accelerator):
    gcp = autoscaling_config("gcp.yaml")
    other = copy.deepcopy(gcp)
    gpu = ACCELERATORS[accelerator]
    resources = other["available_node_types"]["gpu_spot"]["resources"]
    del resources["accelerator_type:T4"]
    resources[f"accelerator_type:{gpu}"] = 1
    assert never_fits(imported_gpu_job(accelerator), other) is None
    assert (never_fits(imported_gpu_job(accelerator), gcp) is None) == (gpu == "T4")


def test_an_on_premise_cluster_takes_what_each_machine_offers_from_its_ray_start():
    """local.yaml's one node type declares nothing: Ray names each machine's GPU when it starts there."""
    types = demand.node_types(autoscaling_config("local.yaml"))
    assert [t.resources for t in types] == [None]
    assert never_fits(imported_gpu_job("NVIDIA_L4"), autoscaling_config("local.yaml")) is None
