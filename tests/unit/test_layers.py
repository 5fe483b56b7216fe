"""Each layer's import rule, read from the source without running it.

* ``protocol`` (what crosses the process line) imports neither side, nor Ray, nor TensorFlow;
* ``workers`` (the task side) imports ``protocol``, never ``controller``;
* ``controller`` (the driver side) imports ``protocol``, never ``workers``: it names the task actor's class by
  ``protocol.wire.TASK_ACTOR_CLASS``;
* inside ``controller``, a package imports only those below it in :data:`CONTROLLER_LAYERS`, the order
  controller/README.md explains, so the tree reads bottom-up and nothing imports upward;
* only the Ray seam, the Jobs API client and the run sequence import Ray;
* outside ``controller/spec/``, the job spec's names come from ``controller.spec`` only, never from its modules
  (``controller.spec.training``, ``controller.spec.preflight``...): the package is the one place to import from.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Lowest first: each may import those before it (and itself), never one after it.
CONTROLLER_LAYERS = ["settings", "store", "spec", "importers", "plan", "predict", "states", "report", "machine", "ray", "status",
                     "remote", "api", "cli", "__init__", "__main__"]
IMPORTS_RAY = {"ray", "remote", "api"}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports (``from a import b`` as ``a.b`` where ``a`` is a package of ours)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            ours = node.module in ("controller", "protocol", "workers")
            found |= {f"{node.module}.{a.name}" for a in node.names} if ours else {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def sources(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no sources under {package}/"
    return files


def layer_of(path: Path) -> str:
    """The controller layer a file belongs to: its subpackage, or its own name at the top."""
    rel = path.relative_to(REPO / "controller").parts
    return rel[0] if len(rel) > 1 else Path(rel[0]).stem


def test_the_protocol_imports_neither_side_nor_ray_nor_tensorflow():
    for path in sources("protocol"):
        top = {m.split(".")[0] for m in imports_of(path)}
        assert not top & {"controller", "workers", "tensorflow", "tf_keras", "keras"}, (path.name, top)
        if path.name != "streaming.py":  # fetch() waits on a Ray stream, imported where it is called
            assert "ray" not in top, path.name


def test_the_task_side_never_imports_the_controller():
    for path in sources("workers"):
        assert not {m for m in imports_of(path) if m.split(".")[0] == "controller"}, path.name


def test_the_controller_never_imports_the_task_side():
    for path in sources("controller"):
        assert not {m for m in imports_of(path) if m.split(".")[0] == "workers"}, path.relative_to(REPO)


def test_every_controller_package_has_a_layer():
    packages = {p.name for p in (REPO / "controller").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in (REPO / "controller").glob("*.py")}
    assert packages | modules <= set(CONTROLLER_LAYERS), sorted((packages | modules) - set(CONTROLLER_LAYERS))


@pytest.mark.parametrize("layer", CONTROLLER_LAYERS)
def test_a_controller_layer_imports_only_those_below_it(layer):
    below = set(CONTROLLER_LAYERS[:CONTROLLER_LAYERS.index(layer) + 1])
    for path in sources("controller"):
        if layer_of(path) != layer:
            continue
        for module in imports_of(path):
            parts = module.split(".")
            if parts[0] == "controller" and len(parts) > 1:
                assert parts[1] in below, f"{path.relative_to(REPO)} imports {module}, which is above {layer}"
            if parts[0] == "ray":
                assert layer in IMPORTS_RAY, f"{path.relative_to(REPO)} imports Ray outside the Ray seam"


def spec_submodules_imported(path: Path) -> set[str]:
    """The modules of the spec package that a file names in an import (the package itself is not one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("controller.spec."):
                found.add(node.module)
            elif node.module == "controller.spec":  # `from controller.spec import training` names a module
                found |= {f"controller.spec.{a.name}" for a in node.names if (SPEC_PACKAGE / f"{a.name}.py").exists()}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("controller.spec.")}
    return found


SPEC_PACKAGE = REPO / "controller" / "spec"


def test_callers_import_the_spec_from_its_package_only():
    outside = [p for package in ("controller", "tests") for p in sources(package) if SPEC_PACKAGE not in p.parents]
    offenders = {str(p.relative_to(REPO)): sorted(spec_submodules_imported(p)) for p in outside}
    assert not {p: m for p, m in offenders.items() if m}, "import these from controller.spec (re-export them there)"
