"""The job's gauges (what Prometheus scrapes through Ray): every series set on each export, the time spent
recovering measured on the controller's clock, a stopped job's ending exported."""

import time

from controller.report.gauges import METRICS
from controller.states.state import JobState, Recovering
from protocol.wire import MetricsReport
from tests.unit import fakes
from tests.unit.fakes import PS0

LATER = 30.0  # the wall clock the gauges read runs this far ahead of the checkpoint's seal


def latest(exports) -> dict:
    """The last value of each (name, tags) series across every export so far."""
    values = {}
    for samples in exports:
        for sample in samples:
            assert sample.name in METRICS and set(sample.tags) == set(METRICS[sample.name][1]), sample
            values[(sample.name, tuple(sorted(sample.tags.items())))] = sample.value
    return values


def value(exports, name: str, **tags) -> float:
    return latest(exports)[(name, tuple(sorted({"tfray_job": "job", **tags}.items())))]


def test_a_job_with_a_restart_exports_its_numbers(tmp_path):
    spec = fakes.pss_spec(tmp_path)
    clock, exports = fakes.FakeClock(), []
    controller, group = fakes.running(spec, clock=clock, export_gauges=exports.append,
                                      wall_clock=lambda: time.time() + LATER)
    assert value(exports, "tfray_job_state", state="RUNNING") == 1.0
    assert value(exports, "tfray_job_state", state="STARTING") == 0.0
    assert value(exports, "tfray_tasks", state="ALIVE") == 5 and value(exports, "tfray_task_alive", task="ps-0") == 1

    checkpoint = fakes.checkpoint_report(spec, 40, epoch=4)
    group.reports = [checkpoint, MetricsReport(fakes.CHIEF, 42, {"epoch": 4, "examples_per_s": 812.5, "loss": 0.3})]
    clock.now += 1.5  # past the export interval
    controller.step()
    assert value(exports, "tfray_step", task="chief-0") == 42 and value(exports, "tfray_epoch", task="chief-0") == 4
    assert value(exports, "tfray_examples_per_second", task="chief-0") == 812.5
    assert value(exports, "tfray_checkpoint_step") == 40
    assert LATER <= value(exports, "tfray_seconds_since_checkpoint") < LATER + 5

    group.ends = [fakes.died(PS0)]
    assert isinstance(controller.step(), Recovering)
    assert value(exports, "tfray_job_state", state="RECOVERING") == 1.0
    clock.now += 7.0  # the restart takes 7 s on the controller's clock
    assert fakes.states(controller, 2) == [JobState.STARTING, JobState.RUNNING]
    assert value(exports, "tfray_recovery_seconds") == 7.0
    assert value(exports, "tfray_restarts") == 1
    assert value(exports, "tfray_budget_spent", budget="max_infrastructure_failures") + value(
        exports, "tfray_budget_spent", budget="max_task_failures") == 1
    assert value(exports, "tfray_budget_limit", budget="max_task_failures") == spec.failure.max_task_failures


def test_nothing_is_exported_between_intervals_unless_the_state_changes(tmp_path):
    clock, exports = fakes.FakeClock(), []
    controller, _ = fakes.running(fakes.make_spec(tmp_path), clock=clock, export_gauges=exports.append)
    before = len(exports)
    controller.step()
    controller.step()
    assert len(exports) == before
    clock.now += 1.5
    controller.step()
    assert len(exports) == before + 1


def test_a_stopped_job_exports_its_ending(tmp_path):
    exports = []
    controller, group = fakes.running(fakes.make_spec(tmp_path), export_gauges=exports.append)
    group.poll_error = KeyboardInterrupt()
    assert controller.run().state is JobState.STOPPED
    assert value(exports, "tfray_job_state", state="STOPPED") == 1.0
    assert value(exports, "tfray_job_state", state="RUNNING") == 0.0
    assert value(exports, "tfray_tasks", state="STOPPED") == 3 and value(exports, "tfray_tasks", state="ALIVE") == 0


def test_the_grafana_dashboard_plots_only_gauges_the_controller_exports():
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana" / "tfray.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["query"]["query"])
    used = {name for expr in exprs for name in re.findall(r"ray_(tfray_\w+)", expr)}
    assert used and used <= set(METRICS), used - set(METRICS)
    assert set(METRICS) - used == set(), f"gauges no panel shows: {set(METRICS) - used}"


# Prometheus attaches these target labels to every series it scrapes (Ray's shipped prometheus.yml names its
# scrape job 'ray' and leaves honor_labels false). The relabelling rule, from Prometheus' scrape_config docs:
# "If honor_labels is set to false, label conflicts are resolved by renaming conflicting labels in the scraped
# data to exported_<original-label>". A gauge label named `job` would become `exported_job`, and every series
# would carry job="ray".
PROMETHEUS_TARGET_LABELS = ("job", "instance")


def after_scrape(exposed_labels) -> set[str]:
    """A series' own labels as Prometheus stores them when honor_labels is false (target labels left out)."""
    return {f"exported_{label}" if label in PROMETHEUS_TARGET_LABELS else label for label in exposed_labels}


def dashboard_label_uses() -> list[tuple[str, set[str], str]]:
    """(gauge, the labels a query names, the query) for every query and legend of the Grafana dashboard."""
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana" / "tfray.json").read_text())
    uses = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr, legend = target["expr"], target.get("legendFormat", "")
            gauges = set(re.findall(r"ray_(tfray_\w+)", expr))
            assert len(gauges) == 1, expr
            labels = {m for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
                      for m in re.split(r"\s*,\s*", group.strip()) if m}
            labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr))
            labels |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
            uses.append((gauges.pop(), labels, expr))
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            gauge, label = re.fullmatch(r"label_values\(ray_(tfray_\w+),\s*(\w+)\)", query["query"]).groups()
            uses.append((gauge, {label}, query["query"]))
    return uses


def test_no_gauge_label_collides_with_a_label_prometheus_sets_on_its_targets():
    for name, (_, tag_keys) in METRICS.items():
        assert not set(tag_keys) & set(PROMETHEUS_TARGET_LABELS), (name, tag_keys)


def test_every_label_the_dashboard_names_is_one_the_scraped_gauges_carry():
    uses = dashboard_label_uses()
    assert uses
    for gauge, labels, query in uses:
        assert labels <= after_scrape(METRICS[gauge][1]), (query, labels - after_scrape(METRICS[gauge][1]))
