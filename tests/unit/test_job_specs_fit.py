"""Every shipped job spec fits the cluster it says it runs on.

Each spec in cluster_configs/jobs/ opens with a line naming where it runs:

    # runs on: aws.yaml gcp.yaml azure.yaml fake_multinode.yaml

each word a `ray up` config in cluster_configs/, or ``local-ray``: the Ray that
``tfray run`` starts on this machine (one node, this machine's CPUs, no GPU, no
custom resource). These tests pack the spec's bundles (the placement-group
bundles the controller asks for: CPU, GPU, memory, custom resources such as
``spot`` and ``on_demand``) onto the node types each named config offers, within
their ``max_workers``. A spec asking for a resource that no node type offers
waits for nodes that never come, which on a cloud means billed idle VMs until
``timeouts.scheduling_s``; this finds it before anyone runs it.

What a node type offers is what Ray's autoscaler believes it offers: the
``resources`` the config writes, plus on AWS what Ray reads from the instance
type (CPUs, GPUs, and 70% of the memory for workers; the table below, from EC2's
published sizes, stands in for that cloud call). GCP and Azure learn nothing
from the machine type, so a spec there cannot ask for memory the config does
not write down. Nothing here starts Ray or calls a cloud.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
import yaml

from controller.plan.tasks import describe_bundle, plan
from controller.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "cluster_configs"
SPECS = sorted((CONFIG_DIR / "jobs").glob("*.yaml"))
LOCAL_RAY = "local-ray"
GIB = 2**30
# EC2 sizes of the instance types the AWS config uses: vCPUs, GiB, NVIDIA GPUs.
EC2 = {"m5.large": (2, 8, 0), "m5.2xlarge": (8, 32, 0), "g4dn.xlarge": (4, 16, 1)}
RAY_MEMORY_SHARE = 0.7  # 1 - Ray's DEFAULT_OBJECT_STORE_MEMORY_PROPORTION, as the AWS provider fills it in


def runs_on(spec_path: Path) -> list[str]:
    lines = [line for line in spec_path.read_text().splitlines() if line.startswith("# runs on:")]
    assert len(lines) == 1, (f"{spec_path.name}: needs one line '# runs on: <configs>' naming the cluster configs "
                             f"it fits (files in cluster_configs/, or {LOCAL_RAY}); found {len(lines)}")
    return lines[0].split(":", 1)[1].split()


def node_types(target: str) -> tuple[dict[str, tuple[dict, int]], int]:
    """(node type -> (the resources the autoscaler believes it has, how many may run), the cluster's max nodes)."""
    if target == LOCAL_RAY:
        return {"this machine": ({"CPU": float(os.cpu_count() or 1)}, 1)}, 1
    raw = yaml.safe_load((CONFIG_DIR / target).read_text())
    kind = raw["provider"]["type"]
    if kind == "local":
        return local_machines(raw), 1 + len(raw["provider"]["worker_ips"])
    types = {}
    for name, node_type in raw["available_node_types"].items():
        resources = dict(node_type.get("resources", {}))
        if kind == "aws":
            cpus, gib, gpus = EC2[node_type["node_config"]["InstanceType"]]
            filled = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
            if name != raw["head_node_type"]:  # Ray fills in memory for workers only
                filled["memory"] = int(gib * GIB * RAY_MEMORY_SHARE)
            resources = {**filled, **resources}
        head = name == raw["head_node_type"]
        types[name] = (resources, 1 if head else node_type.get("max_workers", raw["max_workers"]))
    return types, 1 + raw["max_workers"]


def local_machines(raw: dict) -> dict[str, tuple[dict, int]]:
    """local.yaml has one node type; its start commands give each machine its resources (--resources), naming
    it cpu_node or gpu_node by whether it has a GPU. Its CPUs are the machine's own: unknown here."""
    starts = " ".join(raw["head_start_ray_commands"] + raw["worker_start_ray_commands"])
    found = re.search(r'--resources="(\{.*?\})"', starts)
    assert found, "local.yaml: the ray start commands no longer give --resources"
    template = json.loads(found.group(1).replace('\\"', '"'))
    machines = {}
    for kind, gpu in (("cpu_node", 0), ("gpu_node", math.inf)):
        resources = {name.replace("$kind", kind): amount for name, amount in template.items()}
        machines[kind] = ({"CPU": math.inf, **({"GPU": gpu} if gpu else {}), **resources},
                          1 + len(raw["provider"]["worker_ips"]))
    return machines


def fits(bundle: dict, free: dict) -> bool:
    return all(free.get(name, 0) >= amount for name, amount in bundle.items())


def pack(spec_path: Path, target: str) -> list[str]:
    """Places each task's bundle on a node of the target (first fit, largest first); the problems found."""
    types, max_nodes = node_types(target)
    tasks = sorted(plan(load_spec(spec_path)), key=lambda t: -sum(t.bundle.values()))
    nodes: list[tuple[str, dict]] = []  # (type, resources still free)
    problems = []
    for task in tasks:
        bundle = task.bundle
        node = next((free for _, free in nodes if fits(bundle, free)), None)
        if node is None:
            counts = {name: sum(1 for t, _ in nodes if t == name) for name in types}
            choice = next((name for name, (offered, most) in types.items()
                           if fits(bundle, offered) and counts[name] < most), None)
            if choice is None or len(nodes) >= max_nodes:
                offered = "; ".join(f"{name}: {describe_bundle(res)} (at most {most})"
                                    for name, (res, most) in types.items())
                why = "no node type offers it" if not any(fits(bundle, r) for r, _ in types.values()) \
                    else "the node types that offer it are all used (max_workers)"
                problems.append(f"{task.key} asks for {describe_bundle(bundle)}: {why}. {target} offers {offered}")
                continue
            node = dict(types[choice][0])
            nodes.append((choice, node))
        for name, amount in bundle.items():
            node[name] = node.get(name, 0) - amount
    return problems


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.name)
def test_every_spec_names_the_configs_it_runs_on(spec_path):
    targets = runs_on(spec_path)
    assert targets, f"{spec_path.name}: '# runs on:' names no config"
    for target in targets:
        assert target == LOCAL_RAY or (CONFIG_DIR / target).is_file(), (
            f"{spec_path.name} runs on '{target}', which is neither a file in cluster_configs/ nor {LOCAL_RAY}")


@pytest.mark.parametrize("spec_path, target", [(s, t) for s in SPECS for t in runs_on(s)],
                         ids=lambda v: v.name if isinstance(v, Path) else v)
def test_the_spec_fits_the_cluster_it_names(spec_path, target):
    problems = pack(spec_path, target)
    assert not problems, f"{spec_path.name} does not fit {target}:\n  " + "\n  ".join(problems)


def test_every_cluster_config_has_a_spec_that_runs_on_it():
    named = {t for s in SPECS for t in runs_on(s)}
    configs = {p.name for p in CONFIG_DIR.glob("*.yaml")}
    assert not configs - named, f"no job spec in cluster_configs/jobs/ runs on {sorted(configs - named)}"


@pytest.mark.parametrize("config", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_the_spec_a_config_tells_you_to_submit_runs_on_it(config):
    """A config's own how-to (`tfray submit cluster_configs/jobs/X.yaml`) names a spec that fits it."""
    told = [spec for line in config.read_text().splitlines() if line.startswith("#") and "submit" in line
            for spec in re.findall(r"cluster_configs/jobs/([\w.-]+\.yaml)", line)]
    for spec in told:
        assert config.name in runs_on(CONFIG_DIR / "jobs" / spec), f"{config.name} says to submit {spec}"


@pytest.mark.parametrize("resources, target, expected", [
    ({"cpu": 1, "custom": {"spot": 1}}, "local.yaml", "no node type offers it"),  # on-prem has no spot machines
    ({"cpu": 1, "custom": {"on_demand": 1}}, LOCAL_RAY, "no node type offers it"),
    ({"cpu": 1, "memory_mb": 4096}, "gcp.yaml", "no node type offers it"),  # GCP's types write down no memory
    ({"cpu": 2, "gpu": 1, "custom": {"gpu_node": 1}}, "fake_multinode.yaml", "no node type offers it"),
    ({"cpu": 1, "custom": {"on_demand": 1}}, "fake_multinode.yaml", "all used (max_workers)"),  # one such node
])
def test_a_spec_that_does_not_fit_is_named_with_what_the_cluster_offers(tmp_path, resources, target, expected):
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "misfit", "strategy": "multi_worker_mirrored",
        "roles": {"chief": {"count": 1, "resources": resources}, "worker": {"count": 1, "resources": resources}},
        "entrypoint": {"function": "examples.digits:train"},
    }))
    problems = pack(spec, target)
    assert problems and expected in problems[-1] and f"{target} offers" in problems[-1], problems
