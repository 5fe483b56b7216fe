"""The CLI's endpoint: ``tfray serve JOB.yaml`` (``controller.api.serve``), until Ctrl-C, SIGTERM or SIGHUP.

Exit 0 when it served and was stopped (or its ``--for`` ran out), 1 when the endpoint did not come up on
Ray, 2 for bad input (nothing started: the message names the flag, field or file).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from controller.cli.exit_codes import EXIT_FAILED, EXIT_OK
from protocol.serving import REST_PORT

WAIT_NOTE_S = 10.0  # while the replicas load the model, a line this often says the command is alive

SERVE_EPILOG = f"""\
examples:
  tfray serve cluster_configs/jobs/digits_mwms.yaml
      the job's exported model (runs/digits-mwms/model) as TF Serving's model digits-mwms, on
      127.0.0.1:{REST_PORT}, until Ctrl-C:

      serving model runs/digits-mwms/model as digits-mwms: 1 replica(s), 1 CPU(s) each
        http://127.0.0.1:{REST_PORT}/v1/models/digits-mwms
        curl -X POST http://127.0.0.1:{REST_PORT}/v1/models/digits-mwms:predict -d '{{"instances": [[0.0, ...]]}}'

  tfray serve JOB.yaml --min-replicas 1 --max-replicas 4 --host 0.0.0.0   Ray Serve adds replicas under load
  tfray serve JOB.yaml --model exported/resnet --name resnet --gpus-per-replica 1
  tfray serve JOB.yaml --checkpoint latest   the newest checkpoint's weights, through predict.model_function

The endpoint speaks TF Serving's REST API, so a client written for TF Serving works unchanged:
  POST /v1/models/<name>:predict   {{"instances": [example, ...]}} -> {{"predictions": [...]}}, or
                                   {{"inputs": tensor}} -> {{"outputs": ...}} (also /versions/1:predict)
  GET  /v1/models/<name>           the version's status (AVAILABLE)
  GET  /v1/models/<name>/metadata  the serving_default signature: inputs, outputs, dtypes, shapes
An error is {{"error": "..."}} with a 4xx status (400 bad body, 404 unknown model). Requests that arrive
together go through the model in one call (Ray Serve's batching: --max-batch-size requests, waiting at
most --batch-wait-ms for more). A replica that dies is started again; a request past
TFRAY_SERVE_REQUEST_S (60 s) is answered 408, never left hanging.
"""


def add_commands(sub) -> None:
    p = sub.add_parser("serve", help="an endpoint: the job's trained model on Ray Serve, speaking TF Serving's "
                       "REST API, until Ctrl-C", description="Serve the job's exported model (the chief's "
                       "SavedModel in its job folder's model/), or --model / --checkpoint, from replicas on Ray "
                       "Serve, at TF Serving's routes.", epilog=SERVE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="job spec YAML (its job's model)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="PATH", help="a SavedModel or Keras model folder (or .keras file) "
                       "instead of the job's exported model")
    which.add_argument("--checkpoint", metavar="CKPT", help="'latest' or a checkpoint folder: its weights in "
                       "the model the spec's predict.model_function builds")
    p.add_argument("--name", help="the model's name in /v1/models/<name> (default: the job's name)")
    p.add_argument("--host", default="127.0.0.1", help="the address Ray Serve listens on (default 127.0.0.1; "
                   "0.0.0.0 for every interface: anyone who reaches it can call the model)")
    p.add_argument("--port", type=int, default=REST_PORT, help=f"default {REST_PORT}, TF Serving's REST port")
    p.add_argument("--replicas", type=int, metavar="N", help="a fixed number of replicas (default 1)")
    p.add_argument("--min-replicas", type=int, metavar="N", help="with --max-replicas: Ray Serve's autoscaling "
                   "between the two, by requests in flight")
    p.add_argument("--max-replicas", type=int, metavar="N")
    p.add_argument("--cpus-per-replica", type=float, default=1.0, metavar="CPUS", help="CPUs each replica "
                   "reserves; TensorFlow's thread pools get as many (default 1)")
    p.add_argument("--gpus-per-replica", type=float, default=0.0, metavar="GPUS", help="default 0")
    p.add_argument("--max-batch-size", type=int, default=32, metavar="N", help="requests per model call "
                   "(default 32)")
    p.add_argument("--batch-wait-ms", type=float, default=0.0, metavar="MS", help="how long a call waits for "
                   "more requests once one came (default 0: those that queued while the model ran)")
    p.add_argument("--for", dest="for_s", type=float, metavar="SECONDS", help="stop by itself after this long "
                   "(default: until Ctrl-C, SIGTERM or SIGHUP)")
    p.add_argument("--address", help="Ray cluster address ('auto' for a local `ray start`); default: "
                   "$RAY_ADDRESS or a new local Ray")
    p.add_argument("--num-cpus", type=float, help="CPUs of a new local Ray (default: this machine's)")
    p.set_defaults(func=cmd_serve)


def replica_counts(args) -> dict:
    """--replicas N, or --min-replicas / --max-replicas, as the API's options; SpecError when mixed."""
    from controller.spec import SpecError

    if args.replicas is not None and (args.min_replicas is not None or args.max_replicas is not None):
        raise SpecError("--replicas and --min-replicas/--max-replicas both given: a fixed count, or a range")
    if args.replicas is not None:
        return {"min_replicas": args.replicas}
    if args.max_replicas is not None and args.min_replicas is None:
        return {"min_replicas": 1, "max_replicas": args.max_replicas}
    return {"min_replicas": args.min_replicas or 1, "max_replicas": args.max_replicas}


def cmd_serve(args) -> int:
    from controller import api

    if args.for_s is not None and args.for_s <= 0:
        from controller.spec import SpecError

        raise SpecError(f"--for {args.for_s:g}: seconds above 0, or leave it out to serve until Ctrl-C")
    said = [0.0]

    def waiting(seconds: float) -> None:
        if seconds - said[0] >= WAIT_NOTE_S:
            said[0] = seconds
            print(f"tfray: waiting for the replicas to load the model ({seconds:.0f}s)", file=sys.stderr, flush=True)

    stopped = threading.Event()  # SIGTERM and SIGHUP, here as Ctrl-C is: the endpoint is taken down either way
    previous = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            endpoint = api.serve(args.spec, address=args.address, num_cpus=args.num_cpus, on_wait=waiting,
                                 model=args.model, checkpoint=args.checkpoint, name=args.name, host=args.host,
                                 port=args.port, cpus_per_replica=args.cpus_per_replica,
                                 gpus_per_replica=args.gpus_per_replica, max_batch_size=args.max_batch_size,
                                 batch_wait_ms=args.batch_wait_ms, **replica_counts(args))
        except KeyboardInterrupt:
            print("tfray: stopped before the endpoint came up", file=sys.stderr)
            return EXIT_OK
        except (api.ServeFailedError, TimeoutError) as err:
            print(f"error: the endpoint did not come up: {err}\n  (the replicas' output is in Ray's logs: "
                  "/tmp/ray/session_latest/logs/serve on the head)", file=sys.stderr)
            return EXIT_FAILED
        request = endpoint.request
        print(f"serving {request.model_label} as {request.config.name}: {request.min_replicas}"
              f"{'' if request.max_replicas == request.min_replicas else f'-{request.max_replicas}'} replica(s), "
              f"{request.cpus_per_replica:g} CPU(s) each\n  {endpoint.url}\n"
              f"  curl -X POST {endpoint.url}:predict -d '{{\"instances\": [...]}}'\n"
              + ("" if args.for_s else "  Ctrl-C stops it"), flush=True)
        try:
            stopped.wait(args.for_s)
        except KeyboardInterrupt:
            pass
        finally:
            endpoint.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("tfray: stopped; the endpoint and its replicas are gone", file=sys.stderr)
    return EXIT_OK
