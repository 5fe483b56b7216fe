"""The task launcher (workers/zygote.py): real processes forked from a real launcher, no Ray.

What the task actor relies on: each run is a fresh process with the run's
environment and context; its result or error comes back as text; a killed
run is told apart from one that failed; reports and alive beats come
through the report pipe; and the launcher serves run after run.
"""

import json
import os
import signal
import sys
import threading
import time

import pytest

from workers.context import CONTEXT_ENV, TaskContext
from workers.launcher_client import LauncherClient, LauncherDied

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def launcher():
    # These entrypoints need no TensorFlow; a launcher of its own (test_launcher_share.py tests the sharing).
    env = {**os.environ, "TFRAY_PREIMPORT_TF": "0", "TFRAY_SHARE_LAUNCHER": "0"}
    launcher = LauncherClient(env)
    yield launcher
    launcher.close()


def _run(launcher, tmp_path, kind, target, args=None, argv=(), on_pid=None, env=None, keras_backup_dir=None):
    ctx = TaskContext(job_name="j", job_dir=str(tmp_path), attempt=1, strategy="multi_worker_mirrored",
                      role="worker", index=1, is_chief=False, num_workers=2, args=args or {})
    request = tmp_path / f"request-{time.monotonic_ns()}.json"
    request.write_text(json.dumps({"env": {CONTEXT_ENV: ctx.to_env(), **(env or {})}, "sys_path": [REPO],
                                   "kind": kind, "cwd": None, "target": target, "args": args or {},
                                   "argv": list(argv), "alive_interval_s": 1.0,
                                   "exit_handlers_s": 10.0, "keras_backup_dir": keras_backup_dir}))
    report_r, report_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = launcher.fork(str(request), report_w, out_w)
    os.close(report_w)
    os.close(out_w)
    records: list[dict] = []
    reader = threading.Thread(target=lambda: records.extend(json.loads(line) for line in os.fdopen(report_r)))
    reader.start()
    if on_pid is not None:
        on_pid(pid, records)
    with os.fdopen(out_r) as out:
        output = out.read()
    code = launcher.wait_exit()
    reader.join(10)
    return pid, code, records, output


def test_a_function_runs_in_a_fresh_process_with_its_context_and_returns_its_value(launcher, tmp_path):
    pid, code, records, _ = _run(launcher, tmp_path, "function", "tests.unit.launcher_entrypoints:who",
                                 args={"extra": 7}, env={"TF_CONFIG": '{"task": {"type": "worker", "index": 1}}'})
    assert code == 0 and pid != os.getpid() and pid != launcher.proc.pid
    result = next(r for r in records if r["kind"] == "result")["value"]
    assert result == {"task": "worker-1", "extra": 7, "pid": pid, "tf_config_index": 1}
    assert any(r["kind"] == "metrics" and r["step"] == 1 for r in records)  # ctx.report went through the pipe


def test_an_exception_comes_back_as_text_with_its_type(launcher, tmp_path):
    _, code, records, output = _run(launcher, tmp_path, "function", "tests.unit.launcher_entrypoints:boom")
    assert code == 1
    error = next(r for r in records if r["kind"] == "error")
    assert error["type"] == "ValueError" and error["message"] == "boom from worker-1"
    assert "Traceback" in error["traceback"] and "boom from worker-1" in output


def test_a_killed_run_is_told_apart_and_the_launcher_serves_the_next_run(launcher, tmp_path):
    def kill_when_alive(pid, records):
        deadline = time.monotonic() + 30
        while not any(r["kind"] == "alive" for r in records):  # alive beats come while it runs
            assert time.monotonic() < deadline, "no alive beat within 30s"
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    _, code, _, _ = _run(launcher, tmp_path, "function", "tests.unit.launcher_entrypoints:sleep",
                         on_pid=kill_when_alive)
    assert code == -signal.SIGKILL
    _, code, records, _ = _run(launcher, tmp_path, "function", "tests.unit.launcher_entrypoints:who")
    assert code == 0 and any(r["kind"] == "result" for r in records)


def test_a_script_runs_as_main_with_its_argv_and_exit_code(launcher, tmp_path):
    script = os.path.join(HERE, "launcher_entrypoints.py")
    _, code, records, output = _run(launcher, tmp_path, "script", script, argv=["--exit", "3"])
    assert code == 3
    assert "main with ['--exit', '3']" in output
    assert any(r["kind"] == "metrics" for r in records)  # get_context() reports through the pipe


def test_a_run_ends_as_an_interpreter_would_its_atexit_and_temporaries_cleaned(launcher, tmp_path):
    marker = tmp_path / "atexit-ran"
    _, code, records, _ = _run(launcher, tmp_path, "function", "tests.unit.launcher_entrypoints:leave_temporaries",
                               args={"marker": str(marker)})
    assert code == 0
    left = next(r for r in records if r["kind"] == "result")["value"]
    assert marker.read_text() == "ran"  # the entrypoint's own atexit handler
    assert not os.path.exists(left["temporary_directory"]) and not os.path.exists(left["pymp"])
    assert launcher.alive()  # and the launcher's own handlers stayed the launcher's


def test_a_launcher_that_dies_is_reported_not_waited_on(tmp_path):
    tensorflow_before = "tensorflow" in sys.modules  # an earlier test in this process may have imported it
    dying = LauncherClient({**os.environ, "TFRAY_PREIMPORT_TF": "0", "TFRAY_SHARE_LAUNCHER": "0"})
    dying.proc.kill()
    dying.proc.wait()
    with pytest.raises(LauncherDied, match="launcher process died"):
        _run(dying, tmp_path, "function", "tests.unit.launcher_entrypoints:who")
    dying.close()
    assert ("tensorflow" in sys.modules) == tensorflow_before  # nothing here needed TensorFlow


def test_runs_are_out_of_reach_of_a_signal_to_the_drivers_process_group(launcher, tmp_path):
    """Ctrl-C or a stop sent to the driver's group must not reach a training process as a notice."""
    # The group as the process saw it: os.getpgid(pid) from here raced its end (ProcessLookupError once reaped).
    _, code, records, _ = _run(launcher, tmp_path, "function", "tests.unit.launcher_entrypoints:process_group")
    group = next(r for r in records if r["kind"] == "result")["value"]
    assert code == 0 and group == os.getpgid(launcher.proc.pid) == launcher.proc.pid != os.getpgid(0)


# A stand-in for the two things of tf-keras that workers/keras_backup.py touches, Model.fit and
# BackupAndRestore, so the wrapping is tested through the launcher without TensorFlow (the integration test
# tests/integration/test_stock_code.py runs the real ones).
STAND_IN_KERAS = """
import types


class MultiWorkerMirrored: ...


class OneDevice: ...


class BackupAndRestore:
    _supported_strategies = (MultiWorkerMirrored,)

    def __init__(self, backup_dir):
        self.backup_dir = backup_dir


callbacks = types.SimpleNamespace(BackupAndRestore=BackupAndRestore)


class Model:
    _distribution_strategy = None

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0):
        return callbacks
"""

FITS = """
import json

import tf_keras


class Other: ...


class ResumesFit:
    resumes_fit = True  # as workers.keras.JobCallback says it


def names(callbacks):
    return None if callbacks is None else [getattr(c, "backup_dir", type(c).__name__) for c in callbacks]


model, mirrored, one_device = tf_keras.Model(), tf_keras.Model(), tf_keras.Model()
mirrored._distribution_strategy = tf_keras.MultiWorkerMirrored()
one_device._distribution_strategy = tf_keras.OneDevice()
print(json.dumps({
    "none": names(model.fit([1])),
    "other": names(mirrored.fit([1], callbacks=[Other()])),
    "positional": names(model.fit([1], None, None, 1, "auto", (Other(),))),
    "its_own": names(model.fit([1], callbacks=[tf_keras.callbacks.BackupAndRestore("own")])),
    "resumes": names(model.fit([1], callbacks=[ResumesFit()])),
    "one_device": names(one_device.fit([1])),
}))
"""


@pytest.mark.parametrize("switched_on", [True, False])
def test_a_scripts_keras_fits_get_one_backup_each_unless_switched_off(launcher, tmp_path, switched_on):
    (tmp_path / "tf_keras").mkdir()  # beside the script: first on its import path, and not imported before it runs
    (tmp_path / "tf_keras" / "__init__.py").write_text(STAND_IN_KERAS)
    (tmp_path / "fits.py").write_text(FITS)
    backups = str(tmp_path / "backups" / "auto")
    _, code, _, output = _run(launcher, tmp_path, "script", str(tmp_path / "fits.py"),
                              keras_backup_dir=backups if switched_on else None)
    assert code == 0, output
    got = json.loads(output.strip().splitlines()[-1])
    if not switched_on:  # fit is tf-keras' own
        assert got == {"none": None, "other": ["Other"], "positional": ["Other"], "its_own": ["own"],
                       "resumes": ["ResumesFit"], "one_device": None}
        assert "[tfray]" not in output
        return
    assert got == {"none": [f"{backups}/fit-1"], "other": ["Other", f"{backups}/fit-2"],
                   "positional": ["Other", f"{backups}/fit-3"], "its_own": ["own"], "resumes": ["ResumesFit"],
                   "one_device": None}
    assert "BackupAndRestore does not support OneDevice" in output


KERAS_3_FIT = """
__version__ = "3.15.1"

def fit():
    raise ValueError("Attempt to convert a value (PerReplica:{0: ...}) with an unsupported type")
"""


def test_a_multi_worker_fit_that_fails_inside_keras_3_says_why(launcher, tmp_path):
    (tmp_path / "keras").mkdir()  # beside the script: a stand-in Keras 3 whose fit fails as the real one does
    (tmp_path / "keras" / "__init__.py").write_text(KERAS_3_FIT)
    (tmp_path / "train.py").write_text("import keras\nkeras.fit()\n")
    _, code, records, output = _run(launcher, tmp_path, "script", str(tmp_path / "train.py"))
    assert code == 1
    error = next(r for r in records if r["kind"] == "error")
    assert error["type"] == "ValueError" and "PerReplica" in error["traceback"]  # kept, for the log
    assert "training (multi_worker_mirrored) failed inside Keras 3 with ValueError" in error["explanation"]
    assert "PerReplica" in output and f"[tfray] {error['explanation']}" in output
