"""`tfray predict`'s pure parts: what was asked, checked before Ray starts (each refusal names the flag, field or
file), and the summary's arithmetic. Nothing here starts Ray or imports TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli.app import main
from controller.cli.exit_codes import EXIT_BAD_INPUT
from controller.predict.request import PredictOptions, check_room, format_of, plan_predict
from controller.predict.summary import ActorSpan, PredictResult, actor_seconds, duration, progress_line, render_summary
from controller.spec import PredictSpec, SpecError, parse_spec
from protocol.predict import ROW_NUMBER

REPO = Path(__file__).resolve().parents[2]


def make_spec(tmp_path: Path, predict: dict | None = None, **extra):
    data = {"name": "digits", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 1}},
            "entrypoint": {"function": "examples.digits:train", "args": {"hidden_units": 8}},
            "storage_path": str(tmp_path / "runs"), **extra}
    if predict is not None:
        data["predict"] = predict
    return parse_spec(data, base_dir=REPO)


def a_model(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "saved_model.pb").write_bytes(b"")
    return path


@pytest.fixture
def setup(tmp_path):
    """A spec whose job exported a model, an input file and where the output goes."""
    spec = make_spec(tmp_path, {"concurrency": 3, "cpus_per_actor": 0.5, "price_per_node_hour": 2.0})
    a_model(spec.job_dir / "model")
    data = tmp_path / "data.parquet"
    data.write_bytes(b"PAR1")
    return spec, str(data), str(tmp_path / "out")


def plan(spec, input_path, output, **options):
    return plan_predict(spec, PredictOptions(input=input_path, output=output, **options), [str(REPO)])


def test_the_default_model_is_the_jobs_export_and_the_flags_win_over_the_spec(setup):
    spec, data, out = setup
    request = plan(spec, data, out, concurrency=2)
    assert request.predictor.model_path == str(spec.job_dir / "model")
    assert request.input_format == "parquet" and request.numbered and request.predictor.id_column == ROW_NUMBER
    assert (request.settings.concurrency, request.settings.cpus_per_actor, request.settings.batch_size) == (2, 0.5, 256)
    assert request.settings.price_per_node_hour == 2.0 and not request.overwrite


def test_an_id_column_streams_and_names_the_output_id(setup):
    spec, data, out = setup
    request = plan(spec, data, out, id_column="image_id", labels="label")
    assert not request.numbered and request.predictor.id_column == "image_id"
    assert request.predictor.labels_column == "label"


@pytest.mark.parametrize(("options", "named"), [
    ({"concurrency": 0}, "--concurrency"),
    ({"cpus_per_actor": -1.0}, "--cpus-per-actor"),
    ({"gpus_per_actor": -0.5}, "--gpus-per-actor"),
    ({"batch_size": 0}, "--batch-size"),
    ({"fault": "kill@step=3"}, "kill@batch=N"),
    ({"fault": "kill@batch=0"}, "kill@batch=N"),
    ({"id_column": " "}, "--id-column"),
    ({"id_column": "y", "labels": "y"}, "--labels and --id-column"),
    ({"input_format": "xlsx"}, "--format 'xlsx'"),
    ({"checkpoint": "latest"}, "predict.model_function"),
])
def test_bad_options_are_refused_with_the_flag_named(setup, options, named):
    spec, data, out = setup
    with pytest.raises(SpecError, match=named.replace("(", r"\(").replace(")", r"\)")):
        plan(spec, data, out, **options)


def test_the_model_must_be_there(setup, tmp_path):
    spec, data, out = setup
    with pytest.raises(SpecError, match="--model .*it does not exist; give a SavedModel"):
        plan(spec, data, out, model=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="no SavedModel"):
        plan(spec, data, out, model=str(tmp_path / "empty"))
    untrained = make_spec(tmp_path / "other")
    with pytest.raises(SpecError, match="exported model.*tfray run"):
        plan(untrained, data, out)
    assert plan(spec, data, out, model=str(a_model(tmp_path / "mine"))).predictor.model_path.endswith("mine")


def test_the_input_must_be_readable_and_its_format_known(setup, tmp_path):
    spec, _, out = setup
    with pytest.raises(SpecError, match="--input .*no such file"):
        plan(spec, str(tmp_path / "missing.csv"), out)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SpecError, match="holds no files"):
        plan(spec, str(tmp_path / "nothing"), out)
    (tmp_path / "odd.bin").write_bytes(b"x")
    with pytest.raises(SpecError, match="give --format"):
        plan(spec, str(tmp_path / "odd.bin"), out)
    assert plan(spec, str(tmp_path / "odd.bin"), out, input_format="numpy").input_format == "numpy"
    assert plan(spec, "s3://bucket/data/", out, input_format="csv").input == "s3://bucket/data/"


def test_formats_are_told_from_names(tmp_path):
    (tmp_path / "shards" / "a").mkdir(parents=True)
    (tmp_path / "shards" / "a" / "part-0.csv").write_text("x\n1\n")
    assert format_of(str(tmp_path / "shards")) == "csv"
    assert format_of("gs://b/x.npy") == "numpy"
    assert format_of("gs://b/images/") is None


def test_an_output_that_holds_files_is_refused_unless_overwrite(setup, tmp_path):
    spec, data, out = setup
    Path(out).mkdir()
    assert plan(spec, data, out).overwrite, "an empty folder is there to be written"
    (Path(out) / "old.parquet").write_bytes(b"x")
    with pytest.raises(SpecError, match="--output .*--overwrite"):
        plan(spec, data, out)
    assert plan(spec, data, out, overwrite=True).overwrite
    Path(data + ".x").write_bytes(b"")
    with pytest.raises(SpecError, match="a file is there"):
        plan(spec, data, data + ".x")
    with pytest.raises(SpecError, match="overlaps --input"):
        plan(spec, str(tmp_path), str(tmp_path / "preds"))


def test_a_checkpoint_goes_through_the_specs_model_function(tmp_path):
    spec = make_spec(tmp_path, {"model_function": "examples.digits:build_model"})
    data = tmp_path / "x.csv"
    data.write_text("a\n1\n")
    with pytest.raises(SpecError, match="no complete checkpoint"):
        plan(spec, str(data), str(tmp_path / "out"), checkpoint="latest")
    folder = tmp_path / "ckpt-000000010"
    folder.mkdir()
    with pytest.raises(SpecError, match="no ckpt.index"):
        plan(spec, str(data), str(tmp_path / "out"), checkpoint=str(folder))
    (folder / "ckpt.index").write_bytes(b"")
    request = plan(spec, str(data), str(tmp_path / "out"), checkpoint=str(folder))
    config = request.predictor
    assert config.checkpoint == str(folder / "ckpt") and config.build_function == "examples.digits:build_model"
    assert config.build_args == {"hidden_units": 8} and str(REPO) in config.sys_path
    with pytest.raises(SpecError, match="both given"):
        plan(spec, str(data), str(tmp_path / "out"), checkpoint=str(folder), model=str(a_model(tmp_path / "m")))
    missing = make_spec(tmp_path, {"model_function": "examples.digits:no_such_function"})
    with pytest.raises(SpecError, match="predict.model_function.*no top-level 'no_such_function'"):
        plan(missing, str(data), str(tmp_path / "out"), checkpoint=str(folder))


@pytest.mark.parametrize(("predict", "named"), [
    ({"concurrency": 0}, "predict.concurrency"),
    ({"gpus_per_actor": -1}, "predict.gpus_per_actor"),
    ({"model_function": "examples.digits"}, "module:function"),
    ({"price_per_node_hour": -3}, "predict.price_per_node_hour"),
    ({"actors": 2}, "predict.actors: unknown key"),
])
def test_the_specs_predict_section_is_checked(tmp_path, predict, named):
    with pytest.raises(SpecError, match=named):
        make_spec(tmp_path, predict)


def test_a_local_ray_must_hold_the_actors_and_room_to_read():
    check_room(PredictSpec(concurrency=2, cpus_per_actor=1), cpus=3, gpus=None)
    with pytest.raises(SpecError, match="has 2, and Ray Data's read"):
        check_room(PredictSpec(concurrency=2, cpus_per_actor=1), cpus=2, gpus=None)
    with pytest.raises(SpecError, match="has 1 GPUs"):
        check_room(PredictSpec(concurrency=2, gpus_per_actor=1), cpus=8, gpus=1)


def test_the_summary_arithmetic():
    result = PredictResult(rows=1800, output="/o", model="model m", wall_s=9.0, actor_s=16.0, nodes=2, actors=2,
                           restarts=1, price_per_node_hour=3.6, metrics={"accuracy": 0.97})
    assert result.rows_per_s == 200.0 and result.node_s == 18.0 and result.cost == pytest.approx(0.018)
    text = render_summary(result)
    assert "predicted 1,800 rows in 9.0s (200.0 rows/s) with model m" in text
    assert "actors: 2 (1 restarted" in text and "18.0 node-seconds" in text and "cost: 0.0180" in text
    assert "accuracy 0.9700" in text
    assert PredictResult(rows=0, output="/o", model="m", wall_s=0.0, actor_s=0, nodes=1, actors=0).rows_per_s == 0
    assert "cost" not in render_summary(PredictResult(rows=1, output="/o", model="m", wall_s=1, actor_s=1, nodes=1,
                                                      actors=1))


def test_actor_seconds_count_only_the_run():
    spans = [ActorSpan(100.0, 110.0, "a"), ActorSpan(95.0, None, "a"), ActorSpan(130.0, 140.0, "b")]
    assert actor_seconds(spans, run_start_s=100.0, run_end_s=120.0) == 10.0 + 20.0 + 0.0


def test_durations_and_the_progress_line():
    assert [duration(s) for s in (1.25, 42.4, 185, 3725)] == ["1.2s", "42s", "3m05s", "1h02m"]
    assert progress_line(500, 2000, 10.0) == "predict: 500 of 2,000 rows written (25%), 50.0 rows/s, elapsed 10s"
    assert progress_line(0, None, 0.0) == "predict: 0 rows written, 0.0 rows/s, elapsed 0.0s"


def test_the_cli_refuses_bad_input_with_exit_2_and_no_traceback(tmp_path, capsys):
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(f"name: d\nstrategy: multi_worker_mirrored\nroles: {{worker: {{count: 1}}}}\n"
                         f"entrypoint: {{function: examples.digits:train}}\nstorage_path: {tmp_path}/runs\n")
    code = main(["predict", str(spec_file), "--input", str(tmp_path / "none.csv"), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "--input" in err and "Traceback" not in err


def test_predict_help_teaches_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    assert "tfray predict cluster_configs/jobs/digits_mwms.yaml --input" in text and "--overwrite" in text
