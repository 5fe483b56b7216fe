"""How each task's processes run (controller/spec/process.py, workers/process_settings.py): the nice value
and the thread settings each task's actor is given, what the task does with them, and the readback."""

import os
import subprocess
import sys

import pytest

from controller.api import local_ray_environment
from controller.plan.launch import actor_config
from controller.plan.tasks import describe_process, plan
from controller.settings import poll_until
from controller.spec import parse_spec
from workers.process_settings import readback, set_niceness


def spec(roles, **extra):
    return parse_spec({"name": "p", "strategy": "multi_worker_mirrored", "roles": roles,
                       "entrypoint": {"function": "m:f"}, **extra})


def role(cpu, count=1):
    return {"count": count, "resources": {"cpu": cpu}}


def test_by_default_a_task_runs_at_nice_0_with_openmp_sized_to_its_cpus_rounded_up():
    tasks = plan(spec({"chief": role(0.5), "worker": role(1.5, 2)}))
    assert [t.niceness for t in tasks] == [0, 0, 0]
    # Ray would give both 1 (a fraction rounded down); TensorFlow's pools are left to size themselves.
    assert [t.env for t in tasks] == [{"OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "2"}, {"OMP_NUM_THREADS": "2"}]


def test_process_threads_sets_openmp_and_both_tensorflow_pools_and_niceness_null_leaves_rays():
    tasks = plan(spec({"worker": role(1)}, process={"threads": 3, "niceness": None}))
    assert tasks[0].env == {"OMP_NUM_THREADS": "3", "TF_NUM_INTRAOP_THREADS": "3", "TF_NUM_INTEROP_THREADS": "3"}
    assert tasks[0].niceness is None


def test_the_actor_gets_its_own_settings_under_the_jobs_so_the_specs_env_wins():
    task = plan(spec({"worker": role(2)}, process={"niceness": 5}))[0]
    config = actor_config(task.key, {"OMP_NUM_THREADS": "7", "A": "1"}, task.devices, own_env=task.env,
                          niceness=task.niceness)
    assert config.env == {"OMP_NUM_THREADS": "7", "A": "1"} and config.niceness == 5


@pytest.mark.parametrize("process, field", [({"niceness": 20}, "process.niceness"), ({"threads": 0}, "process.threads"),
                                            ({"threads": "4"}, "process.threads"), ({"nice": 0}, "process.nice")])
def test_bad_process_settings_name_the_field(process, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        spec({"worker": role(1)}, process=process)


def test_a_task_sets_its_nice_value_on_every_thread_and_its_children_inherit_it():
    code = ("import os, sys, threading, time; sys.path.insert(0, os.getcwd());"
            "from workers.process_settings import set_niceness;"
            "threading.Thread(target=time.sleep, args=(5,), daemon=True).start();"
            "note = set_niceness(int(sys.argv[1]));"
            "tids = os.listdir('/proc/self/task');"
            "print(note, sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in tids}), len(tids));"
            "os.execvp('sh', ['sh', '-c', 'cut -d\" \" -f19 /proc/$$/stat'])")
    out = subprocess.run([sys.executable, "-c", code, "3"], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))), check=True).stdout.split("\n")
    assert out[0] == "None [3] 2"  # both threads: a nice value on Linux is a thread's
    assert out[1] == "3"  # what the process starts next runs at it too


def test_a_lower_nice_value_that_is_not_allowed_says_what_the_task_runs_at_and_how_to_fix_it(monkeypatch):
    def refuse(*_):
        raise PermissionError("not allowed")

    monkeypatch.setattr(os, "setpriority", refuse)
    monkeypatch.setattr(os, "getpriority", lambda *_: 15)
    note = set_niceness(0)
    assert "run at nice 15, not 0" in note and "RAY_worker_niceness=0" in note
    assert set_niceness(15) is None and set_niceness(None) is None  # already there, or not asked


def test_the_readback_says_what_a_running_process_really_got():
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    env.pop("TF_NUM_INTRAOP_THREADS", None)
    env.pop("TF_NUM_INTEROP_THREADS", None)
    proc = subprocess.Popen(["nice", "-n", "4", "sleep", "30"], env=env)
    try:
        poll_until(lambda: open(f"/proc/{proc.pid}/cmdline").read().startswith("sleep"), 10, 0.01,
                   "`nice` to exec sleep")  # read it once it has
        before = os.getpriority(os.PRIO_PROCESS, 0)
        assert readback(proc.pid) == (f"nice {min(before + 4, 19)}, OMP_NUM_THREADS=2, TF_NUM_INTRAOP_THREADS unset, "
                                      "TF_NUM_INTEROP_THREADS unset")
    finally:
        proc.kill()
        proc.wait()
    assert "cannot be read" in readback(proc.pid)


def test_a_local_ray_starts_its_workers_at_nice_0_unless_the_users_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    with local_ray_environment():
        assert os.environ["RAY_worker_niceness"] == "0"
    assert "RAY_worker_niceness" not in os.environ  # the user's environment as it was
    monkeypatch.setenv("RAY_worker_niceness", "10")
    with local_ray_environment():
        assert os.environ["RAY_worker_niceness"] == "10"
    assert os.environ["RAY_worker_niceness"] == "10"


def test_the_dry_run_says_how_each_task_runs():
    assert describe_process(0, {"OMP_NUM_THREADS": "2"}) == "nice 0, OMP_NUM_THREADS=2, TensorFlow's own thread pools"
    threads = {"OMP_NUM_THREADS": "3", "TF_NUM_INTRAOP_THREADS": "3", "TF_NUM_INTEROP_THREADS": "3"}
    assert describe_process(None, threads) == ("Ray's nice value (15 unless RAY_worker_niceness), OMP_NUM_THREADS=3, "
                                               "TF_NUM_INTRAOP_THREADS=3, TF_NUM_INTEROP_THREADS=3")


def test_pin_puts_every_thread_of_the_process_on_the_cpus_asked_and_refuses_cpus_the_node_lacks():
    """roles.<role>.cpu_affinity, in a child process (the pin outlives the call): its threads, the ones it
    starts later, and what readback shows."""
    import multiprocessing
    import threading

    def child(queue, done):
        from workers.process_settings import pin

        pin([0])
        seen = []
        thread = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        thread.start()
        thread.join()
        try:
            pin([100_000])
            refused = ""
        except ValueError as err:
            refused = str(err)
        queue.put((os.sched_getaffinity(0), seen[0], refused))
        done.wait(30)

    fork = multiprocessing.get_context("fork")
    queue, done = fork.Queue(), fork.Event()
    proc = fork.Process(target=child, args=(queue, done))
    proc.start()
    main, started_later, refused = queue.get(timeout=30)
    shown = readback(proc.pid)  # as the task's actor shows its training process
    done.set()
    proc.join(timeout=30)
    assert main == started_later == {0}
    assert shown.endswith(", CPUs 0") or os.sched_getaffinity(0) == {0}  # shown when narrower than the reader's
    assert "cpu_affinity [100000]: this node's CPUs are" in refused
