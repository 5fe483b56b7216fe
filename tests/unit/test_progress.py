"""The progress line says how far (epoch 7/15) and how long (elapsed, ETA), and only what is known: no total it was
not told, no ETA before an epoch has been timed; the summary a run ends with says how long it took."""

import pytest

from controller.machine.resume import fingerprint
from controller.report.metrics import MetricsCollector, read_metrics
from controller.report.progress import epochs_asked
from controller.spec import parse_spec
from controller.states.result import JobResult
from controller.states.state import JobState
from controller.status.summary import summary_lines
from protocol.wire import MetricsReport, TaskKey
from workers.context import TaskContext

CHIEF, W0 = TaskKey("chief", 0), TaskKey("worker", 0)


class Clock:
    """The driver's clock, moved by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def epoch_end(epoch: int, at: float, total: int | None = None, task=CHIEF) -> MetricsReport:
    """What JobCallback reports at the end of an epoch (``epoch`` counts from 1), on the task's clock."""
    return MetricsReport(task, epoch * 10, {"epoch": epoch, "loss": 1.0 / epoch}, task_time=at, total_epochs=total)


def collect(tmp_path, clock, total_epochs=None):
    seen = []
    collector = MetricsCollector(tmp_path, "job", 1, chief="chief-0", on_progress=seen.append,
                                 total_epochs=total_epochs, clock=clock)
    return collector, seen


def test_the_line_says_epoch_of_total_elapsed_and_an_eta_from_the_second_epoch_on(tmp_path):
    clock = Clock(1000.0)
    collector, seen = collect(tmp_path, clock)
    clock.now = 1100.0
    collector.handle([epoch_end(1, at=1090.0, total=15)])  # the first epoch carries the start: not timed
    first = seen[-1].line()
    assert first == "[chief-0] step 10  epoch 1/15  loss 1  elapsed 1m40s"
    clock.now = 1125.0
    collector.handle([epoch_end(2, at=1120.0, total=15)])  # one epoch took 30s; 13 to go
    assert seen[-1].line() == "[chief-0] step 20  epoch 2/15  loss 0.5  elapsed 2m05s  ETA 6m30s"
    assert seen[-1].eta_s == pytest.approx(13 * 30.0)


def test_no_total_without_one_and_so_no_eta(tmp_path):
    clock = Clock()
    collector, seen = collect(tmp_path, clock)
    collector.handle([epoch_end(1, at=10.0)])
    collector.handle([epoch_end(2, at=20.0)])
    line = seen[-1].line()
    assert "epoch 2  " in line and "/" not in line and "ETA" not in line and "elapsed" in line


def test_the_specs_epochs_are_the_total_when_the_training_does_not_say(tmp_path):
    clock = Clock()
    collector, seen = collect(tmp_path, clock, total_epochs=4)
    collector.handle([epoch_end(1, at=10.0)])
    collector.handle([epoch_end(2, at=20.0)])
    assert "epoch 2/4" in seen[-1].line() and "ETA 20s" in seen[-1].line()
    collector.handle([epoch_end(3, at=30.0, total=6)])  # what fit was asked to run wins over the spec
    assert "epoch 3/6" in seen[-1].line() and "ETA 30s" in seen[-1].line()


def test_a_report_without_an_epoch_keeps_the_last_one_and_the_last_epoch_has_no_eta(tmp_path):
    collector, seen = collect(tmp_path, Clock())
    collector.handle([epoch_end(1, at=10.0, total=2)])
    collector.handle([epoch_end(2, at=20.0, total=2)])
    assert "epoch 2/2" in seen[-1].line() and "ETA" not in seen[-1].line()
    collector.handle([MetricsReport(CHIEF, 20, {"final_val_accuracy": 0.97}, task_time=21.0)])
    assert seen[-1].line().startswith("[chief-0] step 20  epoch 2/2  final_val_accuracy 0.97  elapsed ")


def test_a_restart_of_the_cluster_times_its_epochs_anew(tmp_path):
    """The restarted cluster's first epoch carries its start again (and the time lost to the restart)."""
    collector, seen = collect(tmp_path, Clock())
    collector.handle([epoch_end(1, at=10.0, total=10), epoch_end(2, at=20.0, total=10)])
    assert seen[-1].eta_s == pytest.approx(80.0)
    collector.restart = 1
    collector.handle([epoch_end(3, at=500.0, total=10)])
    assert seen[-1].eta_s is None and "epoch 3/10" in seen[-1].line()
    collector.handle([epoch_end(4, at=512.0, total=10)])
    assert seen[-1].eta_s == pytest.approx(6 * 12.0)


def test_other_tasks_epochs_do_not_move_the_chiefs(tmp_path):
    collector, seen = collect(tmp_path, Clock())
    collector.handle([epoch_end(1, at=10.0, total=5), epoch_end(3, at=11.0, total=5, task=W0)])
    assert "epoch 1/5" in seen[-1].line()


def test_the_total_reaches_metrics_jsonl_only_when_known(tmp_path):
    collector, _ = collect(tmp_path, Clock())
    collector.handle([epoch_end(1, at=10.0, total=15), epoch_end(1, at=10.0, task=W0)])
    collector.close()
    assert [row.get("total_epochs", "absent") for row in read_metrics(tmp_path)] == [15, "absent"]


SPEC = {"name": "timed", "strategy": "multi_worker_mirrored", "roles": {"chief": {"count": 1}},
        "entrypoint": {"function": "m:f"}, "storage_path": "runs"}


@pytest.mark.parametrize("entrypoint, epochs", [
    ({"function": "m:f", "args": {"epochs": 15}}, 15),
    ({"script": "train.py", "argv": ["--epochs", "3", "data/"]}, 3),
    ({"script": "train.py", "argv": ["--epochs=7"]}, 7),
    ({"module": "pkg.train", "args": {"epochs": "12"}}, 12),
    ({"function": "m:f", "args": {"epochs": True}}, None),
    ({"function": "m:f", "args": {"epochs": 0}}, None),
    ({"function": "m:f", "args": {"steps": 100}}, None),
    ({"script": "train.py", "argv": ["--epochs"]}, None),
])
def test_the_epochs_a_spec_asks_for_as_the_attempts_record_keeps_them(entrypoint, epochs):
    spec = parse_spec({**SPEC, "entrypoint": entrypoint})
    assert epochs_asked(fingerprint(spec)["args"]) == epochs


@pytest.mark.parametrize("attempt, note", [(1, ""), (3, " (this attempt alone)")])
def test_the_summary_says_how_long_the_run_took(tmp_path, attempt, note):
    result = JobResult(state=JobState.SUCCEEDED, message="done", job_dir=str(tmp_path), attempt=attempt,
                       elapsed_s=3725.0)
    lines = summary_lines(parse_spec(SPEC), result)
    assert lines[1] == f"  total time 1h02m{note}"


def test_a_task_says_its_total_through_its_context():
    sent = []
    ctx = TaskContext(job_name="j", job_dir="/j", attempt=1, strategy="multi_worker_mirrored", role="chief", index=0,
                      is_chief=True, num_workers=1, send=sent.append)
    ctx.report({"epoch": 1, "loss": 0.5}, step=10, total_epochs=15)
    ctx.report({"final": 1.0}, step=10)
    assert [r.total_epochs for r in sent] == [15, None]
