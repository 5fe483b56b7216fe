"""Ray nodes on addresses of their own, on this one machine, and the network faults between them
(issue 24): for the tests (``tests/integration/conftest.py``) and the benchmark.

``python -m bench.netns up`` starts a cluster and keeps it until Ctrl-C; a ``tfray run --address`` beside
it, with ``TFRAY_HOST_NETWORK=bench.netns:attached``, carries out network faults on it.
"""

from bench.netns.cluster import NetnsCluster
from bench.netns.links import Links, NetnsUnavailable, live_runs, unavailable


def attached() -> Links:
    """The host network of the one harness running on this machine (``TFRAY_HOST_NETWORK``'s factory)."""
    runs = live_runs()
    if len(runs) != 1:
        raise NetnsUnavailable(f"{len(runs)} netns harness runs live on this machine ({', '.join(map(str, runs))}); "
                               "attached() needs exactly one (`python -m bench.netns up`)")
    return Links.load(runs[0])


__all__ = ["NetnsCluster", "NetnsUnavailable", "attached", "unavailable"]
