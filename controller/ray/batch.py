"""A prediction run on Ray Data: read, number the rows if asked, ``map_batches`` on an actor pool, write Parquet.

The model's class is named by ``protocol.predict.PREDICTOR_CLASS`` (the controller never imports
``workers/``); Ray Data builds one per actor, so each actor loads the model once. Ray Data starts its map
actors with ``max_restarts=-1`` and ``max_task_retries=-1``: an actor killed with a batch in flight is
restarted and the batch is run again, and a batch's rows reach the writer once, from the attempt that
finished (docs/design.md §14; ``tests/integration/test_predict.py`` kills one and counts the ids).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import ray
from ray.exceptions import RayError

from controller import settings
from controller.predict.request import READERS, PredictRequest, check_room
from controller.predict.summary import ActorSpan, PredictFailedError, PredictResult, actor_seconds
from controller.ray import named_class
from controller.spec import SpecError
from controller.store.storage import is_uri
from protocol.predict import CORRECT, LOSS, PREDICTOR_CLASS

log = logging.getLogger("tfray")
BLOCKS_PER_ACTOR = 4  # the input in about this many blocks per actor: each actor has work while others finish
MAP_WORKER = "MapWorker"  # Ray Data's map actors' class name holds it (its class is _MapWorker)


def read(request: PredictRequest, pieces: int = 1):
    """The input as a Ray Data dataset, its columns checked against the options (SpecError naming the column);
    rows numbered when the input has no id column."""
    import ray.data

    try:
        ds = getattr(ray.data, READERS[request.input_format])(request.input, override_num_blocks=pieces)
        if request.numbered:
            ds = ds.materialize()  # read once: its schema, sizes and numbers all come from what is in memory
        schema = ds.schema()
    except Exception as err:  # noqa: BLE001 - what Ray Data raises for a path it cannot read or parse: bad input
        raise SpecError(f"--input {request.input}: Ray Data cannot read it as {request.input_format} "
                        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    names = list(schema.names) if schema is not None else []
    config = request.predictor
    wanted = [("--labels", config.labels_column)] + [("--features", c) for c in config.feature_columns]
    if not request.numbered:
        wanted.append(("--id-column", config.id_column))
    for flag, column in wanted:
        if column is not None and column not in names:
            raise SpecError(f"{flag} {column}: the input has no such column (its columns: {', '.join(names)})")
    if request.numbered and config.id_column in names:
        raise SpecError(f"--input: it has a column {config.id_column!r}, the name given to row numbers; give "
                        f"--id-column {config.id_column} to use it as the id")
    features = list(config.feature_columns) or [c for c in names if c not in (config.id_column, config.labels_column)]
    if not features:
        raise SpecError(f"--input {request.input}: no column is left for the model's input")
    arrays = [name for name, kind in zip(names, schema.types) if name in features and not _scalar(kind)]
    if len(features) > 1 and arrays:
        raise SpecError(f"--input {request.input}: the model's input would be the columns {', '.join(features)}, "
                        f"but {', '.join(arrays)} holds arrays: give --features {arrays[0]} (and --id-column or "
                        "--labels for the others)")
    return number_rows(ds, config.id_column, request.settings.batch_size, pieces) if request.numbered else ds


def _scalar(kind) -> bool:
    """A column of one number (or string) a row, not lists or tensors."""
    import pyarrow as pa

    return isinstance(kind, pa.DataType) and not isinstance(kind, pa.ExtensionType) and not (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind))


@ray.remote(num_cpus=0)
def _numbered(block, start: int, column: str, first: int, last: int):
    """One block's rows ``first:last`` with their numbers in the input, from ``start``, as a first column."""
    import pyarrow as pa
    from ray.data.block import BlockAccessor

    table = BlockAccessor.for_block(block).to_arrow().slice(first, last - first)
    return table.add_column(0, column, pa.array(range(start, start + table.num_rows), type=pa.int64()))


def number_rows(ds, column: str, min_rows: int, pieces: int):
    """The dataset with each row's number in the input (from 0, in the input's order) as ``column``, in about
    ``pieces`` blocks of at least ``min_rows`` rows, so every actor of the pool has blocks to take (Ray Data
    gives an actor a block at a time, and a small file is one block). Numbering needs every earlier block's
    size, so the input is read whole into Ray's object store first (spilled to disk past its room); an
    input with ids of its own streams instead (``--id-column``)."""
    import ray.data

    ds = ds.materialize()  # a no-op for the materialized dataset read() hands over
    per_piece = max(min_rows, -(-ds.count() // max(1, pieces)))
    refs, start = [], 0
    for bundle in ds.iter_internal_ref_bundles():
        for entry, part in zip(bundle.blocks, bundle.slices):
            first, last = (part.start_offset, part.end_offset) if part is not None else (0, entry.metadata.num_rows)
            for at in range(first, last, per_piece):
                end = min(at + per_piece, last)
                refs.append(_numbered.remote(entry.ref, start, column, at, end))
                start += end - at
    return ray.data.from_arrow_refs(refs) if refs else ds


def run_predict(request: PredictRequest, on_progress: Callable[[int, int | None, float], None] | None = None,
                progress_bars: bool = False, fixed_size: bool = False) -> PredictResult:
    """Run ``request`` on the Ray this process is connected to; ``on_progress(rows written, rows in all or None,
    seconds)`` every ``PREDICT_PROGRESS_S`` while it runs; Ray Data's own bars when ``progress_bars``.
    ``fixed_size``: the Ray cannot grow (a local one), so actors it cannot hold are refused (:func:`check_room`)."""
    import ray.data
    from ray.data import DataContext
    from ray.data._internal.savemode import SaveMode

    if fixed_size:
        have = ray.cluster_resources()
        check_room(request.settings, have.get("CPU", 0.0), have.get("GPU", 0.0))
    context = DataContext.get_current()
    context.enable_progress_bars = progress_bars
    if not progress_bars:  # on a pipe our own line says how far it got; Ray Data's INFO lines would repeat it
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    begun = time.time()
    ds = read(request, pieces=BLOCKS_PER_ACTOR * request.settings.concurrency)
    total = ds.count() if request.numbered else None
    log.debug("predict: input read%s in %.1fs", " and numbered" if request.numbered else "", time.time() - begun)
    config, run = request.predictor, request.settings
    marker_dir = tempfile.mkdtemp(prefix="tfray-predict-") if config.kill_at_batch else None
    if marker_dir:
        from dataclasses import replace

        config = replace(config, fault_marker=str(Path(marker_dir) / "fired"))
    remote_args = {"runtime_env": request.runtime_env} if request.runtime_env else {}
    predicted = ds.map_batches(
        named_class(PREDICTOR_CLASS), fn_constructor_kwargs={"config": config, "threads": max(1, int(run.cpus_per_actor))},
        batch_size=run.batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=run.concurrency),
        num_cpus=run.cpus_per_actor, num_gpus=run.gpus_per_actor or None, **remote_args)
    watcher = _Watcher(request.output, total, begun, on_progress)
    pool_started = time.time()  # the pool is asked for when the write starts; its actors hold their room from then
    try:
        predicted.write_parquet(request.output, mode=SaveMode.OVERWRITE if request.overwrite else SaveMode.CREATE)
    except RayError as err:  # a model that does not load, an actor's error: its last line the cause
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        raise PredictFailedError(f"{type(err).__name__}: {lines[-1] if lines else ''}") from err
    except ValueError as err:
        if "already exists" not in str(err):
            raise
        raise SpecError(f"--output {request.output}: it exists; give --overwrite to replace it, or another "
                        "place") from None
    finally:
        watcher.stop()
        if marker_dir:
            shutil.rmtree(marker_dir, ignore_errors=True)
    ended = time.time()
    log.debug("predict: predicted and written in %.1fs", ended - pool_started)
    spans = map_actor_spans(begun, pool_started)
    written = _parquet(request.output)
    rows = written.count_rows()
    return PredictResult(rows=rows, output=request.output, model=request.model_label, wall_s=ended - begun,
                         actor_s=actor_seconds(spans, begun, ended), nodes=len({s.node_id for s in spans}) or 1,
                         actors=len(spans), restarts=sum(s.restarts for s in spans),
                         price_per_node_hour=run.price_per_node_hour,
                         metrics=metrics(request, written) if rows else {})


def _parquet(output: str):
    """The output as a pyarrow dataset (a folder, or at a URI through pyarrow's file systems): its row count
    and narrow columns are read from this process, without a Ray Data job for each (a mean through Ray Data is
    a shuffle: seconds of start-up for two numbers)."""
    import pyarrow.dataset

    return pyarrow.dataset.dataset(output, format="parquet")


def metrics(request: PredictRequest, written) -> dict[str, float]:
    """The model's metrics over the set, from the columns the actors wrote: accuracy and the mean loss,
    summed a batch of rows at a time."""
    if not request.predictor.labels_column:
        return {}
    names = {CORRECT: "accuracy", LOSS: "loss"}
    columns = [c for c in names if c in written.schema.names]
    if not columns:
        return {}
    import pyarrow.compute as pc

    sums, rows = dict.fromkeys(columns, 0.0), 0
    for batch in written.to_batches(columns=columns):
        rows += batch.num_rows
        for column in columns:
            sums[column] += pc.sum(batch.column(column)).as_py() or 0.0
    return {names[c]: sums[c] / rows for c in columns} if rows else {}


def map_actor_spans(since_s: float, pool_started_s: float) -> list[ActorSpan]:
    """Ray Data's map actors that came up (ALIVE at least once) since ``since_s``, where each ran and until
    when (Ray's actor table). Each is counted from ``pool_started_s``: Ray's start time is when its constructor
    ended, but its CPUs and GPUs were held while it loaded the model too. An actor that never came up (the
    run ended first) is left out."""
    spans = []
    for actor in ray._private.state.actors().values():
        if MAP_WORKER not in actor["ActorClassName"] or actor["StartTime"] / 1000.0 < since_s - 1.0:
            continue
        end = actor["EndTime"] / 1000.0 if actor.get("EndTime") else None
        spans.append(ActorSpan(start_s=pool_started_s, end_s=end, node_id=actor["Address"]["NodeID"],
                               restarts=actor.get("NumRestarts", 0)))
    return spans


def rows_written(output: str) -> int:
    """The rows in the Parquet files written so far under a local ``output`` (a file still being written is
    left out until its footer is there)."""
    import pyarrow.parquet as pq

    if is_uri(output):
        return 0
    total = 0
    for path in Path(output).glob("*.parquet"):
        try:
            total += pq.read_metadata(path).num_rows
        except Exception:  # noqa: BLE001, S112 - a file still being written has no footer yet: counted next time
            continue
    return total


class _Watcher:
    """Calls ``on_progress`` every ``PREDICT_PROGRESS_S`` from a thread of its own until stopped."""

    def __init__(self, output: str, total: int | None, begun: float, on_progress) -> None:
        self.stopped = threading.Event()
        self.thread = None
        if on_progress is not None:
            def loop():
                settings.poll_until(self.stopped.is_set, None, settings.PREDICT_PROGRESS_S, "the run's end",
                                    wait=self.stopped.wait,
                                    on_round=lambda _: on_progress(rows_written(output), total, time.time() - begun))

            self.thread = threading.Thread(target=loop, name="tfray-predict-progress", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=5.0)
