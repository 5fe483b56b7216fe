"""What ``tfray predict`` was asked, checked on this machine before Ray starts: the model, the data, the actors.

:func:`plan_predict` turns the command's options (:class:`PredictOptions`, the flags or the API's
arguments) and the job spec into one frozen :class:`PredictRequest`, or raises ``SpecError`` naming the
flag, field or file and what to do. A flag wins over the spec's ``predict:`` section, which wins over its
defaults. What can only be known by reading the data (its columns) is checked once Ray reads its schema,
before any prediction actor starts (``controller/ray/batch.py``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from controller.spec import JobSpec, PredictSpec, SpecError, find_function, format_validation_error
from controller.store.checkpoints import CheckpointManifest
from controller.store.storage import is_uri
from protocol.layout import CKPT_PREFIX, MODEL_DIR
from protocol.predict import PredictorConfig

# Ray Data's reader for each format, and the file names that say which one a path holds.
READERS = {"parquet": "read_parquet", "csv": "read_csv", "numpy": "read_numpy", "json": "read_json",
           "tfrecords": "read_tfrecords", "images": "read_images"}
EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".npy": "numpy", ".json": "json",
              ".jsonl": "json", ".tfrecord": "tfrecords", ".tfrecords": "tfrecords", ".png": "images",
              ".jpg": "images", ".jpeg": "images"}
FLAGS = {"concurrency": "--concurrency", "cpus_per_actor": "--cpus-per-actor", "gpus_per_actor": "--gpus-per-actor",
         "batch_size": "--batch-size"}
FAULT_RULE = re.compile(r"kill@batch=([1-9][0-9]*)")
LATEST = "latest"


@dataclass(frozen=True)
class PredictOptions:
    """What the caller asked, as given: ``None`` leaves a value to the spec's ``predict:`` section."""

    input: str
    output: str
    model: str | None = None
    checkpoint: str | None = None
    id_column: str | None = None
    labels: str | None = None
    features: tuple[str, ...] = ()
    input_format: str | None = None
    concurrency: int | None = None
    cpus_per_actor: float | None = None
    gpus_per_actor: float | None = None
    batch_size: int | None = None
    overwrite: bool = False
    fault: str | None = None


@dataclass(frozen=True)
class PredictRequest:
    """One checked prediction run: what to read, what to write, the actors and what each is sent."""

    input: str
    input_format: str
    output: str
    overwrite: bool
    predictor: PredictorConfig
    numbered: bool  # the input has no id column: its rows are numbered (protocol.predict.ROW_NUMBER)
    settings: PredictSpec  # concurrency, resources, batch size, price: flags over the spec
    model_label: str  # the model as the summary names it
    runtime_env: dict | None = None


def options_of(input_path: str, output: str, options: dict) -> PredictOptions:
    """The API's keyword arguments as :class:`PredictOptions`; SpecError naming one it does not take."""
    try:
        return PredictOptions(input=str(input_path), output=str(output), **options)
    except TypeError as err:
        raise SpecError(f"predict: {err}") from None


def plan_predict(spec: JobSpec, options: PredictOptions, sys_path: list[str],
                 runtime_env: dict | None = None) -> PredictRequest:
    """The request for ``options`` on ``spec``'s job (see the module's docstring); SpecError for bad input."""
    settings = _settings(spec, options)
    input_format = _check_input(options.input, options.input_format)
    output = _check_output(options.output, options.input, options.overwrite)
    if options.id_column is not None and not options.id_column.strip():
        raise SpecError("--id-column: give a column name, or leave it out to number the rows")
    if options.labels is not None and options.labels == options.id_column:
        raise SpecError(f"--labels and --id-column both name {options.labels!r}: the labels are another column")
    kill_at = _fault(options.fault)
    from protocol.predict import ROW_NUMBER

    common = {"id_column": options.id_column or ROW_NUMBER, "feature_columns": tuple(options.features),
              "labels_column": options.labels, "sys_path": tuple(sys_path), "kill_at_batch": kill_at}
    predictor, label = model_config(spec, options.model, options.checkpoint, **common)
    empty = not is_uri(output) and Path(output).is_dir() and not any(Path(output).iterdir())
    return PredictRequest(input=_absolute(options.input), input_format=input_format, output=output,
                          overwrite=options.overwrite or empty, predictor=predictor, numbered=options.id_column is None,
                          settings=settings, model_label=label, runtime_env=runtime_env)


def model_config(spec: JobSpec, model: str | None, checkpoint: str | None, **common) -> tuple[PredictorConfig, str]:
    """The model a run loads, as an actor's config (``common``: its other fields), and how to name it: the job's
    exported model, ``model`` (a path) or ``checkpoint`` through the spec's ``predict.model_function``."""
    if checkpoint is not None:
        if model is not None:
            raise SpecError("--model and --checkpoint both given: a run uses one model; keep one")
        function = _model_function(spec, list(common.get("sys_path", ())))
        prefix = _checkpoint_prefix(spec, checkpoint)
        return (PredictorConfig(model_path=prefix, checkpoint=prefix, build_function=function,
                                build_args=_build_args(spec), **common), f"checkpoint {prefix} through {function}")
    path = model or _exported_model(spec)
    _check_model(path, model is not None, spec.name)
    return PredictorConfig(model_path=path, **common), f"model {path}"


def check_room(settings: PredictSpec, cpus: float, gpus: float | None) -> None:
    """SpecError when a Ray that cannot grow (a local one) of ``cpus`` CPUs and ``gpus`` GPUs (None: not known
    yet) cannot hold the actors and still run Ray Data's read and write tasks beside them: the run would wait
    forever for a CPU."""
    actors_cpus = settings.concurrency * settings.cpus_per_actor
    if actors_cpus + 1 > cpus:
        raise SpecError(f"{settings.concurrency} actor(s) x {settings.cpus_per_actor:g} CPU(s) = {actors_cpus:g} "
                        f"CPUs (--concurrency, --cpus-per-actor), but this Ray has {cpus:g}, and Ray Data's read "
                        "and write tasks need at least 1 more: use fewer actors, fewer CPUs each, or --num-cpus")
    if gpus is not None and settings.concurrency * settings.gpus_per_actor > gpus:
        raise SpecError(f"{settings.concurrency} actor(s) x {settings.gpus_per_actor:g} GPU(s) (--concurrency, "
                        f"--gpus-per-actor), but this Ray has {gpus:g} GPUs")


def _settings(spec: JobSpec, options: PredictOptions) -> PredictSpec:
    from pydantic import ValidationError

    base = (spec.predict or PredictSpec.model_construct()).model_dump()
    flags = {name: getattr(options, name) for name in FLAGS if getattr(options, name) is not None}
    try:
        return PredictSpec.model_validate({**base, **flags})
    except ValidationError as err:
        text = format_validation_error(err, "tfray predict")
        for name, flag in FLAGS.items():
            if name in flags:
                text = text.replace(f"  - {name}:", f"  - {flag}:")
            else:
                text = text.replace(f"  - {name}:", f"  - predict.{name} (the spec):")
        raise SpecError(text) from None


def _absolute(path: str) -> str:
    return path if is_uri(path) else str(Path(path).expanduser().resolve())


def format_of(path: str) -> str | None:
    """The format a path's name says, or None: a file's extension, or the first such file in a folder."""
    suffix = Path(path.rstrip("/")).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    local = Path(path).expanduser()
    if not is_uri(path) and local.is_dir():
        for child in sorted(local.rglob("*")):
            if child.is_file() and child.suffix.lower() in EXTENSIONS:
                return EXTENSIONS[child.suffix.lower()]
    return None


def _check_input(path: str, given: str | None) -> str:
    if given is not None and given not in READERS:
        raise SpecError(f"--format {given!r}: one of {', '.join(READERS)}")
    if not is_uri(path):
        local = Path(path).expanduser()
        if not local.exists():
            raise SpecError(f"--input {path}: no such file or folder")
        if not os.access(local, os.R_OK) or (local.is_dir() and not os.access(local, os.X_OK)):
            raise SpecError(f"--input {path}: not readable by this user; check its permissions")
        if local.is_dir() and not any(p.is_file() for p in local.rglob("*")):
            raise SpecError(f"--input {path}: the folder holds no files")
    found = given or format_of(path)
    if found is None:
        raise SpecError(f"--input {path}: its format cannot be told from its name; give --format "
                        f"({', '.join(READERS)})")
    return found


def _check_output(path: str, input_path: str, overwrite: bool) -> str:
    if is_uri(path):
        return path  # Ray Data refuses one that exists (SaveMode.CREATE) unless --overwrite
    local = Path(path).expanduser().resolve()
    if not is_uri(input_path):
        source = Path(input_path).expanduser().resolve()
        if local == source or source in local.parents or local in source.parents:
            raise SpecError(f"--output {path}: it overlaps --input {input_path}; write elsewhere")
    if local.exists() and not local.is_dir():
        raise SpecError(f"--output {path}: a file is there; the output is a folder of Parquet files")
    if local.exists() and any(local.iterdir()) and not overwrite:
        raise SpecError(f"--output {path}: the folder exists and is not empty; give --overwrite to replace it, "
                        "or another folder")
    parent = next((p for p in [local, *local.parents] if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK):
        raise SpecError(f"--output {path}: {parent} cannot be written by this user")
    return str(local)


def _fault(text: str | None) -> int | None:
    if text is None:
        return None
    match = FAULT_RULE.fullmatch(text)
    if match is None:
        raise SpecError(f"--fault {text!r}: the one fault a prediction run takes is kill@batch=N (N >= 1): "
                        "the first actor to reach its Nth batch is SIGKILLed with it in flight")
    return int(match.group(1))


def _exported_model(spec: JobSpec) -> str:
    """The job's exported model: the chief's SavedModel in the job folder's ``model/`` (at its URI if stored
    at one and not mirrored here)."""
    local = spec.job_dir / MODEL_DIR
    if spec.storage_uri is not None and not local.exists():
        return f"{spec.storage_uri}/{MODEL_DIR}"
    return str(local)


def _check_model(path: str, given: bool, job: str) -> None:
    """SpecError unless ``path`` holds a model: a SavedModel folder, or a .keras/.h5 file."""
    if is_uri(path):
        return  # read by TensorFlow in the actors; a missing one fails the first actor's start
    local = Path(path)
    what = f"--model {path}" if given else f"job {job}'s exported model {path}"
    fix = ("give a SavedModel or Keras model folder, or a .keras file" if given else "train it first (`tfray run "
           "JOB.yaml`; the code saves it with ctx.save_model), or give --model PATH or --checkpoint")
    if not local.exists():
        raise SpecError(f"{what}: it does not exist; {fix}")
    if local.is_file() and local.suffix not in (".keras", ".h5"):
        raise SpecError(f"{what}: a file, but not a .keras or .h5 model; {fix}")
    if local.is_dir() and not any((local / name).exists() for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise SpecError(f"{what}: no SavedModel in it (no saved_model.pb); {fix}")


def _model_function(spec: JobSpec, sys_path: list[str]) -> str:
    function = spec.predict.model_function if spec.predict else None
    if function is None:
        raise SpecError("--checkpoint: the spec names no predict.model_function (module:function returning the "
                        "job's Keras model) to load the checkpoint's weights into; add it, or give --model PATH")
    module, _, name = function.partition(":")
    find_function(module, name, sys_path, "predict.model_function")
    return function


def _build_args(spec: JobSpec) -> dict:
    """The entrypoint's arguments, all of them: the actor keeps those the function names (workers side)."""
    return dict(spec.entrypoint.args or {})


def _checkpoint_prefix(spec: JobSpec, given: str) -> str:
    """A checkpoint's prefix: ``latest`` (the job's newest complete checkpoint), a ckpt-N folder, or a prefix."""
    if given == LATEST:
        record = CheckpointManifest(spec.job_dir, keep=spec.checkpoint.keep).latest()
        if record is None:
            raise SpecError(f"--checkpoint latest: job {spec.name} has no complete checkpoint in {spec.job_dir}")
        return str(Path(record.path) / CKPT_PREFIX)
    path = Path(given).expanduser().resolve()
    if path.is_dir():
        if not (path / f"{CKPT_PREFIX}.index").exists():
            raise SpecError(f"--checkpoint {given}: no {CKPT_PREFIX}.index in it; give a checkpoint folder "
                            "(ckpt-<step>), its prefix, or 'latest'")
        return str(path / CKPT_PREFIX)
    if not Path(f"{path}.index").exists():
        raise SpecError(f"--checkpoint {given}: no such checkpoint (neither a folder nor a prefix with .index)")
    return str(path)
