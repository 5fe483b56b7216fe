"""A spec with a runtime_env, on a real local Ray: its variables reach the training process, its working_dir
is Ray's copy (the script runs there and reads its data file from there), and argv arrives exactly; without
one, the script runs in the first search folder. No TensorFlow: the script only writes what it saw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller import api
from controller.spec import parse_spec
from controller.states.state import JobState
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


def job(tmp_path: Path, name: str, out: Path, **extra):
    return parse_spec({
        "name": name, "strategy": "multi_worker_mirrored",
        "roles": {"worker": {"count": 1, "resources": {"cpu": 0.5}}},
        "entrypoint": {"script": "code/train.py", "argv": [str(out), *ARGV_TAIL]},
        "storage_path": str(tmp_path / "runs"),
        "timeouts": {"scheduling_s": 30, "startup_s": 60, "job_s": 90},
        **extra,
    }, base_dir=tmp_path)


def run(spec, sys_path: list[str], out: Path) -> dict:
    api.checked(spec)
    result = api.run_job(spec, sys_path)
    assert result.state is JobState.SUCCEEDED, result.message
    assert_nothing_left()
    return json.loads(out.read_text())


@pytest.fixture()
def code(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(SCRIPT)
    (tmp_path / "code" / "data.txt").write_text("from the working_dir")
    (tmp_path / "data.txt").write_text("from the first search folder")
    return tmp_path / "code"


def test_the_runtime_env_reaches_the_training_process(local_ray, tmp_path, code):
    out = tmp_path / "seen.json"
    spec = job(tmp_path, "runtime-env", out, env={"TFRAY_PREIMPORT_TF": "0"},  # no TF here: nor in the launcher
               runtime_env={"env_vars": {"TFRAY_PROBE": "set by Ray"}, "working_dir": "code"})
    seen = run(spec, [str(tmp_path)], out)
    assert seen["probe"] == "set by Ray"
    assert seen["argv"] == [str(out), *ARGV_TAIL]
    assert seen["data"] == "from the working_dir"
    copy = Path(seen["cwd"])  # Ray's unpacked copy of the working_dir, not the folder itself
    assert copy.resolve() != code.resolve() and (copy / "train.py").read_text() == SCRIPT
    assert json.loads(seen["tf_config"])["task"] == {"type": "worker", "index": 0}


def test_without_one_the_script_runs_in_the_first_search_folder(local_ray, tmp_path, code):
    out = tmp_path / "seen.json"
    spec = job(tmp_path, "no-runtime-env", out, env={"TFRAY_PREIMPORT_TF": "0", "TFRAY_PROBE": "set by env"})
    seen = run(spec, [str(tmp_path)], out)
    assert seen["probe"] == "set by env" and seen["argv"] == [str(out), *ARGV_TAIL]
    assert seen["cwd"] == str(tmp_path) and seen["data"] == "from the first search folder"
