"""The controller never imports TensorFlow: prove it in a process where TF cannot be imported."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
for name in ("tensorflow", "tf_keras", "keras"):
    sys.modules[name] = None  # any import of these now raises ImportError
import pkgutil, importlib, controller, protocol
for package in (controller, protocol):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)  # every module of the controller and of the protocol
import workers.task_actor, workers.context  # what the driver's Ray loads of the actor side
from controller.cli.app import main
rc = main(["dry-run", "cluster_configs/jobs/digits_mwms.yaml"])
assert rc == 0, rc
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras") and sys.modules[m])
assert not loaded, loaded
print("no tensorflow")
"""


def test_controller_imports_without_tensorflow():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no tensorflow" in out.stdout
