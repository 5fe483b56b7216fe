"""``tfray import-tfjob`` on realistic TFJob manifests (examples/imports/): the spec each becomes, every task's
TF_CONFIG against the one Kubeflow's training operator gave (modulo addresses and the evaluator rule), what did
not carry over (at the top of the spec and on stderr), and manifests it must refuse. Nothing starts."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import yaml

from controller.cli.app import main
from controller.cli.exit_codes import EXIT_BAD_INPUT
from controller.importers.tfjob import import_tfjob
from controller.spec import IMAGE_ENTRYPOINT
from tests.unit.dry_run_configs import dry_run_tf_configs

REPO = Path(__file__).resolve().parents[2]
PSS = REPO / "examples" / "imports" / "tfjob_pss.yaml"
MWMS = REPO / "examples" / "imports" / "tfjob_mwms.yaml"
SERVED = REPO / "examples" / "imports" / "tfjob_mwms_kubectl.yaml"  # MWMS as `kubectl get tfjob -o yaml` returns it


def manifest(path: Path = PSS) -> dict:
    return yaml.safe_load(path.read_text())


def operator_tf_configs(tfjob: dict) -> dict[tuple[str, int], dict]:
    """The TF_CONFIG the training operator gives each replica (kubeflow/training-operator,
    pkg/controller.v1/tensorflow/tensorflow.go: genClusterSpec and genTFConfigJSONStr): every replica type,
    the evaluator too, lowercased, at <job>-<type>-<i>.<namespace>.svc:<port, 2222 by default>."""
    name, namespace = tfjob["metadata"]["name"], tfjob["metadata"].get("namespace", "default")
    cluster = {rtype.lower(): [f"{name}-{rtype.lower()}-{i}.{namespace}.svc:2222"
                               for i in range(spec.get("replicas", 1))]
               for rtype, spec in tfjob["spec"]["tfReplicaSpecs"].items()}
    return {(rtype, i): {"cluster": cluster, "task": {"type": rtype, "index": i}, "environment": "cloud"}
            for rtype, addresses in cluster.items() for i in range(len(addresses))}


def modulo_addresses_and_the_evaluator_rule(config: dict) -> dict:
    """The operator's TF_CONFIG as tfray words it: an address by its place (role-index), a master called chief,
    no `environment`, and the evaluator out of the training cluster with a cluster of its own (docs/design.md §4)."""
    def ours(task_type: str) -> str:
        return "chief" if task_type == "master" else task_type

    role = ours(config["task"]["type"])
    if role == "evaluator":
        cluster = {"evaluator": ["evaluator-0"]}
    else:
        cluster = {ours(t): [f"{ours(t)}-{i}" for i in range(len(addresses))]
                   for t, addresses in config["cluster"].items() if t != "evaluator"}
    return {"cluster": cluster, "task": {"type": role, "index": config["task"]["index"]}}


@pytest.mark.parametrize("path", [PSS, MWMS], ids=lambda p: p.name)
def test_every_task_gets_the_tf_config_the_operator_gave_modulo_addresses_and_the_evaluator_rule(path):
    tfjob = manifest(path)
    ours = dry_run_tf_configs(import_tfjob(tfjob, str(path)).spec)
    theirs = [modulo_addresses_and_the_evaluator_rule(c) for c in operator_tf_configs(tfjob).values()]
    assert ours == {(c["task"]["type"], c["task"]["index"]): c for c in theirs}
    raw = operator_tf_configs(tfjob)
    if any(role == "evaluator" for role, _ in raw):  # the rule is real: the operator listed the evaluator
        assert all("evaluator" in c["cluster"] for c in raw.values())
        assert all("evaluator" not in c["cluster"] for (role, _), c in ours.items() if role != "evaluator")


def test_the_pss_manifest_becomes_this_spec():
    """Every role; resources from limits, else requests, in every unit form; the chief's exact command line."""
    imported = import_tfjob(manifest(), "tfjob_pss.yaml")
    assert imported.spec == {
        "name": "criteo-pss",
        "strategy": "parameter_server",
        "roles": {
            "chief": {"count": 1, "resources": {"cpu": 4, "memory_mb": 8192}},  # limits "4", 8Gi
            "worker": {"count": 3, "resources": {"cpu": 1.5, "memory_mb": 5723, "gpu": 1}},  # requests 1500m, 6G
            "ps": {"count": 2, "resources": {"cpu": 0.5, "memory_mb": 3072}},  # requests 500m, 3072Mi
            "evaluator": {"count": 1, "resources": {"cpu": 1, "memory_mb": 1908}},  # limits 1, 2000000000 bytes
        },
        "entrypoint": {"script": "train.py", "argv": ["--data_dir=/data/criteo", "--model_dir",
                                                      "gs://acme-ml/criteo/model", "--steps", "20000",
                                                      "--batch_size", "1024"]},
        "env": {"TF_CPP_MIN_LOG_LEVEL": "1"},
        "timeouts": {"job_s": 14400},
        "failure": {"max_task_failures": 5, "max_infrastructure_failures": 5},
    }


def test_the_mwms_manifest_becomes_this_spec():
    imported = import_tfjob(manifest(MWMS), "tfjob_mwms.yaml")
    assert imported.spec["strategy"] == "multi_worker_mirrored"
    assert imported.spec["roles"] == {"chief": {"count": 1, "resources": {"cpu": 16, "memory_mb": 57221, "gpu": 2}},
                                      "worker": {"count": 2, "resources": {"cpu": 16, "memory_mb": 57221, "gpu": 2}}}
    assert imported.spec["entrypoint"] == {"module": "trainer.task", "argv": [
        "--epochs=90", "--per_replica_batch=128", "--data=/data/imagenet-subset"]}
    assert imported.spec["env"] == {"PYTHONUNBUFFERED": "1", "NCCL_DEBUG": "WARN",
                                    "TF_GPU_ALLOCATOR": "cuda_malloc_async"}
    assert any("TF_CONFIG task type is chief, where the operator wrote master" in c for c in imported.changed)


PSS_NOT_CARRIED = [  # (what, in the line that lists it)
    "containers[tensorflow].image gcr.io/acme-ml/criteo-trainer:2.21.0 (Chief, Worker, PS, Evaluator)",
    "template.spec.volumes", "volumeMounts", "template.spec.nodeSelector", "template.spec.tolerations",
    "spec.runPolicy.cleanPodPolicy Running", "spec.runPolicy.schedulingPolicy", "ttlSecondsAfterFinished",
    "serviceAccountName criteo-trainer (Chief)", "env.WANDB_API_KEY: comes from secretKeyRef",
    "Evaluator.template.spec.containers[tensorflow]: runs evaluate.py", "metadata.namespace ml-training",
    "containers[tensorflow].ports",
]


def test_what_did_not_carry_over_is_at_the_top_of_the_spec_and_on_stderr(tmp_path, capsys):
    out = tmp_path / "criteo.yaml"
    assert main(["import-tfjob", str(PSS), "-o", str(out)]) == 0
    header = out.read_text().split("\nname: ", 1)[0]
    err = capsys.readouterr().err
    for what in PSS_NOT_CARRIED:
        assert what in header.replace("\n#     ", " "), what
        assert what in err, what
    assert "restartPolicy Never (PS): cannot be kept for one role" in err
    assert "a ps task runs no code of yours under tfray" in err


# What the API server, the training operator's defaulting and pod-template defaults wrote into SERVED.
SERVER_FILLED = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink",
                 "last-applied-configuration", "status", "namespace default", "cleanPodPolicy None", "suspend",
                 "successPolicy", "tfjob-port", "terminationMessagePath", "terminationMessagePolicy", "dnsPolicy",
                 "restartPolicy Always", "schedulerName", "securityContext", "terminationGracePeriodSeconds",
                 "enableServiceLinks", "imagePullPolicy", "resources {}")


def test_a_tfjob_as_the_api_server_returns_it_lists_only_what_its_author_wrote(monkeypatch, capsys):
    """`kubectl get tfjob NAME -o yaml | tfray import-tfjob -`: the server's fields are not the author's."""
    written = import_tfjob(manifest(MWMS), "tfjob_mwms.yaml")
    monkeypatch.setattr("sys.stdin", io.StringIO(SERVED.read_text()))
    assert main(["import-tfjob", "-"]) == 0
    out, err = capsys.readouterr()
    assert yaml.safe_load(out) == written.spec
    not_carried = [line.removeprefix("not carried over: ") for line in err.splitlines()
                   if line.startswith("not carried over: ")]
    for line in not_carried:
        assert not any(field in line for field in SERVER_FILLED), line
    # The same list as for the file its author wrote (the operator spells the replica type master as Master).
    assert sorted(map(str.lower, not_carried)) == sorted(map(str.lower, written.not_carried))
    served = import_tfjob(manifest(SERVED), "stdin")
    assert sorted(map(str.lower, served.changed)) == sorted(map(str.lower, written.changed))


def test_the_written_spec_validates_once_the_code_is_in_place(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for source, code in ((PSS, {"train.py": "print('train')\n"}),
                         (MWMS, {"trainer/__init__.py": "", "trainer/task.py": "print('task')\n"})):
        out = tmp_path / f"{source.stem}.yaml"
        assert main(["import-tfjob", str(source), "-o", str(out)]) == 0
        assert main(["validate", str(out)]) == EXIT_BAD_INPUT  # the code is not there yet, and it says so
        assert "entrypoint" in capsys.readouterr().err
        for name, text in code.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
        assert main(["validate", str(out)]) == 0
        assert main(["dry-run", str(out)]) == 0
    assert "argv [\"--epochs=90\"" in capsys.readouterr().out


# Kubeflow training-operator v1.9, examples/tensorflow/distribution_strategy/keras-API/multi_worker_tfjob.yaml, as
# published: no command, so the image's ENTRYPOINT (python /multi_worker_strategy-with-keras.py) runs.
KERAS_MULTI_WORKER = """\
apiVersion: kubeflow.org/v1
kind: TFJob
metadata:
  name: multi-worker
spec:
  runPolicy:
    cleanPodPolicy: None
  tfReplicaSpecs:
    Worker:
      replicas: 2
      restartPolicy: Never
      template:
        spec:
          containers:
            - name: tensorflow
              image: kubeflowimages/multi_worker_strategy:v20200522-2a5b081c
              volumeMounts:
                - mountPath: /train
                  name: training
              resources:
                limits:
                  nvidia.com/gpu: 1
          volumes:
            - name: training
              persistentVolumeClaim:
                claimName: strategy-volume
"""
# Its sibling examples/tensorflow/dist-mnist/tf_job_mnist.yaml: no command either, and a TF1 layout (PS, no Chief).
DIST_MNIST = """\
apiVersion: "kubeflow.org/v1"
kind: "TFJob"
metadata:
  name: "dist-mnist-for-e2e-test"
spec:
  tfReplicaSpecs:
    PS:
      replicas: 2
      restartPolicy: Never
      template:
        spec:
          containers:
            - name: tensorflow
              image: kubeflow/tf-dist-mnist-test:1.0
    Worker:
      replicas: 4
      restartPolicy: Never
      template:
        spec:
          containers:
            - name: tensorflow
              image: kubeflow/tf-dist-mnist-test:1.0
"""


def test_a_tfjob_that_runs_its_images_entrypoint_is_imported_with_the_entrypoint_to_fill_in(tmp_path, capsys):
    source, out = tmp_path / "multi_worker_tfjob.yaml", tmp_path / "job.yaml"
    source.write_text(KERAS_MULTI_WORKER)
    assert main(["import-tfjob", str(source), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    said = ("not carried over: Worker.template.spec.containers[tensorflow]: no command, so the image's own "
            f"ENTRYPOINT ran, and the manifest does not say what it is: entrypoint.script is {IMAGE_ENTRYPOINT}")
    assert said in err and "fill in entrypoint.script" in err, err
    spec = yaml.safe_load(out.read_text())
    assert spec["entrypoint"] == {"script": IMAGE_ENTRYPOINT}
    assert spec["roles"] == {"worker": {"count": 2, "resources": {"gpu": 1}}}
    assert "no command, so the image's own ENTRYPOINT ran" in out.read_text()  # at the top of the spec too
    for command in (["validate", str(out)], ["dry-run", str(out)]):
        assert main(command) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert f"entrypoint.script: {IMAGE_ENTRYPOINT} is left to fill in" in err and "Traceback" not in err, err
        assert "set entrypoint.script to the Python script it runs" in err
    out.write_text(out.read_text().replace(IMAGE_ENTRYPOINT, "train.py"))
    (tmp_path / "train.py").write_text("print('train')\n")
    assert main(["validate", str(out)]) == 0


def test_a_tf1_layout_without_a_command_is_refused_for_its_layout_not_its_command(tmp_path, capsys):
    source = tmp_path / "tf_job_mnist.yaml"
    source.write_text(DIST_MNIST)
    assert main(["import-tfjob", str(source)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "has PS but no Chief" in err and "command" not in err, err


def test_an_existing_spec_is_not_replaced_without_force(tmp_path, capsys):
    out = tmp_path / "job.yaml"
    out.write_text("mine\n")
    assert main(["import-tfjob", str(PSS), "-o", str(out)]) == EXIT_BAD_INPUT
    assert out.read_text() == "mine\n" and "pass --force" in capsys.readouterr().err
    assert main(["import-tfjob", str(PSS), "-o", str(out), "--force"]) == 0


def with_replicas(policy: str | None = None, **replica_changes) -> dict:
    tfjob = manifest(MWMS)
    for replica in tfjob["spec"]["tfReplicaSpecs"].values():
        replica.pop("restartPolicy")
        if policy:
            replica["restartPolicy"] = policy
        replica.update(replica_changes)
    return tfjob


def test_never_restarting_everywhere_is_budgets_of_zero():
    """Never is the operator's default: the first failure ends the job, so tfray's budgets are all 0."""
    for tfjob in (with_replicas(), with_replicas("Never")):
        imported = import_tfjob(tfjob, "t.yaml")
        assert imported.spec["failure"] == {"max_preemptions": 0, "max_task_failures": 0,
                                            "max_infrastructure_failures": 0}
        assert any("every budget is 0" in c for c in imported.changed)
    on_failure = import_tfjob(with_replicas("OnFailure"), "t.yaml")
    assert on_failure.spec["failure"] == {"max_task_failures": 3, "max_infrastructure_failures": 3}  # backoffLimit
    assert any("an exception in your code fails the job at once" in c for c in on_failure.changed)


def bad(change) -> dict:
    tfjob = manifest()
    change(tfjob)
    return tfjob


REPLICAS = ("spec", "tfReplicaSpecs")


def _set(path, value):
    def change(tfjob):
        node = tfjob
        for key in path[:-1]:
            node = node[key]
        if value is ...:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return change


CONTAINER = (*REPLICAS, "Chief", "template", "spec", "containers", 0)
BAD = [
    ("not a TFJob", _set(("kind",), "PyTorchJob"), "kind is 'PyTorchJob', not TFJob"),
    ("no replicas", _set(REPLICAS, ...), "spec.tfReplicaSpecs is missing"),
    ("an unknown replica type", _set((*REPLICAS, "Launcher"), {"replicas": 1}), "tfReplicaSpecs.Launcher: not a"),
    ("Chief and Master", _set((*REPLICAS, "Master"), copy.deepcopy(manifest()["spec"]["tfReplicaSpecs"]["Chief"])),
     "a second chief replica type"),
    ("two chiefs", _set((*REPLICAS, "Chief", "replicas"), 2), "tfReplicaSpecs.Chief.replicas: 2 chiefs"),
    ("a negative count", _set((*REPLICAS, "Worker", "replicas"), -1), "tfReplicaSpecs.Worker.replicas"),
    ("PS without a chief", _set((*REPLICAS, "Chief"), ...), "has PS but no Chief"),
    ("no containers", _set((*REPLICAS, "PS", "template", "spec", "containers"), []), "PS.template.spec.containers"),
    ("a shell pipeline", _set((*CONTAINER, "command"), ["sh", "-c", "python train.py | tee log"]),
     "runs a shell script"),
    ("cpu not a quantity", _set((*CONTAINER, "resources"), {"limits": {"cpu": "four"}}),
     "Chief.template.spec.containers[tensorflow].resources.limits.cpu: 'four' is not a Kubernetes quantity"),
    ("an unknown restartPolicy", _set((*REPLICAS, "Worker", "restartPolicy"), "Sometimes"),
     "tfReplicaSpecs.Worker.restartPolicy: 'Sometimes'"),
    ("a deadline of 0", _set(("spec", "runPolicy", "activeDeadlineSeconds"), 0), "activeDeadlineSeconds"),
]


@pytest.mark.parametrize("label, change, expected", BAD, ids=[b[0] for b in BAD])
def test_a_manifest_that_cannot_be_imported_is_refused_naming_the_field(tmp_path, capsys, label, change, expected):
    path = tmp_path / "tfjob.yaml"
    path.write_text(yaml.safe_dump(bad(change)))
    assert main(["import-tfjob", str(path), "-o", str(tmp_path / "job.yaml")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and expected in err and "Traceback" not in err, err
    assert not (tmp_path / "job.yaml").exists()
