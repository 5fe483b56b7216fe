"""The seam between the controller and the network its hosts share: what a network fault needs done.

A network fault (``silence``, ``partition``, ``silence_head``: ``controller/spec/running.py``) acts on the
host a task runs on, so no task can fire it from inside; the controller carries it out
(``controller/machine/network_faults.py``) through a :class:`HostNetwork` that whoever owns the network
hands it: the multi-host harness of the tests and the benchmark (``bench/netns``), through the API's
``network=`` or ``TFRAY_HOST_NETWORK`` (``controller/api.py``). Hosts are named by their address, the one
in the task's ``host:port``.
"""

from __future__ import annotations

from typing import Protocol


class HostNetwork(Protocol):
    """The network between the cluster's hosts, as a fault changes it."""

    def silence(self, host: str) -> None:
        """Every packet between ``host`` and every other host (the head's included) dropped, both ways: a
        connect to it hangs, as to a host that died or was cut off, rather than being refused."""

    def silence_from_head(self, host: str) -> None:
        """Only ``host`` and the head lose each other (its raylet loses the GCS); other hosts still reach it."""

    def heal(self, host: str) -> None:
        """Every cut to or from ``host`` undone."""

    def describe(self) -> str:
        """Which network this is, for the driver's log."""
