"""The trained model reaches the job folder: ``ctx.save_model`` puts the chief's copy in ``<job>/model`` and every
other task's in its own temporary folder, and the summary a run ends with names the folder once it holds one.
(The digits example exporting for real is tests/integration/test_mwms_local.py.)"""

from controller.spec import parse_spec
from controller.states.result import JobResult
from controller.states.state import JobState
from controller.status.summary import summary_lines
from protocol.wire import EventReport
from workers.context import TaskContext

SPEC = {"name": "exported", "strategy": "multi_worker_mirrored", "roles": {"chief": {"count": 1}},
        "entrypoint": {"function": "m:f"}, "storage_path": "runs"}


class SavedModel:
    """Stands in for a Keras model: ``save`` writes what TensorFlow's SavedModel writes first."""

    def __init__(self):
        self.saved_to: list[str] = []

    def save(self, path: str) -> None:
        self.saved_to.append(path)
        with open(f"{path}/saved_model.pb", "wb"):
            pass


def context(job_dir, role: str, sent: list) -> TaskContext:
    return TaskContext(job_name="exported", job_dir=str(job_dir), attempt=1, strategy="multi_worker_mirrored",
                       role=role, index=0, is_chief=role == "chief", num_workers=2, send=sent.append)


def test_the_chief_saves_into_the_job_folder_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("AIP_MODEL_DIR", raising=False)
    (tmp_path / "model").mkdir()  # the task actor makes it before the code runs
    sent, model = [], SavedModel()
    assert context(tmp_path, "chief", sent).save_model(model) == str(tmp_path / "model")
    assert model.saved_to == [str(tmp_path / "model")]
    assert [(r.event, r.details) for r in sent if isinstance(r, EventReport)] == [
        ("model_saved", {"path": str(tmp_path / "model")})]


def test_another_task_saves_into_its_own_folder_and_says_nothing(tmp_path, monkeypatch):
    own = tmp_path / "checkpoints" / "workertemp" / "worker-0" / "model"
    own.mkdir(parents=True)
    monkeypatch.setenv("AIP_MODEL_DIR", str(own))  # as the task actor sets it for a task that is not the chief
    sent, model = [], SavedModel()
    context(tmp_path, "worker", sent).save_model(model)
    assert model.saved_to == [str(own)] and not sent


def test_the_summary_names_the_model_folder_once_it_holds_a_model(tmp_path):
    spec = parse_spec(SPEC, base_dir=tmp_path)
    result = JobResult(state=JobState.SUCCEEDED, message="done", job_dir=str(spec.job_dir), attempt=1)
    (spec.job_dir / "model").mkdir(parents=True)  # made for every run, empty until the code saves
    assert not [line for line in summary_lines(spec, result) if line.startswith("model:")]
    SavedModel().save(str(spec.job_dir / "model"))
    assert f"model: {spec.job_dir / 'model'}" in summary_lines(spec, result)
