"""The metrics collector writes JSON lines with identity and time, and tracks the chief's progress."""

import json

from controller.report.metrics import MetricsCollector, read_metrics
from protocol.wire import CheckpointReport, HeartbeatReport, MetricsReport, TaskKey

CHIEF, W0, W1 = TaskKey("chief", 0), TaskKey("worker", 0), TaskKey("worker", 1)


def test_reports_become_json_lines_and_checkpoints_pass_through(tmp_path):
    seen = []
    collector = MetricsCollector(tmp_path, "job", attempt=2, chief="chief-0", on_progress=seen.append)
    checkpoints = collector.handle([
        MetricsReport(W0, 5, {"loss": 0.5}),
        CheckpointReport(CHIEF, 5, "/x"),
        MetricsReport(CHIEF, 5, {"loss": 0.25, "examples_per_s": 100.0}),
    ])
    collector.close()
    assert checkpoints == [CheckpointReport(CHIEF, 5, "/x")]
    rows = read_metrics(tmp_path)
    assert [(r["task"], r["step"], r["job"], r["attempt"]) for r in rows] == [("worker-0", 5, "job", 2),
                                                                              ("chief-0", 5, "job", 2)]
    assert all("time" in r for r in rows)
    assert len(seen) == 1 and "step 5" in seen[0].line() and "loss 0.25" in seen[0].line()


def test_no_progress_for_reports_from_other_tasks(tmp_path):
    seen = []
    collector = MetricsCollector(tmp_path, "job", 1, chief="chief-0", on_progress=seen.append)
    collector.handle([MetricsReport(W1, 1, {})])
    assert seen == []


def test_the_chiefs_other_records_do_not_print_its_progress_again(tmp_path):
    """Reports arrive in small batches: the chief's checkpoint or heartbeat after its metrics is not news."""
    seen = []
    collector = MetricsCollector(tmp_path, "job", 1, chief="chief-0", on_progress=seen.append)
    collector.handle([MetricsReport(CHIEF, 14, {"loss": 1.0})])
    collector.handle([CheckpointReport(CHIEF, 14, "/x")])
    collector.handle([MetricsReport(W0, 14, {}), HeartbeatReport(CHIEF, pid=1)])
    assert [p.line() for p in seen] == [seen[0].line()] and "step 14" in seen[0].line()


def test_a_metrics_row_has_the_fields_it_always_had(tmp_path):
    """metrics.jsonl is read by `tfray status` and by people: its rows keep their keys."""
    collector = MetricsCollector(tmp_path, "job", 3, chief="chief-0")
    collector.restart = 1
    collector.handle([MetricsReport(W1, 7, {"loss": 0.5}, task_time=12.5)])
    collector.close()
    (line,) = (tmp_path / "metrics.jsonl").read_text().splitlines()
    row = json.loads(line)
    assert list(row) == sorted(row) and row.pop("time") > 0
    assert row == {"job": "job", "attempt": 3, "restart": 1, "kind": "metrics", "task": "worker-1", "role": "worker",
                   "index": 1, "step": 7, "task_time": 12.5, "values": {"loss": 0.5}}
