"""Each cloud extra (`pip install 'tfray[aws]'`, gcp, azure) brings what Ray's provider for that cloud imports.

`ray up` on the user's machine and the autoscaler on the head import Ray's node
provider for the cloud (``ray/autoscaler/_private/{aws,gcp,_azure}``), which
imports the cloud's SDK; a package missing there fails only on the first `ray
up` or, worse, on the head when the first job asks for a node. These tests read
the provider's imports from Ray's own source, find the installed distribution
that provides each module, and check that the extra (or what it depends on, or
what tfray itself installs) brings it; then import the provider for real. The
dev virtualenv has every extra installed at the pinned versions (Makefile).
Nothing here calls a cloud.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import ray
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PROVIDERS = Path(ray.__file__).parent / "autoscaler" / "_private"
# extra -> the folder of Ray's provider for that cloud
CLOUD_EXTRAS = {"aws": "aws", "gcp": "gcp", "azure": "_azure"}


def project() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def imported_modules(folder: Path) -> set[str]:
    """Every absolute import in a provider's source (lazy ones inside functions too), minus stdlib and Ray."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return {n for n in names if n.split(".")[0] not in sys.stdlib_module_names and n.split(".")[0] != "ray"}


@cache
def top_level_owners() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def owners(modules: dict[str, str]) -> dict[str, str | None]:
    """module -> the distribution whose files hold the module's file. Namespace packages such as google.*
    and azure.* are shared by many distributions, so the top-level name alone does not say which."""
    candidates = {name for module in modules for name in top_level_owners().get(module.split(".")[0], [])}
    by_file = {}
    for name in candidates:
        dist = metadata.distribution(name)
        by_file.update({os.path.normpath(dist.locate_file(f)): name for f in dist.files or ()})
    return {module: by_file.get(os.path.normpath(file)) if file else None for module, file in modules.items()}


def file_of(module: str) -> str | None:
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    return spec.origin if spec is not None and spec.has_location else None


def closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements install, with everything they depend on (markers evaluated)."""
    seen, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        key = (name, tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            dep = Requirement(text)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                todo.append(dep)
    return {name for name, _ in seen}


def normal(name: str) -> str:
    return name.lower().replace("_", "-")


def provided_by(extra: str) -> set[str]:
    spec = project()
    requirements = spec["optional-dependencies"].get(extra)
    assert requirements, f"pyproject.toml has no [{extra}] extra: add the cloud SDK Ray's {extra} provider imports"
    return {normal(n) for n in closure(requirements) | closure(spec["dependencies"])}


def assert_provided(extra: str, modules: dict[str, str | None], how: str) -> None:
    provided = provided_by(extra)
    missing = {}  # distribution -> the first of its modules seen
    for module, owner in sorted(owners(modules).items()):
        if owner is None or normal(owner) not in provided:
            missing.setdefault(owner or f"(not installed here, so unknown: {module})", module)
    assert not missing, (f"Ray's {extra} provider {how} {missing} (distribution: module), which the [{extra}] "
                         "extra in pyproject.toml does not bring: add the distribution there and pin it in "
                         "cluster_configs/constraints.txt")


@pytest.mark.parametrize("extra", sorted(CLOUD_EXTRAS))
def test_the_extra_brings_every_module_rays_provider_names(extra):
    """What the provider's source imports, in functions too (some run only when a node is created)."""
    modules = imported_modules(PROVIDERS / CLOUD_EXTRAS[extra])
    assert modules, f"no imports found in {PROVIDERS / CLOUD_EXTRAS[extra]}: has Ray moved its provider?"
    assert_provided(extra, {module: file_of(module) for module in modules}, "imports")


IMPORT_PROVIDER = """
import json, sys
before = set(sys.modules)
import ray
for module in sys.argv[1:]:
    __import__(module)
print(json.dumps({name: getattr(m, "__file__", None) for name, m in sys.modules.items()
                  if name not in before and m is not None}))
"""


@cache
def modules_ray_loads() -> set[str]:
    """What `import ray` alone loads: tfray's own dependencies, not the provider's."""
    done = subprocess.run([sys.executable, "-c", IMPORT_PROVIDER], capture_output=True, text=True, timeout=120,
                          check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("extra", sorted(CLOUD_EXTRAS))
def test_importing_rays_provider_loads_only_what_the_extra_brings(extra):
    """What the SDK itself imports on the way: azure.common.credentials needs msrest and msrestazure,
    which azure-common does not declare; only an import shows it."""
    folder = CLOUD_EXTRAS[extra]
    modules = [f"ray.autoscaler._private.{folder}.{name}" for name in ("config", "node_provider")]
    done = subprocess.run([sys.executable, "-c", IMPORT_PROVIDER, *modules], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, (f"importing Ray's {extra} provider failed (is the extra installed? `make setup`, "
                                  f"or pip install -e '.[{extra}]' -c cluster_configs/constraints.txt):\n"
                                  f"{done.stderr[-3000:]}")
    loaded = json.loads(done.stdout.splitlines()[-1])
    ray_loaded = modules_ray_loads()
    third_party = {name: file for name, file in loaded.items() if name not in ray_loaded and file
                   and name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "ray"}
    assert third_party, f"importing Ray's {extra} provider loaded no SDK module: has Ray moved its provider?"
    assert_provided(extra, third_party, "loads")
