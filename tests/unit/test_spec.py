"""Spec validation: good specs load, every kind of bad input is rejected with its field path."""

import textwrap
from pathlib import Path

import pytest

from controller.spec import Role, SpecError, Strategy, check_entrypoint, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "name": "job",
    "strategy": "multi_worker_mirrored",
    "roles": {"chief": {"count": 1}, "worker": {"count": 2, "resources": {"cpu": 0.5, "custom": {"spot": 1}}}},
    "entrypoint": {"function": "examples.digits:train", "args": {"epochs": 2}},
}


def with_(**changes):
    return {**GOOD, **changes}


def test_good_spec_loads_with_defaults():
    spec = parse_spec(GOOD)
    assert spec.strategy is Strategy.MULTI_WORKER_MIRRORED
    assert spec.counts() == {Role.CHIEF: 1, Role.WORKER: 2, Role.PS: 0, Role.EVALUATOR: 0,
                             Role.DATA_DISPATCHER: 0, Role.DATA_WORKER: 0}
    assert spec.roles[Role.WORKER].resources.as_bundle() == {"CPU": 0.5, "spot": 1}
    assert spec.checkpoint.keep == 3 and spec.timeouts.scheduling_s > 0


@pytest.mark.parametrize("path", sorted((REPO / "cluster_configs" / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_job_specs_are_valid(path):
    spec = load_spec(path)
    check_entrypoint(spec, [str(REPO)])


def test_relative_paths_resolve_against_the_spec_folder(tmp_path):
    (tmp_path / "job.yaml").write_text("name: j\nstrategy: one_device\nroles: {chief: {count: 1}}\n"
                                       "entrypoint: {script: train.py}\nstorage_path: out\n")
    spec = load_spec(tmp_path / "job.yaml")
    assert spec.job_dir == tmp_path / "out" / "j"
    assert spec.resolve("train.py") == tmp_path / "train.py"


def test_every_field_is_described():
    from controller.spec import JobSpec

    schema = JobSpec.model_json_schema()
    missing = []
    for name, model in [("JobSpec", schema)] + list(schema.get("$defs", {}).items()):
        for field, body in model.get("properties", {}).items():
            if "description" not in body:
                missing.append(f"{name}.{field}")
    assert not missing, f"fields without a description: {missing}"


@pytest.mark.parametrize(
    "data, expected",
    [
        (with_(bogus=1), "bogus: unknown key"),
        (with_(roles={"chief": {"count": 1, "cnt": 2}}), "roles.chief.cnt: unknown key"),
        (with_(strategy="horovod"), "strategy: Input should be"),
        (with_(roles={"chief": {"count": 2}}), "at most one chief"),
        (with_(roles={"worker": {"count": -1}}), "roles.worker.count"),
        (with_(roles={"boss": {"count": 1}}), "roles.boss"),
        (with_(roles={"worker": {"count": 0}}), "at least one chief or worker"),
        (with_(roles={"worker": {"count": 1}, "ps": {"count": 1}}), "no parameter servers"),
        (with_(strategy="parameter_server"), "roles.ps: parameter_server needs at least one ps"),
        (with_(strategy="parameter_server", roles={"chief": {"count": 1}, "ps": {"count": 1}}),
         "parameter_server needs at least one worker"),
        (with_(strategy="parameter_server", roles={"worker": {"count": 1}, "ps": {"count": 1}}),
         "parameter_server needs exactly one chief"),
        (with_(strategy="parameter_server", roles={"chief": {"count": 1}, "worker": {"count": 1}, "ps": {"count": 1},
                                                   "evaluator": {"count": 2}}), "at most one evaluator"),
        (with_(strategy="mirrored"), "runs in one process"),
        (with_(entrypoint={"function": "nocolon"}), "must look like 'package.module:function'"),
        (with_(entrypoint={"function": "a:b", "script": "x.py"}), "set exactly one of"),
        (with_(entrypoint={}), "set exactly one of"),
        (with_(name="has space"), "name 'has space'"),
        (with_(roles={"worker": {"count": 1, "resources": {"cpu": 0}}}), "must reserve some resource"),
        (with_(roles={"worker": {"count": 1, "resources": {"custom": {"CPU": 1}}}}), "built-in resource"),
        (with_(timeouts={"scheduling_s": 0}), "timeouts.scheduling_s"),
        ({k: v for k, v in GOOD.items() if k != "entrypoint"}, "entrypoint: required field is missing"),
        (with_(faults=[{"task": "worker-5", "action": "kill", "at_step": 1}]), "the job has no task worker-5"),
        (with_(faults=[{"task": "worker-1", "action": "kill"}]), "set exactly one of at_step, at_save or after_s"),
        (with_(faults=[{"task": "boss-1", "action": "kill", "at_step": 1}]), "use role-index, e.g. worker-1"),
        (with_(faults=[{"task": "worker-1", "action": "explode", "at_step": 1}]), "faults.0.action"),
    ],
)
def test_bad_specs_are_rejected_with_the_field_path(data, expected):
    with pytest.raises(SpecError) as err:
        parse_spec(data, source="job.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("job.yaml: the job spec is not valid")


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such job spec file"):
        load_spec(tmp_path / "nope.yaml")


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)


def test_yaml_that_is_not_a_mapping(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(bad)


@pytest.mark.parametrize(
    "entrypoint, expected",
    [
        ({"function": "no_such_module_xyz:train"}, "cannot find module 'no_such_module_xyz'"),
        ({"function": "examples.digits:no_such_function"}, "defines no top-level 'no_such_function'"),
        ({"script": "missing_script.py"}, "'missing_script.py' does not exist"),
        ({"module": "no_such_module_xyz.train"}, "cannot find module"),
    ],
)
def test_entrypoints_that_cannot_be_found(entrypoint, expected, tmp_path):
    spec = parse_spec(with_(entrypoint=entrypoint), base_dir=tmp_path)
    with pytest.raises(SpecError, match=expected):
        check_entrypoint(spec, [str(REPO)])


def test_entrypoint_check_does_not_run_user_code(tmp_path):
    (tmp_path / "boom.py").write_text(textwrap.dedent("""
        raise SystemExit("imported!")
        def train(ctx):
            pass
    """))
    spec = parse_spec(with_(entrypoint={"function": "boom:train"}), base_dir=tmp_path)
    check_entrypoint(spec, [str(tmp_path)])  # found by parsing, never executed


@pytest.mark.parametrize("text, fields", [
    ("worker-1:kill@step=50", {"task": "worker-1", "action": "kill", "at_step": 50}),
    ("ps-0:hang@after=2.5@restart=1", {"task": "ps-0", "action": "hang", "after_s": 2.5, "restart": 1}),
])
def test_fault_command_line_form(text, fields):
    from controller.spec import FaultSpec

    parsed = FaultSpec.parse(text).model_dump(mode="json", exclude_none=True)
    assert parsed == {"restart": 0, **fields}


def test_bad_fault_command_line_form():
    from controller.spec import FaultSpec

    with pytest.raises(ValueError, match="must look like TASK:ACTION@WHEN, e.g. worker-1:kill@step=50"):
        FaultSpec.parse("worker-1 kill")


EXACT_ARGV = ["--epochs", "3", "--layers=64", "--layers=32", "data dir/", "", "--", "--not-a-flag"]


def test_argv_reaches_the_launch_exactly_as_given(tmp_path):
    from controller.plan.dry_run import render_plan
    from controller.plan.launch import build_launches
    from controller.plan.tasks import plan

    (tmp_path / "train.py").write_text("print('hi')\n")
    spec = parse_spec(with_(entrypoint={"script": "train.py", "argv": EXACT_ARGV}), base_dir=tmp_path)
    tasks = plan(spec)
    launches = build_launches(spec, tasks, {t.key: f"h:{i}" for i, t in enumerate(tasks)}, {}, attempt=1,
                              restarts=0, restore=None, sys_path=[str(tmp_path)])
    assert {launch.entrypoint.argv for launch in launches.values()} == {tuple(EXACT_ARGV)}
    assert '"--layers=64", "--layers=32", "data dir/", "", "--"' in render_plan(spec)


def test_args_still_become_flags():
    entrypoint = parse_spec(with_(entrypoint={"module": "trainer.task", "args": {"lr": 0.1, "fast": True}}))
    assert entrypoint.entrypoint.command_line() == ["--lr=0.1", "--fast=true"]


@pytest.mark.parametrize("entrypoint, expected", [
    ({"function": "examples.digits:train", "argv": ["--x"]}, "a function takes args as keywords"),
    ({"script": "train.py", "argv": ["--x"], "args": {"y": 1}}, "not both"),
    ({"script": "train.py", "argv": ["a\0b"]}, "argv.0: a NUL character"),
    ({"script": "train.py", "argv": [3]}, "entrypoint.argv.0"),
    ({"script": "train.py", "argv": "--epochs 3"}, "entrypoint.argv"),
])
def test_bad_argv_is_rejected(entrypoint, expected):
    with pytest.raises(SpecError, match=expected):
        parse_spec(with_(entrypoint=entrypoint))


@pytest.mark.parametrize("entrypoint, sent, said", [
    ({"script": "train.py"}, True, "keras fit: BackupAndRestore each epoch into backups/auto/"),
    ({"module": "trainer.task", "keras_backup": False}, False, "keras fit: as the script wrote it"),
    ({"function": "examples.digits:train"}, False, None),  # its fit resumes with JobCallback
])
def test_keras_backup_is_on_for_scripts_and_modules_unless_switched_off(entrypoint, sent, said, tmp_path):
    from controller.plan.dry_run import render_plan
    from controller.plan.launch import build_launches
    from controller.plan.tasks import plan

    (tmp_path / "train.py").write_text("print('hi')\n")
    spec = parse_spec(with_(entrypoint=entrypoint), base_dir=tmp_path)
    tasks = plan(spec)
    launches = build_launches(spec, tasks, {t.key: f"h:{i}" for i, t in enumerate(tasks)}, {}, attempt=1,
                              restarts=0, restore=None, sys_path=[str(tmp_path)])
    assert {launch.entrypoint.keras_backup for launch in launches.values()} == {sent}
    assert (said in render_plan(spec)) if said else "keras fit" not in render_plan(spec)