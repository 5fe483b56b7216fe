"""The metrics collector writes JSON lines with identity and time, and tracks the chief's progress."""

from controller.report.metrics import MetricsCollector, read_metrics


def test_reports_become_json_lines_and_checkpoints_pass_through(tmp_path):
    seen = []
    collector = MetricsCollector(tmp_path, "job", attempt=2, chief="chief-0", on_progress=seen.append)
    checkpoints = collector.handle([
        {"kind": "metrics", "task": "worker-0", "role": "worker", "index": 0, "step": 5, "values": {"loss": 0.5}},
        {"kind": "checkpoint", "task": "chief-0", "step": 5, "path": "/x"},
        {"kind": "metrics", "task": "chief-0", "role": "chief", "index": 0, "step": 5,
         "values": {"loss": 0.25, "examples_per_s": 100.0}},
    ])
    collector.close()
    assert checkpoints == [{"kind": "checkpoint", "task": "chief-0", "step": 5, "path": "/x"}]
    rows = read_metrics(tmp_path)
    assert [(r["task"], r["step"], r["job"], r["attempt"]) for r in rows] == [("worker-0", 5, "job", 2),
                                                                              ("chief-0", 5, "job", 2)]
    assert all("time" in r for r in rows)
    assert len(seen) == 1 and "step 5" in seen[0].line() and "loss 0.25" in seen[0].line()


def test_no_progress_for_reports_from_other_tasks(tmp_path):
    seen = []
    collector = MetricsCollector(tmp_path, "job", 1, chief="chief-0", on_progress=seen.append)
    collector.handle([{"kind": "metrics", "task": "worker-1", "step": 1, "values": {}}])
    assert seen == []


def test_the_chiefs_other_records_do_not_print_its_progress_again(tmp_path):
    """Reports arrive in small batches: the chief's checkpoint or heartbeat after its metrics is not news."""
    seen = []
    collector = MetricsCollector(tmp_path, "job", 1, chief="chief-0", on_progress=seen.append)
    collector.handle([{"kind": "metrics", "task": "chief-0", "step": 14, "values": {"loss": 1.0}}])
    collector.handle([{"kind": "checkpoint", "task": "chief-0", "step": 14, "path": "/x"}])
    collector.handle([{"kind": "metrics", "task": "worker-0", "step": 14, "values": {}},
                      {"kind": "heartbeat", "task": "chief-0", "pid": 1, "notice": None}])
    assert [p.line() for p in seen] == [seen[0].line()] and "step 14" in seen[0].line()
