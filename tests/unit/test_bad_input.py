"""Bad input never reaches Ray: every malformed spec, fault string, entrypoint file and torn record below
ends the command with exit 2, the field or file named, and no traceback. Nothing here starts Ray (the
commands are validate, dry-run, run and status; run stops at its checks before Ray would start)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.cli.app import main
from controller.cli.exit_codes import EXIT_BAD_INPUT

REPO = Path(__file__).resolve().parents[2]
GOOD = {"name": "bad", "strategy": "multi_worker_mirrored",
        "roles": {"chief": {"count": 1, "resources": {"cpu": 0.5}}, "worker": {"count": 2}},
        "entrypoint": {"function": "entry:train"}, "storage_path": "runs"}
ENTRY = "def train(ctx):\n    return 1\n"


def changed(path: str, value, base: dict = GOOD) -> dict:
    """GOOD with the dotted ``path`` set to ``value`` (or removed when value is ...)."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return data


# (label, the spec as a dict or raw text/bytes, what the error must name)
SPECS = [
    ("name missing", changed("name", ...), "name: required field is missing"),
    ("name with a space", changed("name", "has space"), "name"),
    ("name too long", changed("name", "x" * 65), "name"),
    ("name a path", changed("name", "../up"), "name"),
    ("name a number", changed("name", 7), "name"),
    ("strategy unknown", changed("strategy", "horovod"), "strategy"),
    ("strategy missing", changed("strategy", ...), "strategy"),
    ("roles empty", changed("roles", {}), "roles"),
    ("roles a list", changed("roles", ["worker"]), "roles"),
    ("role unknown", changed("roles.master", {"count": 1}), "roles.master"),
    ("count negative", changed("roles.worker.count", -1), "roles.worker.count"),
    ("count a boolean", changed("roles.worker.count", True), "roles.worker.count"),
    ("count a string", changed("roles.worker.count", "2"), "roles.worker.count"),
    ("count a fraction", changed("roles.worker.count", 1.5), "roles.worker.count"),
    ("count past the maximum", changed("roles.worker.count", 100_000), "roles.worker.count"),
    ("count a billion", changed("roles.worker.count", 10**9), "roles.worker.count"),
    ("two chiefs", changed("roles.chief.count", 2), "roles.chief"),
    ("too many tasks", changed("roles", {"chief": {"count": 1}, "worker": {"count": 1024}, "ps": {"count": 1024}},
                                base=changed("strategy", "parameter_server")), "roles"),
    ("cpu negative", changed("roles.worker.resources", {"cpu": -1}), "roles.worker.resources.cpu"),
    ("cpu below Ray's precision", changed("roles.worker.resources", {"cpu": 0.00001}), "precision"),
    ("cpu infinite", changed("roles.worker.resources", {"cpu": float("inf")}), "roles.worker.resources.cpu"),
    ("cpu not a number", changed("roles.worker.resources", {"cpu": float("nan")}), "roles.worker.resources.cpu"),
    ("cpu a word", changed("roles.worker.resources", {"cpu": "lots"}), "roles.worker.resources.cpu"),
    ("cpu absurd", changed("roles.worker.resources", {"cpu": 2e6}), "roles.worker.resources.cpu"),
    ("gpu one and a half", changed("roles.worker.resources", {"gpu": 1.5}), "roles.worker.resources.gpu"),
    ("gpu memory without a gpu", changed("roles.worker.resources", {"gpu_memory": "growth"}),
     "gpu_memory is set but the task has no GPU"),
    ("gpu memory limit without a gpu", changed("roles.worker.resources", {"gpu_memory_mb": 4096}),
     "gpu_memory_mb is set but the task has no GPU"),
    ("gpu memory twice", changed("roles.worker.resources", {"gpu": 0.5, "gpu_memory": "all", "gpu_memory_mb": 4096}),
     "set one of them"),
    ("gpu memory share of whole GPUs", changed("roles.worker.resources", {"gpu": 2, "gpu_memory": "share"}),
     "share divides one GPU"),
    ("gpu memory unknown", changed("roles.worker.resources", {"gpu": 1, "gpu_memory": "half"}),
     "roles.worker.resources.gpu_memory"),
    ("gpu memory limit tiny", changed("roles.worker.resources", {"gpu": 1, "gpu_memory_mb": 1}),
     "roles.worker.resources.gpu_memory_mb"),
    ("collective unknown", changed("collective", "mpi"), "collective"),
    ("collective for one process", changed("collective", "ring", base=changed("roles", {"chief": {"count": 1}},
                                                                             base=changed("strategy", "mirrored"))),
     "collective: only multi_worker_mirrored"),
    ("nccl on CPUs", changed("collective", "nccl"), "collective: nccl needs a whole GPU"),
    ("nccl on a shared GPU", changed("roles.worker.resources", {"gpu": 0.5}, base=changed("collective", "nccl")),
     "NCCL refuses two tasks on one GPU"),
    ("one_device on two GPUs", changed("roles", {"chief": {"count": 1, "resources": {"gpu": 2}}},
                                       base=changed("strategy", "one_device")), "use mirrored"),
    ("env sets the GPUs", changed("env", {"CUDA_VISIBLE_DEVICES": "0"}), "the GPUs Ray assigned it"),
    ("memory zero", changed("roles.worker.resources", {"memory_mb": 0}), "roles.worker.resources.memory_mb"),
    ("memory a fraction", changed("roles.worker.resources", {"memory_mb": 1.5}), "roles.worker.resources.memory_mb"),
    ("custom name empty", changed("roles.worker.resources", {"custom": {"": 1}}), "custom resource name"),
    ("custom built-in", changed("roles.worker.resources", {"custom": {"CPU": 1}}), "built-in resource"),
    ("custom negative", changed("roles.worker.resources", {"custom": {"spot": -1}}), "negative"),
    ("custom name with a space", changed("roles.worker.resources", {"custom": {"my spot": 1}}), "custom resource"),
    ("custom infinite", changed("roles.worker.resources", {"custom": {"spot": float("inf")}}), "custom"),
    ("resources reserve nothing", changed("roles.worker.resources", {"cpu": 0}), "must reserve some resource"),
    ("resources unknown key", changed("roles.worker.resources", {"cpus": 1}), "roles.worker.resources.cpus"),
    ("entrypoint missing", changed("entrypoint", ...), "entrypoint: required field is missing"),
    ("entrypoint empty", changed("entrypoint", {}), "set exactly one of"),
    ("entrypoint two kinds", changed("entrypoint", {"function": "a:b", "script": "x.py"}), "set exactly one of"),
    ("function without a colon", changed("entrypoint", {"function": "train"}), "package.module:function"),
    ("function with an empty part", changed("entrypoint", {"function": "a..b:f"}), "package.module:function"),
    ("module not a name", changed("entrypoint", {"module": "1abc"}), "entrypoint"),
    ("args key with a space", changed("entrypoint.args", {"bad key": 1}), "entrypoint"),
    ("args value a list", changed("entrypoint.args", {"layers": [1, 2]}), "entrypoint.args.layers"),
    ("args value a mapping", changed("entrypoint.args", {"opt": {"lr": 1}}), "entrypoint.args.opt"),
    ("args value with NUL", changed("entrypoint.args", {"path": "a\0b"}), "NUL"),
    ("env name with =", changed("env", {"A=B": "1"}), "env"),
    ("env name empty", changed("env", {"": "1"}), "env"),
    ("env name starting with a digit", changed("env", {"1A": "1"}), "env"),
    ("env value with NUL", changed("env", {"A": "x\0y"}), "NUL"),
    ("env value a number", changed("env", {"A": 5}), "env.A"),
    ("env TF_CONFIG", changed("env", {"TF_CONFIG": "{}"}), "TF_CONFIG is set by tfray"),
    ("env a list", changed("env", ["A=1"]), "env"),
    ("storage_path empty", changed("storage_path", ""), "storage_path"),
    ("storage_path with NUL", changed("storage_path", "ru\0ns"), "storage_path"),
    ("storage_path in /proc", changed("storage_path", "/proc/tfray-x"), "storage_path"),
    ("storage_path under a file", changed("storage_path", "entry.py/runs"), "storage_path"),
    ("storage_mode unknown", changed("storage_mode", "nfs"), "storage_mode"),
    ("placement unknown", changed("placement", "scatter"), "placement"),
    ("checkpoint.keep zero", changed("checkpoint", {"keep": 0}), "checkpoint.keep"),
    ("checkpoint.every_n_epochs a boolean", changed("checkpoint", {"every_n_epochs": True}), "every_n_epochs"),
    ("a budget negative", changed("failure", {"max_task_failures": -1}), "failure.max_task_failures"),
    ("backoff infinite", changed("failure", {"backoff_s": float("inf")}), "failure.backoff_s"),
    ("failure unknown key", changed("failure", {"retries": 3}), "failure.retries"),
    ("job_s infinite", changed("timeouts", {"job_s": float("inf")}), "timeouts.job_s"),
    ("scheduling_s a nanosecond", changed("timeouts", {"scheduling_s": 1e-9}), "timeouts.scheduling_s"),
    ("heartbeat_s below a beat", changed("timeouts", {"heartbeat_s": 1}), "timeouts.heartbeat_s"),
    ("job_s zero", changed("timeouts", {"job_s": 0}), "timeouts.job_s"),
    ("timeouts unknown key", changed("timeouts", {"total_s": 5}), "timeouts.total_s"),
    ("elastic on parameter_server", changed("elastic", {"min_workers": 1}, base=changed(
        "roles", {"chief": {"count": 1}, "worker": {"count": 2}, "ps": {"count": 1}},
        base=changed("strategy", "parameter_server"))), "elastic"),
    ("elastic minimum above the count", changed("elastic", {"min_workers": 3}), "elastic.min_workers"),
    ("elastic maximum not the count", changed("elastic", {"min_workers": 1, "max_workers": 5}),
     "elastic.max_workers"),
    ("elastic wait zero", changed("elastic", {"min_workers": 1, "capacity_wait_s": 0}), "elastic.capacity_wait_s"),
    ("fault on a task there is not", changed("faults", [{"task": "worker-5", "action": "kill", "at_step": 1}]),
     "faults.0.task"),
    ("fault task not a name", changed("faults", [{"task": "boss-1", "action": "kill", "at_step": 1}]),
     "faults.0.task"),
    ("fault two triggers", changed("faults", [{"task": "worker-1", "action": "kill", "at_step": 1, "after_s": 2}]),
     "set exactly one of at_step"),
    ("fault no trigger", changed("faults", [{"task": "worker-1", "action": "kill"}]), "set exactly one of at_step"),
    ("fault action unknown", changed("faults", [{"task": "worker-1", "action": "explode", "at_step": 1}]),
     "faults.0.action"),
    ("fault step a fraction", changed("faults", [{"task": "worker-1", "action": "kill", "at_step": 1.5}]),
     "faults.0.at_step"),
    ("fault step a boolean", changed("faults", [{"task": "worker-1", "action": "kill", "at_step": True}]),
     "faults.0.at_step"),
    ("runtime_env unknown key", changed("runtime_env", {"conda": "env.yaml"}), "runtime_env.conda: unknown key"),
    ("runtime_env empty", changed("runtime_env", {}), "an empty runtime_env"),
    ("runtime_env a list", changed("runtime_env", ["pip"]), "runtime_env"),
    ("runtime_env variable name with a space", changed("runtime_env", {"env_vars": {"A B": "1"}}),
     "runtime_env.env_vars"),
    ("runtime_env variable TF_CONFIG", changed("runtime_env", {"env_vars": {"TF_CONFIG": "{}"}}),
     "remove it from runtime_env.env_vars"),
    ("runtime_env variable a number", changed("runtime_env", {"env_vars": {"A": 1}}), "runtime_env.env_vars.A"),
    ("runtime_env pip a number", changed("runtime_env", {"pip": 5}), "runtime_env.pip"),
    ("runtime_env pip blank", changed("runtime_env", {"pip": [" "]}), "runtime_env.pip"),
    ("runtime_env image with pip", changed("runtime_env", {"image_uri": "repo/img:1", "pip": ["six"]}),
     "image_uri cannot be used with pip"),
    ("runtime_env excludes alone", changed("runtime_env", {"excludes": ["*.ckpt"]}), "excludes applies"),
    ("runtime_env working_dir missing", changed("runtime_env", {"working_dir": "gone"}),
     "runtime_env.working_dir: 'gone' does not exist"),
    ("unknown top-level key", changed("epochs", 5), "epochs: unknown key"),
    ("an empty file", "", "must be a YAML mapping"),
    ("a YAML list", "- name: x\n", "must be a YAML mapping"),
    ("a YAML scalar", "just words\n", "must be a YAML mapping"),
    ("broken YAML", "name: [unclosed\n", "not valid YAML"),
    ("a tab indent", "name: x\nroles:\n\tworker: {}\n", "not valid YAML"),
    ("a duplicate key", yaml.safe_dump(GOOD) + "name: again\n", "'name' is given twice"),
    ("a duplicate nested key", "name: x\nstrategy: one_device\nroles:\n  chief: {count: 1}\n  chief: {count: 1}\n"
                               "entrypoint: {function: 'entry:train'}\n", "'chief' is given twice"),
    ("nested too deeply", "a: " + "[" * 20000 + "]" * 20000 + "\n", "not valid YAML"),
    ("a binary file", b"\x7fELF\x02\x01\x01\x00\x00\x00", "is a binary file"),
    ("latin-1 text", "name: caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    ("UTF-16 text", "name: x\n".encode("utf-16"), "is a binary file"),
]


def write_spec(tmp_path: Path, spec) -> Path:
    (tmp_path / "entry.py").write_text(ENTRY)
    path = tmp_path / "job.yaml"
    if isinstance(spec, bytes):
        path.write_bytes(spec)
    else:
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return path


def assert_bad_input(argv: list[str], expected: str, capsys) -> None:
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err and err.startswith("error: ")


@pytest.mark.parametrize("command", ["validate", "dry-run", "run"])
@pytest.mark.parametrize("label, spec, expected", SPECS, ids=[s[0] for s in SPECS])
def test_a_bad_spec_is_refused_before_ray(tmp_path, monkeypatch, capsys, command, label, spec, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("controller.api.init_ray", lambda *a, **k: pytest.fail("Ray would have started"))
    assert_bad_input([command, str(write_spec(tmp_path, spec))], expected, capsys)


FAULTS = [
    ("worker-1:explode@step=3", "action 'explode' is not one of kill, sigterm, raise, hang"),
    ("worker-1:kill@step=.", "@step=. must be a whole number"),
    ("worker-1:kill@step=1.5", "@step=1.5 must be a whole number"),
    ("worker-1:kill@step=5@step=7", "@step is given twice"),
    ("worker-1:kill", "must look like TASK:ACTION@WHEN"),
    (":kill@step=1", "must look like TASK:ACTION@WHEN"),
    ("boss-1:kill@step=1", "'boss-1' is not a task name"),
    ("worker-9:kill@step=1", "the job has no task worker-9"),
    ("worker-1:kill@after=-1", "@after=-1 must be a number of seconds"),
    ("worker-1:kill@foo=1", "'@foo=1' must be one of"),
    ("worker-1:kill@step=99999999999999", "@step=99999999999999 must be a whole number"),
    ("worker-1:kill@step=1@after=2", "set exactly one of at_step"),
    ("worker-1:partition@step=3", "duration_s: a partition needs one"),
    ("worker-1:silence@save=3", "at_save: a silence fault acts on the network"),
    ("worker-1:silence@step=3", "faults.0.action: 'silence' acts on the network of worker-1's host, which needs a "
                                "multi-host harness"),
]


@pytest.mark.parametrize("fault, expected", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_bad_fault_string_is_refused(tmp_path, monkeypatch, capsys, fault, expected):
    monkeypatch.chdir(tmp_path)
    assert_bad_input(["dry-run", str(write_spec(tmp_path, GOOD)), "--fault", fault], expected, capsys)


def test_a_host_network_that_cannot_be_had_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFRAY_HOST_NETWORK", "no_such_module:attached")
    assert_bad_input(["validate", str(write_spec(tmp_path, GOOD)), "--fault", "worker-1:partition@after=5@for=20"],
                     "TFRAY_HOST_NETWORK=no_such_module:attached: no host network from it", capsys)


ENTRYPOINTS = [
    ("script missing", {"script": "nowhere.py"}, {}, "entrypoint.script: 'nowhere.py' does not exist"),
    ("script with a syntax error", {"script": "train.py"}, {"train.py": "def f(:\n"}, "train.py line 1"),
    ("script not UTF-8", {"script": "train.py"}, {"train.py": b"print('caf\xe9')\n"}, "train.py line 1"),
    ("script binary", {"script": "train.py"}, {"train.py": b"\x7fELF\x00\x01"}, "entrypoint.script"),
    ("script a folder", {"script": "folder"}, {"folder/x.py": ""},
     "entrypoint.script: 'folder' is a folder ("),
    ("script an absolute folder", {"script": "/tmp"}, {},
     "entrypoint.script: '/tmp' is a folder (/tmp); a script file is needed"),
    ("module with a syntax error", {"function": "broken:train"}, {"broken.py": "def train(ctx)\n"},
     "broken.py line 1"),
    ("module not UTF-8", {"function": "latin:train"}, {"latin.py": b"def train(ctx):\n    return 'caf\xe9'\n"},
     "latin.py line 2"),
    ("module not found", {"function": "nowhere_at_all:train"}, {}, "cannot find module 'nowhere_at_all'"),
    ("function not defined", {"function": "entry:evaluate"}, {}, "defines no top-level 'evaluate'"),
    ("package part not found", {"function": "pkg.missing:train"}, {"pkg/__init__.py": ""},
     "cannot find module 'pkg.missing'"),
    ("re-export of a name that is nowhere", {"function": "pkg:train"},
     {"pkg/__init__.py": "from .impl import train\n", "pkg/impl.py": "def other(ctx): pass\n"},
     "defines no top-level 'train'"),
    ("Keras 3 under multi-worker mirrored", {"script": "train.py"}, {"train.py": "import keras\n"},
     "train.py line 1: `import keras` imports Keras 3"),
]


@pytest.mark.parametrize("label, entrypoint, files, expected", ENTRYPOINTS, ids=[e[0] for e in ENTRYPOINTS])
def test_a_bad_entrypoint_is_refused_without_running_it(tmp_path, monkeypatch, capsys, label, entrypoint, files,
                                                        expected):
    monkeypatch.chdir(tmp_path)
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_bad_input(["validate", str(write_spec(tmp_path, changed("entrypoint", entrypoint)))], expected, capsys)


RECORDS = [
    ("cut short", '{"name": "bad", "attempts": [{"attempt": 1, "sta'),
    ("an empty list", "[]"),
    ("attempts not a list", '{"name": "bad", "attempts": "none"}'),
    ("an attempt without a state", '{"name": "bad", "attempts": [{"attempt": 1}]}'),
    ("binary", b"\x00\x01\x02"),
    ("a folder", None),
]


@pytest.mark.parametrize("label, content", RECORDS, ids=[r[0] for r in RECORDS])
def test_status_on_a_torn_record_says_what_is_wrong(tmp_path, monkeypatch, capsys, label, content):
    monkeypatch.chdir(tmp_path)
    record = tmp_path / "runs" / "bad" / "job.json"
    record.parent.mkdir(parents=True)
    if content is None:
        record.mkdir()
    else:
        record.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_bad_input(["status", str(write_spec(tmp_path, GOOD))], "job.json is not a job record", capsys)


def test_validate_never_runs_the_package_it_reads(tmp_path, monkeypatch, capsys):
    """A package whose __init__ has side effects (here: it writes a file, then raises) is only read."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "imported"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('x')\n"
                                                  "from pkg.train import train\n")
    (tmp_path / "pkg" / "train.py").write_text(ENTRY)
    spec = write_spec(tmp_path, changed("entrypoint", {"function": "pkg:train"}))  # re-exported, found by reading
    assert main(["validate", str(spec)]) == 0
    assert not marker.exists() and "valid" in capsys.readouterr().out


def test_a_name_made_at_import_is_a_warning_not_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dyn.py").write_text("from entry import *\n")
    assert main(["validate", str(write_spec(tmp_path, changed("entrypoint", {"function": "dyn:train"})))]) == 0
    assert "warning: entrypoint.function" in capsys.readouterr().err


def test_a_step_fault_on_a_script_that_never_reports_is_warned(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("import json, os\nprint(json.loads(os.environ['TF_CONFIG']))\n")
    spec = write_spec(tmp_path, changed("entrypoint", {"script": "train.py"}))
    assert main(["validate", str(spec), "--fault", "worker-1:kill@step=5"]) == 0
    assert "faults.0: worker-1 fires at a reported step" in capsys.readouterr().err
    assert main(["validate", str(spec), "--fault", "worker-1:kill@after=5"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_commands_print_no_traceback_end_to_end(tmp_path):
    """The same through the real entry point, as a user types it (a few cases)."""
    for spec in (b"\x00\x01", "name: caf\xe9\n".encode("latin-1"), yaml.safe_dump(changed("env", {"A=B": "1"}))):
        path = write_spec(tmp_path, spec)
        out = subprocess.run([sys.executable, "-m", "controller", "validate", str(path)], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == EXIT_BAD_INPUT, out.stderr
        assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr, out.stderr


def test_the_suite_covers_at_least_eighty_malformed_inputs():
    assert len(SPECS) + len(FAULTS) + len(ENTRYPOINTS) + len(RECORDS) >= 80


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize("how", ["address", "auto"])
def test_a_cluster_that_is_not_there_is_said_at_once(tmp_path, monkeypatch, capsys, how):
    """`ray.init` would retry a dead cluster's address for ever; a stale `ray start` address file is the
    common case (`--address auto`)."""
    import time

    monkeypatch.chdir(tmp_path)
    port = closed_port()
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    spec = write_spec(tmp_path, GOOD)
    started = time.monotonic()
    address = f"127.0.0.1:{port}" if how == "address" else "auto"
    assert_bad_input(["run", str(spec), "--address", address], f"no Ray cluster answers at 127.0.0.1:{port}", capsys)
    assert time.monotonic() - started < 15


def test_a_bad_setting_override_exits_2_naming_the_variable(tmp_path):
    """A ``TFRAY_<NAME>`` override that is not a number is refused before anything starts, with no traceback."""
    probe = ("import sys; from controller.cli.app import main; "
             "sys.exit(main(['validate', 'cluster_configs/jobs/digits_mwms.yaml']))")
    env = {**os.environ, "TFRAY_FAILURE_SETTLE_S": "soon"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "TFRAY_FAILURE_SETTLE_S='soon'" in out.stderr and "Traceback" not in out.stderr


def test_a_setting_override_is_read_as_its_defaults_kind():
    from controller import settings

    assert settings.env_overrides({"TFRAY_FAILURE_SETTLE_S": "0.25", "TFRAY_OUTPUT_TAIL_LINES": "7"}) == {
        "FAILURE_SETTLE_S": 0.25, "OUTPUT_TAIL_LINES": 7}
    for bad in ("0", "-1", "x"):
        with pytest.raises(settings.SettingsError, match="TFRAY_STOP_SAVE_S"):
            settings.env_overrides({"TFRAY_STOP_SAVE_S": bad})
