"""What both importers rely on: Kubernetes quantities in every unit form, and a container's command line read
as a script or module with its exact argv (or refused, saying why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.importers.command_line import entrypoint_from
from controller.importers.common import ManifestError, cpu_cores, memory_mb
from controller.spec import IMAGE_ENTRYPOINT


@pytest.mark.parametrize("value, cores", [("2", 2), (2, 2), ("500m", 0.5), ("1.5", 1.5), ("1500m", 1.5),
                                          ("0.25", 0.25), ("100m", 0.1), ("1e1", 10)])
def test_cpu_quantities(value, cores):
    assert cpu_cores(value, "cpu") == cores


@pytest.mark.parametrize("value, mib", [("4Gi", 4096), ("512Mi", 512), ("1536Mi", 1536), ("1Ti", 1 << 20),
                                        ("2G", 1908), ("1000M", 954), ("2000000000", 1908), (2**30, 1024),
                                        ("1e9", 954), ("1024Ki", 1), ("1k", 1)])
def test_memory_quantities_round_up_to_mib(value, mib):
    assert memory_mb(value, "memory") == mib


@pytest.mark.parametrize("value", ["2x", "-1", "", "Gi", "1.2.3", True, None, [1]])
def test_bad_quantities_name_the_field(value):
    with pytest.raises(ManifestError, match="limits.cpu: .* is not a Kubernetes quantity|limits.cpu: .* is negative"):
        cpu_cores(value, "limits.cpu")


@pytest.mark.parametrize("command, args, workdir, entrypoint, env", [
    (["python", "train.py"], ["--epochs", "3", "--lr=0.1"], None,
     {"script": "train.py", "argv": ["--epochs", "3", "--lr=0.1"]}, {}),
    (["python3", "-u", "-m", "trainer.task"], ["--x", ""], None,
     {"module": "trainer.task", "argv": ["--x", ""]}, {"PYTHONUNBUFFERED": "1"}),
    (["/usr/bin/python3.11", "/app/src/train.py"], None, "/app", {"script": "src/train.py"}, {}),
    (["python", "/opt/trainer/train.py"], ["data dir/"], None, {"script": "train.py", "argv": ["data dir/"]}, {}),
    (["/bin/sh", "-c", "python -B train.py --steps 5 'two words'"], None, None,
     {"script": "train.py", "argv": ["--steps", "5", "two words"]}, {"PYTHONDONTWRITEBYTECODE": "1"}),
    (["/app/train.py"], [3, "--flag"], None, {"script": "train.py", "argv": ["3", "--flag"]}, {}),
])
def test_command_lines_become_an_entrypoint_with_exact_argv(command, args, workdir, entrypoint, env):
    program = entrypoint_from(command, args, "c", workdir)
    assert program.entrypoint == entrypoint and program.env == env


def test_a_moved_script_and_a_volume_path_are_said():
    program = entrypoint_from(["python", "/opt/t/train.py"], ["--data=/data/x"], "c", None, ("/data",))
    assert any("/opt/t/train.py is expected at train.py" in note for note in program.notes)
    assert any("'--data=/data/x' names /data, a volume" in note for note in program.notes)


@pytest.mark.parametrize("command, args, expected", [
    (["bash", "-c", "cd /app && python train.py"], None, "runs a shell script"),
    (["torchrun", "train.py"], None, "runs 'torchrun', not Python"),
    (["python", "-c", "print(1)"], None, "tfray runs a script or a module"),
    (["python", {"a": 1}], None, "lists of strings"),
])
def test_command_lines_tfray_cannot_run_are_refused(command, args, expected):
    with pytest.raises(ManifestError, match=expected):
        entrypoint_from(command, args, "tfReplicaSpecs.Worker")


@pytest.mark.parametrize("args, workdir, entrypoint", [
    (["python", "train.py", "--epochs", "3"], None, {"script": "train.py", "argv": ["--epochs", "3"]}),
    (["python3.10", "-m", "trainer.task"], None, {"module": "trainer.task"}),
    (["/usr/bin/python3", "/app/src/train.py"], "/app", {"script": "src/train.py"}),
    (["train.py", "--steps=5"], None, {"script": "train.py", "argv": ["--steps=5"]}),
])
def test_without_a_command_args_that_are_a_python_command_line_are_the_command_line(args, workdir, entrypoint):
    for command in (None, []):  # absent, or empty as the Vertex SDK's examples write it
        program = entrypoint_from(command, args, "c", workdir)
        assert program.entrypoint == entrypoint and not program.runs_image_entrypoint
        assert any("taken as the command line" in note for note in program.notes)


@pytest.mark.parametrize("args, entrypoint", [
    (["--epochs", "3", "--data=/data/x"], {"script": IMAGE_ENTRYPOINT, "argv": ["--epochs", "3", "--data=/data/x"]}),
    (None, {"script": IMAGE_ENTRYPOINT}),
    (["bash", "-c", "python train.py"], {"script": IMAGE_ENTRYPOINT, "argv": ["bash", "-c", "python train.py"]}),
])
def test_without_a_command_or_a_command_line_the_images_entrypoint_is_left_to_fill_in(args, entrypoint):
    program = entrypoint_from(None, args, "c", None, ("/data",))
    assert program.entrypoint == entrypoint and program.runs_image_entrypoint
    assert all("/data" in note for note in program.notes)  # a volume in argv is still said


def parts(node, path=()):
    """Every part of a manifest (mappings, lists and values), by its path."""
    yield path
    if isinstance(node, (dict, list)):
        for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
            yield from parts(value, (*path, key))


def replaced(manifest, path, value):
    import copy

    manifest = copy.deepcopy(manifest)
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return manifest


@pytest.mark.parametrize("example", ["tfjob_pss.yaml", "tfjob_mwms.yaml", "vertex_pss.json", "vertex_mwms.yaml"])
def test_any_part_of_a_manifest_in_the_wrong_shape_is_an_error_not_a_traceback(example):
    """Each part of a real manifest replaced, one at a time, by a word, a list and a mapping: the import either
    still works (the part was one it lists as not carried over, or the word fits) or raises a SpecError naming
    the file, which the CLI turns into exit 2 (tests/unit/test_import_tfjob.py); never another exception."""
    import yaml

    from controller.importers.tfjob import import_tfjob
    from controller.importers.vertex import import_vertex
    from controller.spec import SpecError, parse_spec

    importer = import_tfjob if example.startswith("tfjob") else import_vertex
    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "imports" / example).read_text())
    refused = 0
    for path, value in [(p, v) for p in parts(manifest) if p for v in ("oops", [1], {"a": 1})]:
        try:
            parse_spec(importer(replaced(manifest, path, value), "m.json").spec, source="the spec made from m.json")
        except SpecError as err:
            refused += 1
            assert str(err).startswith(("m.json: ", "the spec made from m.json")), (path, value, str(err))
    assert refused > 20  # the parts that matter were refused, not only the ones listed as not carried over
