"""Ray nodes on addresses of their own, on this one machine, and the network faults between them
(issue 24): for the tests (``tests/integration/conftest.py``, ``netns_cluster``) and the benchmark."""

from bench.netns.cluster import NetnsCluster
from bench.netns.links import NetnsUnavailable, unavailable

__all__ = ["NetnsCluster", "NetnsUnavailable", "unavailable"]
