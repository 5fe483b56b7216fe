"""The job record (job.json) and its typed events: written, read back, taken over after a lost driver."""

import json

from controller.machine.record import AttemptRecord, JobRecord
from controller.states.events import Decision, DrainNotice, Restart, TaskReported, from_json, task_reported
from protocol.wire import EventReport, TaskKey


def test_every_event_kind_reads_back_as_itself():
    events = [Decision(task="worker-1", cause="hung", action="restart_cluster", reason="r", node="n",
                       budget="max_task_failures", spent={"max_task_failures": 1}, error="e", time=1.0),
              Restart(restart=1, reason="failure", from_step=40, from_checkpoint="/c", time=2.0),
              DrainNotice(task="worker-0", node="n", deadline=None, time=3.0),
              task_reported(EventReport(TaskKey("ps", 0), "serving", {"target": "grpc://x", "pid": 7}))]
    assert [from_json(json.loads(json.dumps(e.to_json()))) for e in events[:3]] == events[:3]
    read = from_json(json.loads(json.dumps(events[3].to_json())))
    assert isinstance(read, TaskReported) and read.what == "serving" and read.details == {"target": "grpc://x",
                                                                                         "pid": 7}


def test_old_decisions_without_a_kind_still_read_and_unknown_kinds_are_skipped():
    old = {"time": 0, "task": "worker-1", "cause": "process_died", "action": "restart_cluster", "reason": "r"}
    assert isinstance(from_json(old), Decision)
    assert from_json({"event": "from_the_future", "time": 0}) is None
    assert from_json({"event": "restart", "time": 0}) is None  # a required field missing


def test_attempts_are_written_in_order_and_replaced_by_number(tmp_path):
    record = JobRecord(tmp_path, "j")
    assert record.attempts() == [] and record.next_attempt() == 1
    record.write_attempt(AttemptRecord(attempt=2, state="RUNNING"))
    record.write_attempt(AttemptRecord(attempt=1, state="FAILED"))
    record.write_attempt(AttemptRecord(attempt=2, state="SUCCEEDED", events=(Restart(restart=1, reason="grow"),)))
    attempts = record.attempts()
    assert [(a.attempt, a.state) for a in attempts] == [(1, "FAILED"), (2, "SUCCEEDED")]
    assert attempts[1].events[0].reason == "grow" and record.next_attempt() == 3


def test_an_attempt_that_never_ended_is_taken_over_and_marked(tmp_path):
    record = JobRecord(tmp_path, "j")
    record.write_attempt(AttemptRecord(attempt=1, state="RUNNING", restarts=2, spent={"max_task_failures": 2}))
    lost = record.take_over_lost_attempt(2)
    assert lost.restarts == 2 and lost.spent == {"max_task_failures": 2}
    (marked,) = record.attempts()
    assert marked.state == "DRIVER_LOST" and "attempt 2 carried on" in marked.message
    assert record.take_over_lost_attempt(3) is None  # it ended now


def test_events_are_appended_once_and_job_json_keeps_only_their_count(tmp_path):
    """A days-long job's record: each write appends the new events only; job.json does not grow with them."""
    record = JobRecord(tmp_path, "j")
    events = tuple(TaskReported(task="worker-1", what="serving", time=float(i)) for i in range(200))
    # A fixed updated_at: the clock's float takes 12 to 18 characters, which would move the size by more than
    # what this test looks for (it failed so, now and then).
    record.write_attempt(AttemptRecord(attempt=1, state="RUNNING", events=events[:1], updated_at=1.5))
    small = record.path.stat().st_size
    for n in range(2, 201):
        record.write_attempt(AttemptRecord(attempt=1, state="RUNNING", events=events[:n], updated_at=1.5))
    assert record.path.stat().st_size <= small + 4  # counters, not events (the count has more digits)
    data = json.loads(record.path.read_text())["attempts"][0]
    assert "events" not in data and data["event_count"] == 200
    assert len(record.events_path.read_text().splitlines()) == 200  # each event written once
    assert record.attempts()[0].events == events


def test_a_job_json_with_events_inline_still_reads_is_taken_over_and_kept(tmp_path):
    """A record written before events.jsonl: read as before; a new attempt's events go to the file and the
    old attempt's stay where they were."""
    old = {"name": "j", "attempts": [{"attempt": 1, "state": "RUNNING", "restarts": 1, "events": [
        {"time": 0, "task": "worker-1", "cause": "process_died", "action": "restart_cluster", "reason": "r"}]}]}
    (tmp_path / "job.json").write_text(json.dumps(old))
    record = JobRecord(tmp_path, "j")
    lost = record.take_over_lost_attempt(2)
    assert lost.restarts == 1 and isinstance(lost.events[0], Decision)
    record.write_attempt(AttemptRecord(attempt=2, state="SUCCEEDED", events=(*lost.events,
                                                                              Restart(restart=2, reason="failure"))))
    first, second = record.attempts()
    assert first.state == "DRIVER_LOST" and isinstance(first.events[0], Decision)
    assert [type(e) for e in second.events] == [Decision, Restart]
    data = json.loads(record.path.read_text())["attempts"]
    assert "events" in data[0] and "events" not in data[1]


def test_a_torn_last_event_line_is_skipped(tmp_path):
    record = JobRecord(tmp_path, "j")
    record.write_attempt(AttemptRecord(attempt=1, state="RUNNING", events=(Restart(restart=1, reason="grow"),)))
    with record.events_path.open("a") as f:
        f.write('{"attempt": 1, "record": {"event": "rest')
    assert [e.reason for e in record.attempts()[0].events] == ["grow"]
