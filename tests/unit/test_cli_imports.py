"""The commands that start nothing import nothing they do not use, so they answer at once.

Each command runs in a fresh interpreter, and what it imported is read from ``sys.modules`` afterwards: Ray,
pyarrow, TensorFlow, TensorBoard and gRPC are seconds of start-up, the Jobs API client's asyncio a tenth of
one, and the job spec's pydantic models a few tenths, which ``--help`` never needs. Which modules load is
what decides the time, and unlike a stopwatch it does not depend on how busy the machine is.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = "cluster_configs/jobs/digits_mwms.yaml"

PROBE = """
import json, sys
from controller.cli.app import main
try:
    code = main(sys.argv[1:])
except SystemExit as end:  # --help ends through argparse
    code = end.code
loaded = sorted({name.split(".")[0] for name in sys.modules})
print("\\n" + json.dumps({"code": code, "loaded": loaded}))
"""

NEVER = {"ray", "pyarrow", "tensorflow", "tf_keras", "keras", "tensorboard", "grpc", "asyncio", "aiohttp"}


def loaded_by(*argv: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["code"] == 0, out.stderr
    return set(result["loaded"])


@pytest.mark.parametrize("argv", [
    ("validate", SPEC),
    ("dry-run", SPEC),
    ("schema",),
    ("import-tfjob", "examples/imports/tfjob_mwms.yaml"),
    ("import-vertex", "examples/imports/vertex_pss.json"),
], ids=lambda argv: argv[0])
def test_a_command_that_starts_nothing_imports_no_runtime(argv):
    assert not loaded_by(*argv) & NEVER


def test_help_imports_neither_the_spec_nor_a_runtime():
    for argv in (("--help",), ("run", "--help"), ("validate", "--help")):
        assert not loaded_by(*argv) & (NEVER | {"pydantic", "pydantic_core", "yaml"}), argv
