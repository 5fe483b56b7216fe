"""The spec's runtime_env: checked before Ray starts (shape, paths, Ray's own parser), absent by default, and
where each task finds its code when a working_dir ships it. No Ray is started here."""

from __future__ import annotations

import pytest

from controller.cli.app import main
from controller.cli.exit_codes import EXIT_BAD_INPUT
from controller.plan.launch import code_location
from controller.ray import runtime_env
from controller.spec import SpecError, parse_spec

SPEC = {"name": "rt", "strategy": "one_device", "roles": {"chief": {"count": 1}},
        "entrypoint": {"script": "code/train.py"}}


@pytest.fixture()
def project(tmp_path):
    """A spec's folder: code/train.py, code/data.txt, libs/helpers/__init__.py, requirements.txt."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("import helpers\nprint(open('data.txt').read())\n")
    (tmp_path / "code" / "data.txt").write_text("42\n")
    (tmp_path / "libs" / "helpers").mkdir(parents=True)
    (tmp_path / "libs" / "helpers" / "__init__.py").write_text("")
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    return tmp_path


def spec_with(base, runtime_env=None, **changes):
    return parse_spec({**SPEC, **changes, **({"runtime_env": runtime_env} if runtime_env else {})}, base_dir=base)


def test_the_default_is_no_runtime_env(project):
    spec = spec_with(project)
    assert spec.runtime_env is None and runtime_env.for_ray(spec) is None
    target, import_path, cwd = code_location(spec, [str(project)])
    assert target == str(project / "code" / "train.py") and import_path == (str(project),) and cwd == str(project)


def test_local_paths_are_resolved_against_the_spec_folder_and_ray_accepts_them(project):
    spec = spec_with(project, {"env_vars": {"MODE": "fast"}, "pip": "requirements.txt", "working_dir": "code",
                               "py_modules": ["libs/helpers", "gs://bucket/extra.zip"], "excludes": ["*.ckpt"]})
    assert runtime_env.for_ray(spec) == {
        "env_vars": {"MODE": "fast"}, "pip": str(project / "requirements.txt"), "working_dir": str(project / "code"),
        "py_modules": [str(project / "libs" / "helpers"), "gs://bucket/extra.zip"], "excludes": ["*.ckpt"]}
    assert runtime_env.import_paths(spec) == [str(project / "code"), str(project / "libs")]


def test_with_a_working_dir_each_task_runs_rays_copy_of_it(project):
    """The script by its path inside the folder, in the actor's own folder (Ray's copy), with none of this
    machine's paths: on another node they do not exist."""
    spec = spec_with(project, {"working_dir": "code"})
    assert code_location(spec, [str(project)]) == ("train.py", (), None)
    zipped = spec_with(project, {"working_dir": "gs://bucket/code.zip"}, entrypoint={"module": "trainer.task"})
    assert code_location(zipped, [str(project)]) == ("trainer.task", (), None)


def test_code_in_a_working_dir_uri_is_a_warning_not_an_error(project, monkeypatch, capsys):
    import yaml

    monkeypatch.chdir(project)
    data = {**SPEC, "entrypoint": {"script": "elsewhere/train.py"},
            "runtime_env": {"working_dir": "https://example.com/code.zip"}}
    (project / "job.yaml").write_text(yaml.safe_dump(data))
    assert main(["validate", str(project / "job.yaml")]) == 0
    assert "looked for in runtime_env.working_dir (https://example.com/code.zip)" in capsys.readouterr().err


@pytest.mark.parametrize("label, runtime_env_spec, changes, expected", [
    ("working_dir missing", {"working_dir": "nowhere"}, {}, "runtime_env.working_dir: 'nowhere' does not exist"),
    ("working_dir a file", {"working_dir": "code/data.txt"}, {}, "runtime_env.working_dir: "),
    ("script outside the working_dir", {"working_dir": "libs"}, {}, "is outside runtime_env.working_dir"),
    ("requirements file missing", {"pip": "reqs.txt"}, {}, "runtime_env.pip: 'reqs.txt' does not exist"),
    ("py_module missing", {"py_modules": ["libs/nothing"]}, {}, "runtime_env.py_modules.0: 'libs/nothing'"),
    ("a working_dir URI Ray cannot fetch", {"working_dir": "gs://bucket/code.txt"}, {}, "runtime_env: Ray refuses"),
    ("a variable in env and env_vars", {"env_vars": {"A": "1"}}, {"env": {"A": "2"}},
     "A: set in env and in runtime_env.env_vars"),
])
def test_a_bad_runtime_env_is_refused_naming_the_field(project, monkeypatch, capsys, label, runtime_env_spec,
                                                        changes, expected):
    import yaml

    monkeypatch.chdir(project)
    monkeypatch.setattr("controller.api.init_ray", lambda *a, **k: pytest.fail("Ray would have started"))
    (project / "job.yaml").write_text(yaml.safe_dump({**SPEC, **changes, "runtime_env": runtime_env_spec}))
    assert main(["run", str(project / "job.yaml")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err


def test_for_ray_raises_spec_error_not_rays(project):
    with pytest.raises(SpecError, match="runtime_env: Ray refuses it"):
        runtime_env.for_ray(spec_with(project, {"py_modules": ["gs://bucket/mod.txt"]}))
