"""What both importers rely on: Kubernetes quantities in every unit form, and a container's command line read
as a script or module with its exact argv (or refused, saying why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.import_common import ManifestError, cpu_cores, entrypoint_from, memory_mb


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
    (None, ["--epochs", "3"], "no command, so the image's own ENTRYPOINT runs"),
    (["bash", "-c", "cd /app && python train.py"], None, "runs a shell script"),
    (["torchrun", "train.py"], None, "runs 'torchrun', not Python"),
    (["python", "-c", "print(1)"], None, "tfray runs a script or a module"),
    (["python", {"a": 1}], None, "lists of strings"),
])
def test_command_lines_tfray_cannot_run_are_refused(command, args, expected):
    with pytest.raises(ManifestError, match=expected):
        entrypoint_from(command, args, "tfReplicaSpecs.Worker")


def shapes(node, path=()):
    """Every mapping and list in a manifest, by its path."""
    if isinstance(node, (dict, list)):
        yield path
        for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
            yield from shapes(value, (*path, key))


def replaced(manifest, path, value):
    import copy

    manifest = copy.deepcopy(manifest)
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return manifest


@pytest.mark.parametrize("command, example", [("import-tfjob", "tfjob_pss.yaml"), ("import-tfjob", "tfjob_mwms.yaml"),
                                              ("import-vertex", "vertex_pss.json"),
                                              ("import-vertex", "vertex_mwms.yaml")])
def test_any_part_of_a_manifest_in_the_wrong_shape_is_an_error_not_a_traceback(tmp_path, capsys, command, example):
    """Each mapping or list of a real manifest replaced by a word, one at a time: the import either still
    works (the part was one it lists as not carried over) or ends with exit 2 naming the file."""
    import json

    import yaml

    from controller.cli import main
    from controller.exit_codes import EXIT_BAD_INPUT, EXIT_OK

    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "imports" / example).read_text())
    refused = 0
    for path in [p for p in shapes(manifest) if p]:
        source = tmp_path / "manifest.json"
        source.write_text(json.dumps(replaced(manifest, path, "oops")))
        code = main([command, str(source)])
        captured = capsys.readouterr()
        assert code in (EXIT_OK, EXIT_BAD_INPUT), path
        if code == EXIT_BAD_INPUT:
            refused += 1
            assert captured.err.startswith((f"error: {source}", "error: the spec made from")), (path, captured.err)
    assert refused > 5  # the shapes that matter were refused, not only the ones that do not
