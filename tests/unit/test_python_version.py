"""One lowest Python, stated alike in pyproject.toml, the README and the cluster nodes' setup.

The lowest is set by the pins every cluster node installs (cluster_configs/constraints.txt): a
Python that pyproject allows but a pinned package does not would fail on the first `pip install`.
"""

from __future__ import annotations

import re
from importlib.metadata import metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]


def lowest_python() -> str:
    tomllib = pytest.importorskip("tomllib")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    found = re.fullmatch(r">=\s*(3\.\d+)", requires)
    assert found, f"pyproject.toml requires-python is {requires!r}: write it as '>=3.N'"
    return found.group(1)


def pins() -> dict[str, str]:
    lines = (REPO / "cluster_configs" / "constraints.txt").read_text().splitlines()
    return dict(line.strip().split("==") for line in lines if line.strip() and not line.startswith("#"))


def test_every_pinned_package_installs_on_the_lowest_python_pyproject_allows():
    lowest = lowest_python()
    refused = {}
    for name, version in pins().items():
        requires = metadata(name).get("Requires-Python")
        if requires and lowest not in SpecifierSet(requires):
            refused[f"{name}=={version}"] = requires
    assert not refused, (f"pyproject.toml allows Python {lowest}, but these pins of cluster_configs/constraints.txt "
                         f"need more: {refused}; raise requires-python (and the README and node_setup.sh with it)")


def test_the_readme_and_the_node_setup_state_the_same_lowest_python():
    lowest = lowest_python()
    major, minor = lowest.split(".")
    readme = (REPO / "README.md").read_text()
    stated = set(re.findall(r"Python >= (3\.\d+)", readme))
    assert stated == {lowest}, f"README.md states Python >= {sorted(stated)}; pyproject.toml says {lowest}"
    setup = (REPO / "cluster_configs" / "node_setup.sh").read_text()
    assert f"sys.version_info >= ({major}, {minor})" in setup and f"need >= {lowest}" in setup
