"""A probe for the start-up breakdown: how long Ray takes to start two actors, with and without a runtime_env.

The controller used to create its task actors with ``runtime_env={"env_vars": ...}``
(it now passes the environment to the actor instead, for the reason measured here).
Ray cannot hand an actor with its own runtime environment to one of the idle
worker processes it keeps started, so each such actor waits for a new
process (and Ray's runtime-env agent) to come up. This probe times both on an
already running local Ray, alternating the order: ``python -m bench.actor_start``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


class Probe:
    def ping(self) -> int:
        return os.getpid()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="tfr", dir="/tmp"))
    time.sleep(3)  # Ray starts its idle workers just after init: measure on a Ray that is up
    took: dict[str, list[float]] = {"plain": [], "runtime_env": []}
    for rep in range(args.reps):
        for kind in (("plain", "runtime_env") if rep % 2 else ("runtime_env", "plain")):
            options = {"num_cpus": 2 / args.actors}
            if kind == "runtime_env":  # the same variables every time, as one job's restarts have
                options["runtime_env"] = {"env_vars": {"TF_USE_LEGACY_KERAS": "1"}}
            began = time.perf_counter()
            actors = [ray.remote(Probe).options(**options).remote() for _ in range(args.actors)]
            ray.get([a.ping.remote() for a in actors])
            took[kind].append(time.perf_counter() - began)
            for actor in actors:
                ray.kill(actor)
            time.sleep(2)
    for kind, values in took.items():
        print(f"{kind:<12} median {statistics.median(values):.2f}s  ({', '.join(f'{v:.2f}' for v in values)})")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
