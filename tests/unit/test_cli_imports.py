"""The commands that start nothing import nothing they do not use, so they answer at once.

Each command runs in a fresh interpreter, and what it imported is read from ``sys.modules`` afterwards: Ray,
pyarrow, TensorFlow, TensorBoard and gRPC are seconds of start-up, the Jobs API client's asyncio a tenth of
one, and the job spec's pydantic models a few tenths, which ``--help`` never needs. Which modules load is
what decides the time, and unlike a stopwatch it does not depend on how busy the machine is. The same goes
for work done once loaded: pydantic's search for plugins reads every installed distribution's entry points.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = "cluster_configs/jobs/digits_mwms.yaml"

PROBE = """
import importlib.metadata, json, sys
scanned = []  # the entry point groups read: each is a read of every installed distribution's metadata
read_entry_points = importlib.metadata.entry_points
def entry_points(**params):
    scanned.append(params.get("group"))
    return read_entry_points(**params)
importlib.metadata.entry_points = entry_points
from controller.cli.app import main
try:
    code = main(sys.argv[1:])
except SystemExit as end:  # --help ends through argparse
    code = end.code
print("\\n" + json.dumps({"code": code, "loaded": sorted(sys.modules), "scanned": scanned}))
"""

NEVER = {"ray", "pyarrow", "tensorflow", "tf_keras", "keras", "tensorboard", "grpc", "asyncio", "aiohttp"}
# Reading a spec and planning a dry run need a task's name and its GPUs (protocol.task_key, protocol.devices),
# not the whole wire protocol: its dozen dataclasses are a fiftieth of a second of start-up.
SPEC_NEVER = {"protocol.wire"}


def probe(*argv: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}  # pydantic as users have it
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env=env)
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["code"] == 0, out.stderr
    return result


def loaded_by(*argv: str) -> set[str]:
    """The packages a command imported, by their top-level names."""
    return {name.split(".")[0] for name in probe(*argv)["loaded"]}


@pytest.mark.parametrize("argv", [
    ("validate", SPEC),
    ("dry-run", SPEC),
    ("schema",),
    ("import-tfjob", "examples/imports/tfjob_mwms.yaml"),
    ("import-vertex", "examples/imports/vertex_pss.json"),
], ids=lambda argv: argv[0])
def test_a_command_that_starts_nothing_imports_no_runtime_and_looks_for_no_plugin(argv):
    result = probe(*argv)
    loaded = set(result["loaded"])
    assert not ({name.split(".")[0] for name in loaded} | loaded) & (NEVER | SPEC_NEVER)
    assert "pydantic" not in result["scanned"]


def test_help_imports_neither_the_spec_nor_a_runtime():
    for argv in (("--help",), ("run", "--help"), ("validate", "--help")):
        assert not loaded_by(*argv) & (NEVER | {"pydantic", "pydantic_core", "yaml"}), argv
