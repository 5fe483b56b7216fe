"""A spec with a runtime_env, on a real local Ray: its variables reach the training process, its working_dir
is Ray's copy (the script runs there and reads its data file from there), and argv arrives exactly. No
TensorFlow: the script only writes what it saw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller import api
from controller.spec import parse_spec
from controller.state import JobState
from tests.integration.conftest import assert_nothing_left

pytestmark = pytest.mark.integration

SCRIPT = """\
import json, os, sys
seen = {"probe": os.environ.get("TFRAY_PROBE"), "cwd": os.getcwd(), "argv": sys.argv[1:],
        "data": open("data.txt").read(), "tf_config": os.environ.get("TF_CONFIG")}
with open(sys.argv[1], "w") as f:
    json.dump(seen, f)
"""
ARGV_TAIL = ["--layers", "64", "--layers", "32", "two words", ""]


def test_the_runtime_env_reaches_the_training_process(local_ray, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(SCRIPT)
    (code / "data.txt").write_text("from the working_dir")
    out = tmp_path / "seen.json"
    spec = parse_spec({
        "name": "runtime-env", "strategy": "multi_worker_mirrored",
        "roles": {"worker": {"count": 1, "resources": {"cpu": 0.5}}},
        "entrypoint": {"script": "code/train.py", "argv": [str(out), *ARGV_TAIL]},
        "env": {"TFRAY_PREIMPORT_TF": "0"},  # the script imports no TensorFlow: the launcher need not either
        "runtime_env": {"env_vars": {"TFRAY_PROBE": "set by Ray"}, "working_dir": "code"},
        "storage_path": str(tmp_path / "runs"),
        "timeouts": {"scheduling_s": 30, "startup_s": 60, "job_s": 90},
    }, base_dir=tmp_path)
    api.checked(spec)
    result = api.run_job(spec, [str(tmp_path)])
    assert result.state is JobState.SUCCEEDED, result.message
    seen = json.loads(out.read_text())
    assert seen["probe"] == "set by Ray"
    assert seen["argv"] == [str(out), *ARGV_TAIL]
    assert seen["data"] == "from the working_dir"
    copy = Path(seen["cwd"])  # Ray's unpacked copy of the working_dir, not the folder itself
    assert copy.resolve() != code.resolve() and (copy / "train.py").read_text() == SCRIPT
    assert json.loads(seen["tf_config"])["task"] == {"type": "worker", "index": 0}
    assert_nothing_left()
