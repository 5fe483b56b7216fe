"""The serving scenario: latency and throughput of ``tfray serve`` against the same model called in-process.

``python -m bench.serving`` trains a small Keras MLP on sklearn's digits (one epoch, saved as a job's
exported model is), then measures, in one run:

- **in-process**: the model called as a replica calls it (``workers.predictor.Predictor.predict_array``, one
  example a call), by 1 client and by 8 threads at once;
- **served**: ``controller.api.serve`` with one replica on a local Ray of 2 CPUs, called over HTTP in TF
  Serving's row format by 1 client and by 8 at once, each client on a kept-alive connection;
- **Ray Serve, a constant**: the same requests to a deployment that answers a constant: Serve's own cost on
  this machine (proxy, router, replica), which no model served through it can go under.

For each: the median and 99th percentile latency of a request (ms) and requests per second; and the served
median's overhead over the in-process one (ms). ``--quick``: 200 requests a client count, else 1,000.
Writes ``results.json`` and ``table.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIENTS = (1, 8)


def make_model(folder: Path):
    """A small digits MLP, trained one epoch and saved as a job's exported model; the examples (float32)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    from sklearn.datasets import load_digits

    tf.config.threading.set_intra_op_parallelism_threads(1)  # as a replica of 1 CPU has them
    tf.config.threading.set_inter_op_parallelism_threads(1)
    data = load_digits()
    x, y = (data.data / 16.0).astype("float32"), data.target
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Input(shape=(64,)), tf.keras.layers.Dense(64, activation="relu"),
                                 tf.keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(str(folder))
    return x


def timed(call, examples, clients: int, total: int) -> dict:
    """``call(client, example)`` by ``clients`` threads, ``total`` calls in all; latency percentiles and rate."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        mine = []
        for i in range(k, total, clients):
            began = time.perf_counter()
            call(k, examples[i % len(examples)])
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ordered = sorted(latencies)
    return {"clients": clients, "requests": len(ordered), "p50_ms": 1000 * statistics.median(ordered),
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], "per_s": len(ordered) / wall}


def in_process(model_dir: Path, examples, total: int) -> list[dict]:
    from protocol.predict import PredictorConfig
    from workers.predictor import Predictor

    model = Predictor(PredictorConfig(model_path=str(model_dir), id_column="row"))  # 1 thread: make_model
    model.predict_array(examples[:1])  # the first call traces the model
    return [{"way": "in-process", **timed(lambda k, e: model.predict_array(e[None, :]), examples, n, total)}
            for n in CLIENTS]


def over_http(port: int, path: str, examples, total: int, way: str) -> list[dict]:
    """Requests in TF Serving's row format to ``path``, by 1 and by 8 clients, each on a kept-alive connection."""
    rows = []
    for n in CLIENTS:
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(n)]

        def call(k: int, example, connections=connections) -> None:
            connections[k].request("POST", path, json.dumps({"instances": [example.tolist()]}),
                                   {"Content-Type": "application/json"})
            answer = connections[k].getresponse()
            body = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{answer.status}: {body[:200]!r}")

        call(0, examples[0])  # a replica's first call traces the model
        rows.append({"way": way, **timed(call, examples, n, total)})
        for connection in connections:
            connection.close()
    return rows


class Constant:
    """Ray Serve's own floor: a deployment that reads the body and answers a constant, no model."""

    async def __call__(self, request):
        from starlette.responses import JSONResponse

        await request.body()
        return JSONResponse({"predictions": [[0.0]]})


def served(model_dir: Path, examples, total: int, work: Path) -> tuple[list[dict], float]:
    import ray
    from ray import serve

    from controller import api

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = {"name": "bench-serve", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 1}},
            "entrypoint": {"function": "examples.digits:train"}, "storage_path": str(work / "runs")}
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="tfr", dir="/tmp"))
    try:
        began = time.perf_counter()
        endpoint = api.serve(spec, model=str(model_dir), name="digits", port=port, min_replicas=1)
        start_s = time.perf_counter() - began
        try:
            rows = over_http(port, "/v1/models/digits:predict", examples, total, "served")
        finally:
            endpoint.stop()
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "WARNING"})
        serve.run(serve.deployment(Constant).bind(), name="constant", route_prefix="/",
                  logging_config={"log_level": "WARNING"})
        try:
            rows += over_http(port, "/", examples, total, "Ray Serve, a constant")
        finally:
            serve.shutdown()
        return rows, start_s
    finally:
        ray.shutdown()


def table(rows: list[dict], start_s: float) -> str:
    base = {r["clients"]: r for r in rows if r["way"] == "in-process"}
    out = ["| clients | way | p50 (ms) | p99 (ms) | requests/s | p50 overhead (ms) |", "|---|---|---|---|---|---|"]
    for r in rows:
        over = r["p50_ms"] - base[r["clients"]]["p50_ms"] if r["way"] != "in-process" else None
        out.append(f"| {r['clients']} | {r['way']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['per_s']:.0f} | "
                   f"{'' if over is None else f'{over:.2f}'} |")
    out.append(f"\nendpoint start (1 replica, to every replica answering): {start_s:.1f} s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="200 requests a client count (default 1,000)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total = 200 if args.quick else 1000
    work = Path(tempfile.mkdtemp(prefix="tfrserve"))
    model_dir = work / "model"
    examples = make_model(model_dir)
    rows = in_process(model_dir, examples, total)
    served_rows, start_s = served(model_dir, examples, total, work)
    rows += served_rows
    (out / "results.json").write_text(json.dumps({"runs": rows, "start_s": start_s}, indent=1))
    text = table(rows, start_s)
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
