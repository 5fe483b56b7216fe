"""One launcher per node and environment (workers/launcher_share.py): real launchers, real forks, no Ray.

What a task relies on whether its launcher was started by its actor or forked for it by the node's hub: its
runs start and end the same way, its launcher ends with its actor and its run with it, and nothing of another
task's life (the hub's actor ending) reaches it.
"""

import os
import signal
import time

import psutil
import pytest

from workers import launcher_share
from workers.launcher_client import LauncherClient, LauncherDied

from .test_launcher import _run


def _env(**extra) -> dict[str, str]:
    # A name of this test's own: launchers of other tests in this process never serve these.
    return {**os.environ, "TFRAY_PREIMPORT_TF": "0", "TEST": f"{time.monotonic_ns()}", **extra}


def _ran(launcher, tmp_path) -> bool:
    _, code, records, _ = _run(launcher, tmp_path, "function", "tests.unit.launcher_entrypoints:who")
    return code == 0 and any(r["kind"] == "result" for r in records)


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_the_second_task_with_the_same_environment_gets_a_launcher_forked_by_the_first(tmp_path):
    env = _env()
    hub, copy, other = LauncherClient(env), LauncherClient(env), LauncherClient({**env, "OTHER": "1"})
    try:
        assert _ran(hub, tmp_path) and _ran(copy, tmp_path) and _ran(other, tmp_path)
        assert hub.proc is not None and other.proc is not None and copy.proc is None
        assert psutil.Process(copy.pid).ppid() == hub.pid  # no interpreter started, nothing imported again
        assert psutil.Process(other.pid).ppid() == os.getpid()  # another environment: a launcher of its own
    finally:
        for launcher in (hub, copy, other):
            launcher.close()


def test_the_hubs_actor_gone_leaves_the_copies_serving_and_the_next_task_starts_a_new_hub(tmp_path):
    env = _env()
    hub, copy = LauncherClient(env), LauncherClient(env)
    try:
        assert _ran(copy, tmp_path)
        hub.close()
        assert _gone(hub.pid)
        assert copy.alive() and _ran(copy, tmp_path)
        new = LauncherClient(env)
        assert new.proc is not None and _ran(new, tmp_path)  # the name was free again
        new.close()
    finally:
        copy.close()


def test_a_copys_actor_gone_ends_the_copy_and_its_run(tmp_path):
    env = _env()
    hub, copy = LauncherClient(env), LauncherClient(env)
    runs = []
    try:
        def close_while_running(pid, records):
            deadline = time.monotonic() + 30
            while not any(r["kind"] == "alive" for r in records):
                assert time.monotonic() < deadline, "no alive beat within 30s"
                time.sleep(0.05)
            runs.append(pid)
            launcher_pid = copy.pid
            copy.ctl.close()  # what the actor's end looks like to its launcher: end of file
            assert _gone(launcher_pid) and _gone(pid)

        with pytest.raises(LauncherDied):  # as the actor would see it, had it lived on
            _run(copy, tmp_path, "function", "tests.unit.launcher_entrypoints:sleep", on_pid=close_while_running)
        assert runs and hub.alive() and _ran(hub, tmp_path)  # the hub serves on
    finally:
        hub.close()


def test_a_copys_stopped_run_stays_stopped_when_the_hub_ends(tmp_path):
    """A run stopped (a hang, SIGSTOP) is not continued nor hung up by the kernel when the hub's end leaves the
    copy without its parent: the controller finds it hung, as it would with a launcher the actor started."""
    env = _env()
    hub, copy = LauncherClient(env), LauncherClient(env)
    stopped = []

    def stop_then_end_the_hub(pid, records):
        deadline = time.monotonic() + 30
        while not any(r["kind"] == "alive" for r in records):
            assert time.monotonic() < deadline, "no alive beat within 30s"
            time.sleep(0.05)
        os.kill(pid, signal.SIGSTOP)
        while psutil.Process(pid).status() != psutil.STATUS_STOPPED:
            assert time.monotonic() < deadline, "not stopped within 30s"
            time.sleep(0.05)
        hub.close()  # waits for the hub's end: what the kernel sends then has been sent
        stopped.append(psutil.Process(pid).status())
        os.kill(pid, signal.SIGKILL)

    try:
        _, code, _, _ = _run(copy, tmp_path, "function", "tests.unit.launcher_entrypoints:sleep",
                             on_pid=stop_then_end_the_hub)
        assert stopped == [psutil.STATUS_STOPPED] and code == -signal.SIGKILL
    finally:
        copy.close()


def test_a_hub_that_ends_before_it_forked_leaves_the_task_a_launcher_of_its_own(tmp_path):
    env = _env()
    vanishing = launcher_share.claim(launcher_share.hub_name(env))  # holds the name, never serves
    launcher = LauncherClient(env)  # its request waits in the queue of a hub that is about to end
    vanishing.close()
    try:
        assert _ran(launcher, tmp_path) and launcher.proc is not None
    finally:
        launcher.close()


def test_sharing_can_be_switched_off():
    assert launcher_share.hub_name(_env(TFRAY_SHARE_LAUNCHER="0")) is None
    # Ray's raylet would kill the copies with the hub's actor: every task keeps a launcher of its own.
    assert launcher_share.hub_name(_env(RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper="true")) is None
    env = _env()
    assert launcher_share.hub_name(env) == launcher_share.hub_name(dict(env))
    assert launcher_share.hub_name(env) != launcher_share.hub_name({**env, "CUDA_VISIBLE_DEVICES": "1"})
