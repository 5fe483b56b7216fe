"""Every `ray up` config in cluster_configs/ is valid the way `ray up` reads it, and locked down.

Ray's own offline path (docs/design.md §6): ``prepare_config`` merges the provider's
``defaults.yaml`` in (no cloud call) and ``validate_config`` checks the result
against ``ray-schema.json``, which rejects unknown keys. Both are private Ray
APIs, which is one reason Ray is pinned. The lock-down checks read the prepared
config, i.e. what would really run on the nodes, so a key left out and filled
from Ray's defaults (a nightly Ray, a dashboard on 0.0.0.0) cannot slip through.
Nothing here starts Ray or calls a cloud.
"""

from __future__ import annotations

import copy
import re
import shlex
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from ray.autoscaler._private import providers
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "cluster_configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
CLOUDS = ("aws", "gcp", "azure")
DOCS = REPO / "docs" / "clusters.md"
COMMAND_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands")
# How each cloud marks a node as spot/preemptible (docs/design.md §6).
SPOT = {
    "aws": lambda nc: nc.get("InstanceMarketOptions", {}).get("MarketType") == "spot",
    "gcp": lambda nc: nc.get("scheduling", {}).get("provisioningModel") == "SPOT",
    "azure": lambda nc: nc.get("azure_arm_parameters", {}).get("priority") == "Spot",
}


def provider_of(path: Path) -> str:
    return yaml.safe_load(path.read_text())["provider"]["type"]


def by_provider(kind: str) -> Path:
    return next(p for p in CONFIGS if provider_of(p) == kind)


def prepared(path: Path, monkeypatch) -> tuple[dict, dict]:
    """(the file as written, the config `ray up` would run: Ray's defaults merged in, then validated)."""
    raw = yaml.safe_load(path.read_text())
    if raw["provider"]["type"] == "fake_multinode":
        # The Ray 2.60 wheel lacks fake_multi_node/example.yaml, the defaults prepare_config merges
        # for this provider; the shipped file sets every key, so it stands in for them.
        monkeypatch.setitem(providers._DEFAULT_CONFIGS, "fake_multinode", lambda: str(path))
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return raw, config


def commands(config: dict) -> list[str]:
    return [cmd for key in COMMAND_KEYS for cmd in config.get(key, [])]


def worker_types(raw: dict) -> dict:
    return {name: t for name, t in raw.get("available_node_types", {}).items() if name != raw.get("head_node_type")}


def test_one_config_per_target():
    assert sorted(provider_of(p) for p in CONFIGS) == sorted(["aws", "azure", "fake_multinode", "gcp", "local"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_validates_the_way_ray_up_reads_it(path, monkeypatch):
    _, config = prepared(path, monkeypatch)
    assert config["head_node_type"] in config["available_node_types"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_key_is_set_so_no_default_is_inherited(path):
    raw = yaml.safe_load(path.read_text())
    # aws/defaults.yaml names every top-level key `ray up` fills in.
    expected = set(providers._get_default_config({"type": "aws"}))
    if raw["provider"]["type"] == "local":
        # The local provider builds its one node type itself and aborts if the file has one;
        # max_workers defaults to the number of worker_ips.
        expected -= {"available_node_types", "head_node_type", "max_workers"}
        assert "available_node_types" not in raw and "head_node_type" not in raw
    assert not expected - set(raw), f"{path.name} leaves these to Ray's defaults: {sorted(expected - set(raw))}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_setup_installs_this_project_at_pinned_versions_never_a_nightly_ray(path, monkeypatch):
    raw, config = prepared(path, monkeypatch)
    text = " ".join(commands(config))
    for bad in ("ray-wheels", "dev0", "which ray", "pip install -U ray", "conda create"):
        assert bad not in text, f"{path.name}: '{bad}' in its commands (a default leaked in?)"
    if raw["provider"]["type"] == "fake_multinode":
        assert raw["provider"]["disable_node_updaters"] and not commands(config)  # its nodes run no commands
        return
    assert raw["file_mounts"]["~/tfray"] == ".", "the repository is synced from `ray up`'s folder"
    for key in ("head_setup_commands", "worker_setup_commands"):  # setup_commands merged in by prepare_config
        assert config[key][0] == "bash ~/tfray/cluster_configs/node_setup.sh", (path.name, key)
    for node_type in raw.get("available_node_types", {}).values():
        assert "worker_setup_commands" not in node_type  # it would replace the setup above


def test_node_setup_installs_the_project_with_the_constraints_from_the_wheelhouse_else_the_index():
    script = (CONFIG_DIR / "node_setup.sh").read_text()
    assert 'project="${TFRAY_PROJECT:-$HOME/tfray}"' in script  # where file_mounts put the repository
    assert 'constraints="$project/cluster_configs/constraints.txt"' in script
    assert 'wheels="${TFRAY_WHEELHOUSE:-$HOME/tfray-wheels}"' in script
    assert 'offline=("--no-index" "--find-links" "$wheels")' in script
    # From the wheelhouse only when it is complete; else (or when it does not fit) from the index.
    assert re.search(r'if \[ -f "\$wheels/COMPLETE" \] && .*\n\s*"\$\{pip\[@\]\}" "\$\{offline\[@\]\}" '
                     r'-c "\$constraints" "\$project"; then', script), "node_setup.sh must install from the wheelhouse"
    assert re.search(r'else\n(.*\n)*?\s*"\$\{pip\[@\]\}" -c "\$constraints" "\$project"\nfi', script), \
        "node_setup.sh must fall back to the index under the same constraints"
    assert 'chmod 600 "$HOME/.ray/auth_token"' in script


@pytest.mark.parametrize("path", [p for p in CONFIGS if provider_of(p) != "fake_multinode"], ids=lambda p: p.name)
def test_the_head_builds_the_wheelhouse_that_every_worker_receives(path, monkeypatch):
    raw, config = prepared(path, monkeypatch)
    builder = (CONFIG_DIR / "build_wheelhouse.sh").read_text()
    assert 'wheels="${TFRAY_WHEELHOUSE:-$HOME/tfray-wheels}"' in builder  # where node_setup.sh looks
    # After node_setup.sh (the head's venv exists), on the head only; then synced to each worker.
    assert config["head_setup_commands"][:2] == ["bash ~/tfray/cluster_configs/node_setup.sh",
                                                 "bash ~/tfray/cluster_configs/build_wheelhouse.sh"]
    assert "build_wheelhouse.sh" not in " ".join(config["worker_setup_commands"])
    assert raw["cluster_synced_files"] == ["~/tfray-wheels"]


@pytest.mark.parametrize("kind", CLOUDS)
def test_the_heads_cloud_sdk_is_the_pinned_extra(kind):
    raw = yaml.safe_load(by_provider(kind).read_text())
    installs = [cmd for cmd in raw["head_setup_commands"] if "pip install" in cmd]
    assert installs == [f'~/tfray-venv/bin/pip install --quiet -c ~/tfray/cluster_configs/constraints.txt '
                        f'"$HOME/tfray[{kind}]"'], installs  # tests/unit/test_cloud_sdks.py checks the extra


def ray_starts(text: str) -> list[str]:
    """Every `ray start` command in a text, a backslash-continued command joined into one line."""
    joined = re.sub(r"\\\n(#\s*)?", " ", text)
    command = re.compile(r"^[#\s]*(?:[A-Z_][A-Z0-9_]*=\S*\s+)*ray start\b")  # not prose that names it
    return [line for line in joined.splitlines() if command.match(line)]


def test_every_ray_start_disables_usage_stats():
    # Ray otherwise sends usage statistics from every node and every local head, and tries to resolve
    # its usage host at start, which a machine without internet access waits on.
    starts = {}
    for path in CONFIGS:
        raw = yaml.safe_load(path.read_text())
        comments = "\n".join(line for line in path.read_text().splitlines() if line.lstrip().startswith("#"))
        starts[path.name] = [cmd for cmd in commands(raw) if "ray start" in cmd] + ray_starts(comments)
    for doc in (DOCS, REPO / "README.md"):
        starts[doc.name] = ray_starts(doc.read_text())
    for name, found in starts.items():
        for cmd in found:
            assert "--disable-usage-stats" in cmd, f"{name}: a ray start without --disable-usage-stats: {cmd}"
    # The four configs' head and worker starts, the fake cluster's head, the local token-auth head.
    assert sum(map(len, starts.values())) >= 10, starts


def test_gcp_subnet_path_names_the_configs_project_and_region():
    raw = yaml.safe_load(by_provider("gcp").read_text())
    provider = raw["provider"]
    assert provider["availability_zone"].startswith(provider["region"] + "-")
    for name, node_type in raw["available_node_types"].items():
        subnet = node_type["node_config"]["networkInterfaces"][0]["subnetwork"]
        expected = f"projects/{provider['project_id']}/regions/{provider['region']}/subnetworks/tfray-subnet"
        assert subnet == expected, f"gcp.yaml {name}: the subnet path must name provider.project_id and .region"


def test_constraints_pin_what_the_tests_run_with_inside_pyproject_ranges():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # The runtime dependencies and the cloud SDK extras (the head installs one under these pins).
    requirements = project["dependencies"] + [r for extra in CLOUDS for r in project["optional-dependencies"][extra]]
    declared = {Requirement(r).name.lower(): Requirement(r) for r in requirements}
    pins = {}
    for line in (CONFIG_DIR / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, pinned = line.strip().split("==")
            pins[name.lower()] = pinned
            assert version(name) == pinned, f"constraints.txt pins {name}=={pinned}, the tests run {version(name)}"
            if name.lower() in declared:
                assert declared[name.lower()].specifier.contains(pinned), f"{name}=={pinned} is outside pyproject's range"
    unpinned = sorted(set(declared) - set(pins))
    assert not unpinned, f"pyproject requirements without a pin in cluster_configs/constraints.txt: {unpinned}"


@pytest.mark.parametrize("path", [p for p in CONFIGS if provider_of(p) != "fake_multinode"], ids=lambda p: p.name)
def test_dashboard_private_and_token_auth_on_every_node(path, monkeypatch):
    raw, config = prepared(path, monkeypatch)
    assert not any("0.0.0.0" in cmd for cmd in commands(config))
    head_starts = [cmd for cmd in config["head_start_ray_commands"] if "ray start" in cmd]
    assert len(head_starts) == 1 and "--head" in head_starts[0]
    assert "--dashboard-host=127.0.0.1" in shlex.split(head_starts[0].replace(";", " ; "))
    for cmd in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        if "ray start" in cmd:
            assert re.search(r"export RAY_AUTH_MODE=token\b", cmd), f"{path.name}: ray start without token auth"
    assert any("export RAY_AUTH_MODE=token' >> ~/.bashrc" in cmd for cmd in config["initialization_commands"])
    assert raw["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # the client's token, on every node


@pytest.mark.parametrize("kind", CLOUDS + ("fake_multinode",))
def test_head_is_on_demand_and_takes_no_training_task(kind):
    raw = yaml.safe_load(by_provider(kind).read_text())
    head = raw["available_node_types"][raw["head_node_type"]]
    assert head["resources"]["CPU"] == 0  # the controller's inbox is 0-CPU (node:__internal_head__), it fits
    assert head["labels"] == {"market-type": "on-demand"}
    if kind in SPOT:
        assert not SPOT[kind](head["node_config"])


@pytest.mark.parametrize("kind", CLOUDS)
def test_spot_worker_types_are_spot_on_their_cloud_and_labelled(kind):
    path = by_provider(kind)
    raw = yaml.safe_load(path.read_text())
    workers = worker_types(raw)
    for name, node_type in workers.items():
        market = node_type["labels"]["market-type"]
        assert market in ("spot", "on-demand"), name
        assert SPOT[kind](node_type["node_config"]) == (market == "spot"), name
        assert ("spot" in node_type["resources"]) == (market == "spot"), name
        assert ("on_demand" in node_type["resources"]) == (market == "on-demand"), name
        assert node_type["min_workers"] == 0, f"{name}: workers come and go with jobs"
    assert {"cpu_spot", "gpu_spot", "cpu_on_demand"} <= set(workers)


@pytest.mark.parametrize("kind", CLOUDS)
def test_cpu_and_gpu_worker_types_offer_the_resources_job_specs_ask_for(kind):
    raw = yaml.safe_load(by_provider(kind).read_text())
    for name, node_type in worker_types(raw).items():
        resources = node_type["resources"]
        gpu = name.startswith("gpu")
        assert ("gpu_node" in resources, "cpu_node" in resources) == (gpu, not gpu), name
        # the GPU's type, which jobs imported from Vertex AI ask for (tests/unit/test_imported_gpu_jobs_fit.py)
        assert sum(key.startswith("accelerator_type:") for key in resources) == gpu, name
        if kind == "aws":  # EC2 reports CPUs and GPUs by instance type: g* and p* have GPUs
            assert (node_type["node_config"]["InstanceType"][0] in "gp") == gpu, name
        else:  # GCE and Azure need them written down
            assert resources["CPU"] > 0 and (resources.get("GPU", 0) >= 1) == gpu, name


def test_aws_ingress_is_the_users_security_group_on_every_node():
    raw = yaml.safe_load(by_provider("aws").read_text())
    # A node type without SecurityGroupIds makes Ray create its default group, which opens SSH to 0.0.0.0/0.
    for name, node_type in raw["available_node_types"].items():
        assert node_type["node_config"]["SecurityGroupIds"], name
    assert "security_group" not in raw["provider"]
    docs = DOCS.read_text()
    assert "authorize-security-group-ingress" in docs and "--source-group" in docs


def test_gcp_nodes_sit_in_the_dedicated_network_with_the_firewall_tag():
    raw = yaml.safe_load(by_provider("gcp").read_text())
    for name, node_type in raw["available_node_types"].items():
        config = node_type["node_config"]
        subnet = config["networkInterfaces"][0]["subnetwork"]
        assert subnet.endswith("/subnetworks/tfray-subnet"), name  # never the "default" network
        assert config["tags"]["items"] == ["tfray-node"], name
    docs = DOCS.read_text()
    for rule in ("--allow=tcp:22", "--source-tags=tfray-node", "--target-tags=tfray-node"):
        assert rule in docs


def test_ingress_a_config_cannot_express_is_documented():
    docs = DOCS.read_text()
    assert "az network nsg rule update" in docs  # Azure: Ray deploys its own NSG with SSH from anywhere
    assert "ufw allow" in docs  # on-premises: the machines' own firewall


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_value_to_fill_in_is_marked(path):
    text = path.read_text()
    for line in text.splitlines():
        if "FILL-IN" in line and not line.lstrip().startswith("#"):
            assert "# FILL IN" in line, f"{path.name}: a placeholder without its '# FILL IN' note: {line.strip()!r}"
    assert ("# FILL IN" in text) == (provider_of(path) != "fake_multinode")
