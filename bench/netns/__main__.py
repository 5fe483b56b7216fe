"""``python -m bench.netns up``: a head and N worker nodes on their own addresses, kept until Ctrl-C or
SIGTERM, then removed. It prints what a driver beside it sets to run jobs on it with network faults."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from bench.netns import NetnsCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.netns", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--head-cpus", type=float, default=2)
    parser.add_argument("--node-cpus", type=float, default=1)
    parser.add_argument("--head-resources", type=json.loads, default={}, metavar="JSON")
    parser.add_argument("--node-resources", type=json.loads, default={}, metavar="JSON")
    args = parser.parse_args(argv)
    cluster = NetnsCluster(args.nodes, head_cpus=args.head_cpus, head_resources=args.head_resources,
                           node_cpus=args.node_cpus, node_resources=args.node_resources).start()
    print(f"{cluster.describe()}\nexport RAY_ADDRESS={cluster.address} "
          "TFRAY_HOST_NETWORK=bench.netns:attached\n(Ctrl-C removes it all)", flush=True)
    try:
        while True:
            signal.pause()  # until Ctrl-C, or SIGTERM (whose handler removes the cluster and exits)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
