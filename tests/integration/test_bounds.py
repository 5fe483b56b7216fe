"""What bounds a job, said on real TensorFlow: a Keras fit whose input pipeline sleeps for each batch is
input-bound, on the progress line, in metrics.jsonl, TensorBoard, `tfray status` and the end summary."""

import pytest

from controller.api import run_job
from controller.report.bounds import from_rows
from controller.report.metrics import read_metrics
from controller.report.tensorboard import TENSORBOARD_DIR
from controller.states.state import JobState
from controller.status.gather import job_view
from controller.status.summary import summary_lines
from controller.status.view import render_status

from .conftest import REPO, assert_nothing_left, job_spec

pytestmark = pytest.mark.integration

# One MWMS worker: the strategy's scope, its all-reduce and the step clock's variables as in a larger job, on one
# of the machine's two cores. 12 steps an epoch, each waiting 40 ms for its batch and computing well under 1 ms.
ROLES = {"worker": {"count": 1, "resources": {"cpu": 1}}}


def test_a_job_whose_input_sleeps_is_named_input_bound(local_ray, tmp_path):
    spec = job_spec(tmp_path, "slow-input", {"function": "tests.integration.entrypoints:slow_input",
                                             "args": {"epochs": 3}}, roles=ROLES,
                    timeouts={"scheduling_s": 60, "startup_s": 120, "job_s": 120})
    lines = []
    result = run_job(spec, [str(REPO)], on_progress=lambda progress: lines.append(progress.line()))
    assert result.state is JobState.SUCCEEDED, result.message
    assert_nothing_left()

    windows = [r["breakdown"] for r in read_metrics(spec.job_dir) if "breakdown" in r]
    assert len(windows) == 3, windows  # one an epoch
    for window in windows:
        assert window["steps"] == 12 and window["timed_steps"] == 11  # an epoch's first step is not timed
        assert window["input_s"] > 10 * window["compute_s"], window
        assert window["cpu_share"] == 1 and window["node"] and window["pss_mb"] > 0

    bounds = from_rows(read_metrics(spec.job_dir))
    assert bounds["job"]["verdict"] == "input", bounds
    assert "waiting for input" in bounds["job"]["figure"]
    assert any("num_parallel_calls=tf.data.AUTOTUNE" in action for action in bounds["job"]["actions"])
    assert lines and lines[-1].endswith("input-bound"), lines

    status = render_status(job_view(spec))
    assert "bound: input-bound: worker-0:" in status and "TASK" in status and "VERDICT" in status, status
    assert any(line.startswith("bound: input-bound") for line in summary_lines(spec, result))
    assert list((spec.job_dir / TENSORBOARD_DIR / "attempt-1" / "worker-0").glob("events*"))
