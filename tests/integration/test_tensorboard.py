"""The driver's TensorBoard view of a job, read back the way TensorBoard reads it: the event files the
driver wrote from the reports, and `tfray tensorboard` serving them on loopback. No Ray needed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from controller.report.tensorboard import ScalarWriter
from protocol.wire import MetricsReport, TaskKey

from .conftest import REPO, free_port, sigint_as_in_a_terminal

pytestmark = pytest.mark.integration
CHIEF = TaskKey("chief", 0)


def write_reports(job_dir) -> None:
    writer = ScalarWriter(job_dir, attempt=2, tasks={"chief-0"})
    for step in (10, 20, 30):
        writer.write(MetricsReport(CHIEF, step, {"loss": 1.0 / step, "epoch": step // 10, "note": "text is left out"}))
        writer.write(MetricsReport(TaskKey("worker", 0), step, {"loss": 9.0}))  # not the chief's: not shown
    writer.close()


def test_the_driver_writes_event_files_tensorboard_reads(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    write_reports(tmp_path)
    runs = sorted(p.relative_to(tmp_path / "tensorboard").as_posix() for p in (tmp_path / "tensorboard").glob("*/*"))
    assert runs == ["attempt-2/chief-0"]
    events = EventAccumulator(str(tmp_path / "tensorboard" / "attempt-2" / "chief-0"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"loss", "epoch"}
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("loss")] == [(10, 0.1), (20, 0.05), (30, 0.0333)]


def test_tfray_tensorboard_serves_the_job_on_loopback(tmp_path):
    spec = tmp_path / "job.yaml"
    (tmp_path / "train.py").write_text("print('hi')\n")
    spec.write_text(yaml.safe_dump({"name": "curves", "strategy": "multi_worker_mirrored",
                                    "roles": {"worker": {"count": 1}}, "entrypoint": {"script": "train.py"}}))
    write_reports(tmp_path / "runs" / "curves")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "controller", "tensorboard", str(spec), "--port", str(port)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              preexec_fn=sigint_as_in_a_terminal)
    try:
        deadline, tags = time.monotonic() + 90, None
        while tags is None:  # bounded: TensorBoard takes a few seconds to load its plugins
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "TensorBoard did not answer within 90 s"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as r:
                    tags = json.loads(r.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert "loss" in tags.get("tensorboard/attempt-2/chief-0", {}), tags
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert out.startswith(f"TensorBoard of job curves at http://127.0.0.1:{port}/")

