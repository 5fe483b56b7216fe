"""The wire protocol: task names formatted and parsed in one place; the roles agree with the spec's; the reports
and their one JSON form; a launch's parts."""

import dataclasses
import json
import pickle

import pytest

from controller.spec import ROLE_ORDER
from protocol.wire import (
    ROLES,
    CheckpointReport,
    Entrypoint,
    EventReport,
    FailureCause,
    FolderReport,
    HeartbeatReport,
    MetricsReport,
    OutputReport,
    RestorePoint,
    StoragePlan,
    TaskEnd,
    TaskKey,
    TaskLaunch,
    report_from_json,
)


@pytest.mark.parametrize("name, key", [("worker-1", TaskKey("worker", 1)), ("chief-0", TaskKey("chief", 0)),
                                       ("evaluator-0", TaskKey("evaluator", 0)), ("ps-12", TaskKey("ps", 12))])
def test_a_task_name_round_trips(name, key):
    assert TaskKey.parse(name) == key and str(key) == name


@pytest.mark.parametrize("name", ["worker", "worker-", "worker-x", "boss-1", "worker-1-2", "-1", ""])
def test_a_bad_task_name_says_what_a_good_one_looks_like(name):
    with pytest.raises(ValueError, match="role-index, e.g. worker-1"):
        TaskKey.parse(name)


def test_the_roles_are_the_specs_roles_in_plan_order():
    assert tuple(r.value for r in ROLE_ORDER) == ROLES


def test_an_end_says_how_it_ended():
    assert TaskEnd.done(TaskKey("chief", 0), 3).finished
    failed = TaskEnd.failed(TaskKey("worker", 1), FailureCause.HUNG, "silent")
    assert not failed.finished and failed.cause is FailureCause.HUNG


CHIEF = TaskKey("chief", 0)
REPORTS = [MetricsReport(CHIEF, 3, {"loss": 0.5}, task_time=1.5),
           MetricsReport(CHIEF, 4, {"epoch": 2}, task_time=1.5, total_epochs=15),
           CheckpointReport(CHIEF, 3, "/c", node_copy=True), FolderReport(CHIEF, "model", "/m"),
           OutputReport(CHIEF, ("a", "b")), HeartbeatReport(CHIEF, 7, 2.0),
           EventReport(CHIEF, "serving", {"target": "grpc://x", "pid": 7})]


@pytest.mark.parametrize("report", REPORTS, ids=lambda r: r.kind)
def test_a_report_crosses_a_pipe_and_ray_as_itself(report):
    assert report_from_json(json.loads(json.dumps(report.to_json()))) == report
    assert pickle.loads(pickle.dumps(report)) == report and report.task == "chief-0"


def test_the_json_of_a_report_is_flat_as_the_pipe_and_metrics_jsonl_have_it():
    assert REPORTS[0].to_json() == {"kind": "metrics", "task": "chief-0", "role": "chief", "index": 0, "step": 3,
                                    "task_time": 1.5, "values": {"loss": 0.5}}
    assert REPORTS[1].to_json()["total_epochs"] == 15  # known only to training that says so (Keras' fit)
    assert REPORTS[-1].to_json() == {"kind": "event", "task": "chief-0", "event": "serving", "target": "grpc://x",
                                     "pid": 7}


@pytest.mark.parametrize("data", [{"kind": "alive"}, {"kind": "metrics", "task": "chief-0"},
                                  {"kind": "checkpoint", "task": "boss-1", "step": 1, "path": "/c"}, {}])
def test_what_is_not_a_report_is_said_so(data):
    with pytest.raises(ValueError):
        report_from_json(data)


def test_a_launch_copied_with_replace_keeps_its_parts():
    launch = TaskLaunch(job_name="j", attempt=1, strategy="multi_worker_mirrored", role="worker", index=0,
                        is_chief=False, num_workers=2, tf_config=None, entrypoint=Entrypoint("function", "m:f"),
                        storage=StoragePlan("/j", "auto", "t"), restore=RestorePoint("/j/c", 10, 1))
    again = dataclasses.replace(launch, run=1)
    assert again.entrypoint is launch.entrypoint and again.restore.step == 10 and again.storage.token == "t"
