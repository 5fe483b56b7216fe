"""What bounds a job: a task's window measured (the arithmetic), carried in its report, turned into figures and a
verdict per task and for the job, and said on the progress line, in `tfray status` and the summary."""

import dataclasses
import json

import pytest

from controller.report.bounds import Figures, figures, from_rows, job_verdict, task_verdict
from controller.report.metrics import MetricsCollector, read_metrics
from controller.status.view import bounds_lines
from protocol.breakdown import Breakdown
from protocol.wire import MetricsReport, TaskKey, report_from_json
from workers import breakdown as task_side
from workers.context import TaskContext

MB = {"rss_peak_mb": 400.0, "pss_mb": 350.0, "node_memory_mb": 16000.0}


def window(steps=100, input_s=0.1, compute_s=0.8, peers_s=0.1, **extra) -> dict:
    """A window of ``steps`` steps, every one timed, its parts as given (seconds in all)."""
    total = input_s + compute_s + (peers_s or 0.0)
    return {"window_s": total * 1.05, "steps": steps, "timed_steps": steps, "input_s": input_s,
            "compute_s": compute_s, "peers_s": peers_s, "cpu_s": total, "node_cores": 4, "cpu_share": 1.0,
            **MB, **extra}


def verdict_of(task="worker-0", **parts):
    return task_verdict(figures(task, window(**parts)))


# ----------------------------------------------------------------- per task

@pytest.mark.parametrize("parts, kind", [
    ({"input_s": 0.6, "compute_s": 0.3, "peers_s": 0.1}, "input"),  # 60% waiting for batches
    ({"input_s": 0.05, "compute_s": 0.9, "peers_s": 0.05}, "compute"),
    ({"input_s": 0.05, "compute_s": 0.5, "peers_s": 0.45}, "peers"),  # 45% in the all-reduce
    ({"input_s": 0.35, "compute_s": 0.3, "peers_s": 0.35}, "input"),  # input comes before peers
    ({"input_s": 0.29, "compute_s": 0.71, "peers_s": 0.0}, "compute"),  # under the 30% line
    ({"input_s": 0.6, "compute_s": 0.3, "peers_s": None}, "input"),  # no all-reduce timed: no peers figure
    ({"input_s": 0.6, "compute_s": 0.3, "rss_peak_mb": 950.0, "memory_mb": 1000.0}, "memory"),  # before all
    ({"input_s": 0.0, "compute_s": 1.0, "rss_peak_mb": 14500.0}, "memory"),  # no memory_mb: the node's
    ({"input_s": 0.0, "compute_s": 1.0, "rss_peak_mb": 800.0, "memory_mb": 1000.0}, "compute"),  # 80%: fine
])
def test_a_tasks_verdict(parts, kind):
    assert verdict_of(**parts).kind == kind


def test_an_input_wait_under_a_millisecond_a_step_is_not_told_from_the_cost_of_calling_the_step():
    # 40% of a 1 ms step waiting: 0.4 ms a step, within what calling a tf.function costs.
    tiny = verdict_of(steps=1000, input_s=0.4, compute_s=0.6, peers_s=0.0)
    assert tiny.kind == "compute"
    assert verdict_of(steps=100, input_s=0.4, compute_s=0.6, peers_s=0.0).kind == "input"  # 4 ms a step


def test_an_input_verdict_says_its_figure_and_what_to_do_as_seen():
    idle = verdict_of(input_s=0.8, compute_s=0.2, peers_s=0.0, cpu_s=0.1)  # the CPU sleeps while it waits
    assert idle.figure.startswith("80% of each step waiting for input (8.0 ms of 10.0 ms)")
    assert "the CPU is idle" in idle.figure and "num_parallel_calls=tf.data.AUTOTUNE" in idle.actions[0]
    assert any("pre-parsed" in a for a in idle.actions) and idle.word == "input-bound"
    busy = verdict_of(input_s=0.8, compute_s=0.2, peers_s=0.0, cpu_s=1.0)  # its one reserved core is busy
    assert "short of CPU" in busy.actions[0] and "resources.cpu" in busy.actions[0]
    assert "tf.data service (roles data_dispatcher and data_worker" in busy.actions[0]
    assert "0.95 cores used of its 1 reserved (node: 4 cores)" in busy.figure  # the window is 5% longer


def test_a_step_whose_loop_costs_more_than_its_work_asks_for_more_work_a_call():
    small = verdict_of(input_s=0.05, compute_s=0.2, peers_s=0.0, loop_s=0.75)
    assert small.kind == "compute" and "75% of it the training loop's own cost" in small.figure
    assert "steps_per_execution" in small.actions[0]
    f = figures("chief-0", window(input_s=0.05, compute_s=0.2, peers_s=0.0, loop_s=0.75))
    assert f.step_s == pytest.approx(0.01) and f.loop == pytest.approx(0.75)


def test_a_compute_verdict_says_whether_the_task_uses_the_cores_it_reserved():
    full = verdict_of(input_s=0.0, compute_s=1.0, peers_s=0.0, cpu_s=1.05, cpu_share=1.0)
    assert full.kind == "compute" and "uses the cores it has" in full.actions[0]
    idle = verdict_of(input_s=0.0, compute_s=1.0, peers_s=0.0, cpu_s=1.05, cpu_share=4.0)
    assert "not all busy" in idle.actions[0]


def test_a_memory_verdict_names_the_limit_it_nears():
    reserved = verdict_of(rss_peak_mb=500.0, pss_mb=960.0, memory_mb=1000.0)  # PSS counts when it is larger
    assert reserved.figure == "peak 960 MB of its memory_mb 1000 MB (96%)" and "memory_mb" in reserved.actions[0]
    node = verdict_of(rss_peak_mb=15000.0)
    assert "its node's memory 16000 MB" in node.figure


def test_figures_of_a_window():
    f = figures("chief-0", window(steps=10, input_s=0.2, compute_s=0.6, peers_s=0.2, checkpoint_s=0.105,
                                  node="abc"))
    assert f.step_s == pytest.approx(0.1) and f.input == pytest.approx(0.2) and f.peers == pytest.approx(0.2)
    assert f.input_step_s == pytest.approx(0.02) and f.checkpoint == pytest.approx(0.1)
    assert f.cpu_cores == pytest.approx(1 / 1.05) and f.memory_peak_mb == 400 and f.memory_limit_mb == 16000
    assert f.node == "abc" and f.memory_of == "node"


def test_a_window_without_timed_steps_has_its_step_time_alone():
    f = figures("chief-0", {"window_s": 2.0, "steps": 20, "cpu_s": 1.9, "node_cores": 2})
    assert f.step_s == pytest.approx(0.1) and f.input is None and f.peers is None
    assert task_verdict(f).kind == "compute" and task_verdict(f).figure.startswith("100.0 ms a step")


@pytest.mark.parametrize("row", [{}, {"steps": 0, "window_s": 1.0}, {"steps": 3, "window_s": 0}, None])
def test_a_window_with_no_step_has_no_figures(row):
    assert figures("chief-0", row) is None


# ----------------------------------------------------------------- the job

def task(name, input_s=0.05, compute_s=0.5, peers_s=0.45, node=None, **extra) -> Figures:
    return figures(name, window(input_s=input_s, compute_s=compute_s, peers_s=peers_s, node=node, **extra))


def test_the_task_the_others_wait_for_is_the_straggler_with_its_node_and_the_gain_without_it():
    tasks = [task("chief-0", compute_s=0.5, peers_s=0.45), task("worker-0", compute_s=0.55, peers_s=0.35),
             task("worker-1", compute_s=0.93, peers_s=0.02, node="f00dfeedbeef0123")]
    verdict = job_verdict(tasks)
    assert verdict.kind == "straggler" and verdict.task == "worker-1" and verdict.node == "f00dfeedbeef0123"
    assert verdict.word == "straggler worker-1" and verdict.cause == "compute"
    # The others wait 45% and 37% (median 41%); without worker-1 a step takes the slowest other's own work,
    # 63.2% of it now: 1 / 0.632 - 1 = 58% faster.
    assert "wait 41% of each step for worker-1 on node f00dfeedbeef, which waits 2%" in verdict.figure
    assert "about 58% faster" in verdict.figure
    assert "node" in verdict.actions[0] and verdict.actions[1].startswith("its own bound: ")


@pytest.mark.parametrize("peers, straggler", [
    ((0.45, 0.4, 0.02), "worker-1"),
    ((0.45, 0.4, 0.3), None),  # it waits too: less than 15 points apart
    ((0.15, 0.18, 0.0), None),  # the others wait under 20%: no one is waited for
    ((0.45, 0.02), "worker-0"),  # two tasks
])
def test_a_straggler_only_when_the_others_clearly_wait_for_it(peers, straggler):
    names = ["chief-0", "worker-0", "worker-1"][:len(peers)]
    tasks = [task(name, compute_s=1.0 - p - 0.05, peers_s=p) for name, p in zip(names, peers)]
    verdict = job_verdict(tasks)
    assert (verdict.task if verdict.kind == "straggler" else None) == straggler


def test_the_job_says_what_bounds_most_of_its_tasks_with_the_strongest_figure():
    tasks = [task("chief-0", input_s=0.5, compute_s=0.45, peers_s=0.05),
             task("worker-0", input_s=0.7, compute_s=0.25, peers_s=0.05),
             task("worker-1", input_s=0.05, compute_s=0.9, peers_s=0.05)]
    verdict = job_verdict(tasks)
    assert verdict.kind == "input" and verdict.task == "worker-0"


def test_all_tasks_in_the_all_reduce_alike_is_peer_bound_not_a_straggler():
    tasks = [task("chief-0", peers_s=0.45), task("worker-0", peers_s=0.47), task("worker-1", peers_s=0.44)]
    assert job_verdict(tasks).kind == "peers"


def test_a_task_near_its_memory_is_the_jobs_verdict_whatever_the_others():
    tasks = [task("chief-0", peers_s=0.45), task("worker-0", peers_s=0.02, memory_mb=400.0)]
    verdict = job_verdict(tasks)
    assert verdict.kind == "memory" and verdict.task == "worker-0"


def test_no_figures_no_verdict():
    assert job_verdict([]) is None and from_rows([]) is None and from_rows([{"task": "chief-0"}]) is None


def test_from_rows_takes_each_tasks_newest_window_of_the_newest_run():
    rows = [{"task": "chief-0", "attempt": 1, "restart": 0, "breakdown": window(input_s=0.9, compute_s=0.1)},
            {"task": "chief-0", "attempt": 1, "restart": 1, "breakdown": window(input_s=0.0, compute_s=1.0)},
            {"task": "worker-0", "attempt": 1, "restart": 0, "breakdown": window(input_s=0.9, compute_s=0.1)},
            {"task": "chief-0", "attempt": 1, "restart": 1, "values": {"final": 1.0}}]  # no window
    bounds = from_rows(rows)
    assert set(bounds["tasks"]) == {"chief-0"} and bounds["job"]["verdict"] == "compute"
    json.dumps(bounds)  # what status --json prints


def test_the_status_table_and_the_summary_lines():
    rows = [{"task": "chief-0", "attempt": 1, "breakdown": window(input_s=0.6, compute_s=0.4, peers_s=None,
                                                                   node="5b2c1f0e9a31ffff", memory_mb=1024)}]
    lines = bounds_lines(from_rows(rows))
    assert lines[0].startswith("bound: input-bound: chief-0: 60% of each step waiting for input")
    assert lines[1].startswith("  what to do: ")
    header, row = lines[-2].split(), lines[-1].split()
    assert header == ["TASK", "NODE", "STEP", "INPUT", "COMPUTE", "PEERS", "LOOP", "CKPT", "CPU", "MEMORY", "MB",
                      "VERDICT"]
    assert row == ["chief-0", "5b2c1f0e9a31", "10.0ms", "60%", "40%", "-", "-", "0%", "0.95/1", "400/1024",
                   "input-bound"]
    assert not any("TASK" in line for line in bounds_lines(from_rows(rows), table=False))
    assert bounds_lines(None) == []


# ------------------------------------------------------- the task's side

class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_window_is_the_wall_and_cpu_time_since_the_last_report_with_its_checkpoints_and_memory():
    clock, cpu = Clock(), Clock()
    reads = []
    windows = task_side.Windows(clock=clock, cpu=cpu,
                                read_memory=lambda pss: reads.append(pss) or ({"pss_mb": 50.0} if pss else {}))
    windows.begin(10)
    clock.now += 2.0
    cpu.now += 1.5
    windows.held(0.25)
    got = windows.close(30, timed={"steps": 19, "input_s": 0.5, "compute_s": 1.0, "peers_s": 0.2, "loop_s": 0.05})
    assert got == Breakdown(window_s=2.0, steps=20, timed_steps=19, input_s=0.5, compute_s=1.0, peers_s=0.2,
                            loop_s=0.05, checkpoint_s=0.25, cpu_s=1.5, node_cores=got.node_cores, pss_mb=50.0)
    clock.now += 0.5  # memory is read at most once a second
    second = windows.close(40)
    assert second.window_s == 0.5 and second.steps == 10 and second.checkpoint_s == 0 and reads == [True]
    assert second.pss_mb == 50.0 and second.timed_steps == 0 and second.input_s is None
    clock.now += 1.0
    assert windows.close(40) is None  # no step trained: a report after training
    assert reads == [True, False]  # the PSS at most once a minute: the kernel walks every mapping for it
    clock.now += 60.0
    windows.close(41)
    assert reads == [True, False, True]


def test_a_custom_loops_input_is_timed_as_it_iterates():
    clock = Clock()
    windows = task_side.Windows(clock=clock, cpu=lambda: 0.0, read_memory=lambda pss: {})
    windows.begin(0)

    def slow_batches():
        for i in range(4):
            clock.now += 0.1  # waiting for each batch
            yield i

    for _ in windows.timed_input(slow_batches()):
        clock.now += 0.15  # the step
    got = windows.close(4)
    assert got.input_s == pytest.approx(0.4) and got.timed_steps == 4
    assert got.compute_s == pytest.approx(0.6) and got.window_s == pytest.approx(1.0)


def test_memory_is_read_from_proc():
    got = task_side.memory()
    assert got["rss_peak_mb"] > 0 and got["node_memory_mb"] > got["node_available_mb"] > 0
    assert got["pss_mb"] is None or got["pss_mb"] > 0  # no smaps_rollup before Linux 4.14


def context(sent, **env):
    return TaskContext(job_name="j", job_dir="/tmp/j", attempt=1, strategy="multi_worker_mirrored", role="worker",
                       index=0, is_chief=False, num_workers=2, send=sent.append, **env)


def test_a_contexts_report_carries_its_window_unless_turned_off(monkeypatch):
    sent = []
    ctx = context(sent)
    for batch in ctx.timed_input(range(3)):
        pass
    ctx.report({"loss": 1.0}, step=3)
    assert sent[-1].breakdown.steps == 3 and sent[-1].breakdown.timed_steps == 3
    ctx.report({"final": 1.0}, step=3)  # after training: no step, no window
    assert sent[-1].breakdown is None
    monkeypatch.setenv("TFRAY_BREAKDOWN", "0")
    off = context(sent)
    assert list(off.timed_input(range(2))) == [0, 1]
    off.report({"loss": 1.0}, step=5)
    assert sent[-1].breakdown is None and off.windows is None
    json.loads(off.to_env())  # the context still crosses to a script as JSON


def test_a_window_crosses_the_pipe_and_lands_in_metrics_jsonl_with_what_the_task_reserved(tmp_path):
    report = MetricsReport(TaskKey("worker", 1), 7, {"loss": 0.5}, breakdown=Breakdown(window_s=1.0, steps=7))
    assert report_from_json(json.loads(json.dumps(report.to_json()))) == report
    assert "breakdown" not in MetricsReport(TaskKey("worker", 1), 7, {}).to_json()  # old rows' keys
    assert Breakdown.from_json({"window_s": 1.0, "steps": 2, "from_a_newer_task": 1}) == Breakdown(1.0, 2)
    progress = []
    collector = MetricsCollector(tmp_path, "j", 1, chief="worker-1", on_progress=progress.append,
                                 reserved=lambda task: {"cpu_share": 2.0, "memory_mb": None, "node": "n1"})
    slow_input = Breakdown(**{k: v for k, v in window(input_s=0.8, compute_s=0.2).items()
                              if k in {f.name for f in dataclasses.fields(Breakdown)}})
    collector.handle([dataclasses.replace(report, breakdown=slow_input)])
    row = read_metrics(tmp_path)[0]
    assert row["breakdown"]["cpu_share"] == 2.0 and row["breakdown"]["node"] == "n1"
    assert "memory_mb" not in row["breakdown"]
    assert progress[-1].bound == "input-bound" and progress[-1].line().endswith("  input-bound")


def test_a_change_of_what_bounds_the_job_is_an_event_of_its_attempt(tmp_path):
    from controller.machine.record import JobRecord
    from controller.states.events import BoundChanged
    from tests.unit import fakes

    spec = fakes.make_spec(tmp_path)
    controller, group = fakes.running(spec)

    def windowed(step, **parts):
        return MetricsReport(fakes.CHIEF, step, {"loss": 1.0}, breakdown=Breakdown(
            window_s=1.0, steps=10, timed_steps=10, input_s=parts["input_s"], compute_s=parts["compute_s"]))

    group.reports = [windowed(10, input_s=0.8, compute_s=0.2)]
    controller.step()
    group.reports = [windowed(20, input_s=0.8, compute_s=0.2)]  # the same: no new event
    controller.step()
    group.reports = [windowed(30, input_s=0.0, compute_s=1.0)]
    controller.step()
    controller.stop()
    (attempt,) = JobRecord(spec.job_dir, spec.name).attempts()
    changes = [e for e in attempt.events if isinstance(e, BoundChanged)]
    assert [(e.verdict, e.word, e.task) for e in changes] == [("input", "input-bound", str(fakes.CHIEF)),
                                                               ("compute", "compute-bound", str(fakes.CHIEF))]
    assert changes[0].figure.startswith("80% of each step waiting for input")


def test_what_bounds_the_job_is_a_gauge_with_each_tasks_shares_cpu_and_memory(tmp_path):
    from tests.unit import fakes
    from tests.unit.test_job_gauges import value

    clock, exports = fakes.FakeClock(), []
    controller, group = fakes.running(fakes.make_spec(tmp_path), clock=clock, export_gauges=exports.append)
    group.reports = [MetricsReport(fakes.CHIEF, 10, {}, breakdown=Breakdown(
        window_s=1.0, steps=10, timed_steps=10, input_s=0.6, compute_s=0.3, peers_s=0.1, cpu_s=0.5,
        rss_peak_mb=300.0))]
    clock.now += 1.5  # past the export interval
    controller.step()
    assert value(exports, "tfray_bound", verdict="input") == 1 and value(exports, "tfray_bound", verdict="compute") == 0
    chief = str(fakes.CHIEF)
    assert value(exports, "tfray_step_share", task=chief, part="input") == pytest.approx(0.6)
    assert value(exports, "tfray_step_share", task=chief, part="peers") == pytest.approx(0.1)
    assert value(exports, "tfray_cpu_cores", task=chief) == 0.5
    assert value(exports, "tfray_memory_peak_mb", task=chief) == 300
