"""``tfray import-vertex`` on realistic CustomJobs (examples/imports/): the REST form, the `gcloud --config`
form and the Python SDK's snake_case; machine types through the table; every task's TF_CONFIG against the one
Vertex AI gives; what did not carry over; what it must refuse. Nothing starts."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from controller.cli.app import main
from controller.cli.exit_codes import EXIT_BAD_INPUT
from controller.importers.vertex import import_vertex
from controller.importers.vertex_machines import machine
from controller.spec import IMAGE_ENTRYPOINT
from tests.unit.dry_run_configs import dry_run_tf_configs

REPO = Path(__file__).resolve().parents[2]
PSS = REPO / "examples" / "imports" / "vertex_pss.json"
MWMS = REPO / "examples" / "imports" / "vertex_mwms.yaml"
POOLS = ("chief", "worker", "ps", "evaluator")


def custom_job(path: Path = PSS) -> dict:
    return yaml.safe_load(path.read_text())  # JSON is YAML


def vertex_tf_configs(job: dict) -> dict[tuple[str, int], dict]:
    """The TF_CONFIG Vertex AI gives each replica (cloud.google.com/ai-platform/training/docs/distributed-
    training-details): pools 0-2 as chief, worker and ps in the cluster, the evaluator left out of it; `job`
    and `environment` besides. The evaluator's own cluster is not compared: that is tfray's evaluator rule."""
    pools = (job.get("jobSpec") or job)["workerPoolSpecs"]
    counts = {POOLS[i]: int(pool.get("replicaCount", 1)) for i, pool in enumerate(pools) if pool}
    cluster = {role: [f"cmle-training-{role}-0123-{i}:2222" for i in range(n)] for role, n in counts.items()
               if role != "evaluator"}
    return {(role, i): {"cluster": cluster, "task": {"type": role, "index": i}, "environment": "cloud", "job": {}}
            for role, n in counts.items() for i in range(n)}


@pytest.mark.parametrize("path", [PSS, MWMS], ids=lambda p: p.name)
def test_every_task_gets_the_tf_config_vertex_gave_modulo_addresses(path):
    job = custom_job(path)
    ours = dry_run_tf_configs(import_vertex(job, str(path)).spec)
    theirs = vertex_tf_configs(job)
    assert set(ours) == set(theirs)
    for task, config in theirs.items():
        assert ours[task]["task"] == config["task"]
        if task[0] != "evaluator":
            assert ours[task]["cluster"] == {role: [f"{role}-{i}" for i in range(len(addresses))]
                                             for role, addresses in config["cluster"].items()}


def test_the_rest_form_becomes_this_spec():
    imported = import_vertex(custom_job(), "vertex_pss.json")
    t4 = {"accelerator_type:T4": 0.001}
    assert imported.spec == {
        "name": "criteo-PSS-nightly",
        "strategy": "parameter_server",
        "roles": {  # n2-standard-8, n1-standard-16 + 2 T4, n2-highmem-4, e2-standard-4: 60 % of the memory
            "chief": {"count": 1, "resources": {"cpu": 8, "memory_mb": int(32 * 1024 * 0.6)}},
            "worker": {"count": 4, "resources": {"cpu": 16, "memory_mb": int(60 * 1024 * 0.6), "gpu": 2,
                                                 "custom": t4}},
            "ps": {"count": 2, "resources": {"cpu": 4, "memory_mb": int(32 * 1024 * 0.6)}},
            "evaluator": {"count": 1, "resources": {"cpu": 4, "memory_mb": int(16 * 1024 * 0.6)}},
        },
        "entrypoint": {"module": "trainer.task", "argv": ["--steps", "20000", "--batch_size", "1024", "--data_dir",
                                                          "gs://acme-ml/criteo/data"]},
        "env": {"TF_CPP_MIN_LOG_LEVEL": "1"},
        "storage_path": "gs://acme-ml/criteo/runs",
        "timeouts": {"job_s": 86400},
    }
    not_carried = "\n".join(imported.not_carried)
    for what in ("containerSpec.imageUri us-docker.pkg.dev/acme-ml/train/criteo:2.21.0 (chief, worker, ps, "
                 "evaluator)", "diskSpec", "jobSpec.scheduling.strategy SPOT", "jobSpec.serviceAccount",
                 "jobSpec.network", "jobSpec.tensorboard", "jobSpec.enableWebAccess", "labels"):
        assert what in not_carried, what


def snake_case(data):
    if isinstance(data, list):
        return [snake_case(item) for item in data]
    if not isinstance(data, dict):
        return data
    return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v if k == "env" else snake_case(v)
            for k, v in data.items()}


def test_the_gcloud_and_sdk_forms_say_the_same():
    rest = import_vertex(custom_job(), "rest").spec
    gcloud = {**copy.deepcopy(custom_job()["jobSpec"]), "displayName": "criteo PSS (nightly)"}
    assert import_vertex(gcloud, "gcloud").spec == rest
    sdk = snake_case(custom_job())
    assert "worker_pool_specs" in sdk["job_spec"] and import_vertex(sdk, "sdk").spec == rest


# `gcloud ai custom-jobs create --config config.yaml` as Vertex AI's docs write it: one pool, no command, the
# image's ENTRYPOINT runs (here with flags).
GCLOUD_CONFIG = """\
workerPoolSpecs:
  machineSpec:
    machineType: n1-standard-4
    acceleratorType: NVIDIA_TESLA_T4
    acceleratorCount: 1
  replicaCount: 1
  containerSpec:
    imageUri: us-central1-docker.pkg.dev/acme-ml/train/census:latest
    args: ["--epochs=5", "--job-dir=gs://acme-ml/census"]
"""
# The Python SDK's worker_pool_specs, as CustomJob(worker_pool_specs=[...]) takes them, written to YAML: the
# command line in args, no command.
SDK_POOLS = """\
- machine_spec: {machine_type: n1-standard-8}
  replica_count: 1
  container_spec:
    image_uri: us-docker.pkg.dev/acme-ml/train/criteo:2.21.0
    command: []
    args: [python3, /trainer/train.py, --steps, "20000"]
- machine_spec: {machine_type: n1-standard-8}
  replica_count: 2
  container_spec:
    image_uri: us-docker.pkg.dev/acme-ml/train/criteo:2.21.0
    args: [python3, /trainer/train.py, --steps, "20000"]
"""


def test_a_gcloud_config_without_a_command_is_imported_with_the_entrypoint_to_fill_in(tmp_path, capsys):
    source, out = tmp_path / "config.yaml", tmp_path / "job.yaml"
    source.write_text(GCLOUD_CONFIG)
    assert main(["import-vertex", str(source), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("not carried over: workerPoolSpecs[0].containerSpec: no command, so the image's own ENTRYPOINT ran"
            in err), err
    spec = yaml.safe_load(out.read_text())
    assert spec["name"] == "config" and spec["roles"]["chief"]["resources"]["gpu"] == 1
    assert spec["entrypoint"] == {"script": IMAGE_ENTRYPOINT, "argv": ["--epochs=5", "--job-dir=gs://acme-ml/census"]}
    assert main(["validate", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"entrypoint.script: {IMAGE_ENTRYPOINT} is left to fill in" in err and "Traceback" not in err, err


def test_the_sdks_bare_list_of_pools_with_the_command_line_in_args_is_read(tmp_path, capsys):
    source, out = tmp_path / "pools.yaml", tmp_path / "job.yaml"
    source.write_text(SDK_POOLS)
    assert main(["import-vertex", str(source), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no command: args python3 /trainer/train.py ... is taken as the command line" in err, err
    spec = yaml.safe_load(out.read_text())
    assert spec["strategy"] == "multi_worker_mirrored" and spec["roles"]["worker"]["count"] == 2
    assert spec["entrypoint"] == {"script": "train.py", "argv": ["--steps", "20000"]}
    (tmp_path / "train.py").write_text("print('train')\n")
    assert main(["validate", str(out)]) == 0


def test_a_python_package_job_validates_once_its_module_is_in_place(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bert.yaml"
    assert main(["import-vertex", str(MWMS), "-o", str(out)]) == 0
    text = out.read_text()
    assert "pythonPackageSpec.packageUris" in text and "runtime_env.py_modules" in text  # what to do instead
    spec = yaml.safe_load(text)
    assert spec["strategy"] == "multi_worker_mirrored" and spec["roles"]["worker"]["count"] == 3
    assert spec["roles"]["chief"]["resources"] == {"cpu": 24, "memory_mb": machine("a2-highgpu-2g").memory_mb,
                                                   "gpu": 2, "custom": {"accelerator_type:A100": 0.001}}
    assert spec["entrypoint"] == {"module": "bert_trainer.task", "argv": [
        "--epochs=3", "--learning_rate=3e-5", "--train_files=gs://acme-ml/glue/train-*.tfrecord"]}
    assert main(["validate", str(out)]) == EXIT_BAD_INPUT  # bert_trainer is not here yet
    (tmp_path / "bert_trainer").mkdir()
    (tmp_path / "bert_trainer" / "__init__.py").write_text("")
    (tmp_path / "bert_trainer" / "task.py").write_text("print('train')\n")
    assert main(["validate", str(out)]) == 0
    assert "not carried over: pythonPackageSpec.executorImageUri" in capsys.readouterr().err


@pytest.mark.parametrize("name, cpus, gib, gpus", [("n1-standard-4", 4, 15, 0), ("n1-highmem-16", 16, 104, 0),
                                                   ("n2-highcpu-32", 32, 32, 0), ("e2-standard-32", 32, 128, 0),
                                                   ("a2-megagpu-16g", 96, 1360, 16), ("g2-standard-24", 24, 96, 2),
                                                   ("a3-highgpu-8g", 208, 1872, 8)])
def test_machine_types_from_the_table(name, cpus, gib, gpus):
    shape = machine(name)
    assert (shape.cpus, shape.memory_gib, shape.gpus) == (cpus, gib, gpus)
    assert shape.memory_mb == int(gib * 1024 * 0.6)


def pool(index: int, **changes):
    def change(job):
        job["jobSpec"]["workerPoolSpecs"][index].update(changes)
    return change


BAD = [
    ("not a mapping", lambda job: job.clear() or job.update({"workerPoolSpecs": "chief"}), "workerPoolSpecs must"),
    ("five pools", lambda job: job["jobSpec"]["workerPoolSpecs"].append({}), "1 to 4 worker pools"),
    ("an unknown machine type", pool(1, machineSpec={"machineType": "n9-mega-7"}),
     "workerPoolSpecs[1].machineSpec.machineType: 'n9-mega-7' is not in tfray's table"),
    ("a TPU", pool(1, machineSpec={"machineType": "n1-standard-8", "acceleratorType": "TPU_V3", "acceleratorCount": 8}),
     "acceleratorType TPU_V3"),
    ("two primary replicas", pool(0, replicaCount="2"), "workerPoolSpecs[0].replicaCount: 2"),
    ("a count that is not one", pool(1, replicaCount="many"), "workerPoolSpecs[1].replicaCount: 'many'"),
    ("no primary replica", lambda job: job["jobSpec"]["workerPoolSpecs"].__setitem__(0, {}),
     "workerPoolSpecs[0] is empty"),
    ("container and package", pool(0, pythonPackageSpec={"pythonModule": "a.b"}), "one of them"),
    ("a package without its module", pool(0, containerSpec=None, pythonPackageSpec={"args": []}), "pythonModule"),
    ("a timeout that is not one", lambda job: job["jobSpec"]["scheduling"].update(timeout="1 day"),
     "scheduling.timeout: '1 day'"),
    ("PS with no workers", lambda job: job["jobSpec"]["workerPoolSpecs"].__setitem__(1, {}),
     "parameter_server needs at least one worker"),
]


@pytest.mark.parametrize("label, change, expected", BAD, ids=[b[0] for b in BAD])
def test_a_custom_job_that_cannot_be_imported_is_refused_naming_the_field(tmp_path, capsys, label, change, expected):
    job = custom_job()
    change(job)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    assert main(["import-vertex", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and str(path) in err.splitlines()[0], err


def test_the_documented_table_is_the_one_the_importer_uses():
    from controller.importers.vertex_machines import markdown_table

    assert markdown_table() in (REPO / "docs" / "migrating.md").read_text()
