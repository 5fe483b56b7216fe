"""A Ray cluster whose nodes are hosts of their own: the head in the root namespace on the bridge's address,
every other node in its own network namespace with its own address (``bench/netns/links.py``).

Each node is ``ray start ... --node-ip-address <its address> --block``, run
inside its namespace with ``ip netns exec``, so Ray, and the task actors that
report ``ray.util.get_node_ip_address()`` (``workers/task_actor.py``), put that
address into every TF_CONFIG: TensorFlow's gRPC really crosses addresses.
Each node has the custom resources it is started with, so a job can place
tasks on them. The cluster is also the job's :class:`HostNetwork`
(``controller/states/network.py``): the controller carries out a spec's
network faults through it.

Teardown (:meth:`NetnsCluster.stop`) ends every process the run started (they
carry its mark in their environment), removes every namespace, veth and the
bridge, and is safe to call twice; it runs at interpreter exit and on
SIGTERM/SIGHUP too, and a run killed before any of those is cleaned up by the
next run's start (``links.remove_leftovers``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.netns.links import RUN_ENV, Links, NetnsUnavailable, remove_leftovers, remove_on_exit, unavailable

START_TIMEOUT_S = 120.0  # a node's `ray start` takes 5-20 s on a busy 2-core machine
# Find a lost node in seconds, not ~30 s (docs/design.md §6): a check a second, 3 missed. A silent node's check
# fails only when its own timeout passes (10 s by default: 3 x 10 s, checked), so that is 1 s too. Ray's metrics
# pipeline off, as in the other test clusters (it took most of 2 cores with several nodes, docs/design.md §6).
HEAD_SYSTEM_CONFIG = {"health_check_period_ms": 1000, "health_check_timeout_ms": 1000,
                      "health_check_failure_threshold": 3, "enable_metrics_collection": False}
HEAD_PORTS = ("--port", "--node-manager-port", "--object-manager-port", "--ray-client-server-port",
              "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
              "--metrics-export-port")


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def ray_command() -> list[str]:
    """The `ray` CLI of this interpreter's environment."""
    return [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"]


class NetnsCluster:
    """A head and ``nodes`` worker nodes, each on its own address. ``start()``, ``connect()``, ``stop()``."""

    def __init__(self, nodes: int = 2, *, head_cpus: float = 2, head_resources: dict | None = None,
                 node_cpus: float = 1, node_resources: dict | None = None, system_config: dict | None = None):
        why = unavailable()
        if why:
            raise NetnsUnavailable(why)
        self.node_count = nodes
        self.head_cpus, self.head_resources = head_cpus, dict(head_resources or {})
        self.node_cpus, self.node_resources = node_cpus, dict(node_resources or {})
        self.system_config = {**HEAD_SYSTEM_CONFIG, **(system_config or {})}
        self.links = Links.new()
        self.tmp = Path(tempfile.mkdtemp(prefix="tfn", dir="/tmp"))  # short: Ray's socket paths (107 bytes)
        self.port = 0
        self.procs: dict[str, subprocess.Popen] = {}  # by node: the head, or a host's namespace
        self.starts: dict[str, list[str]] = {}  # each node's `ray start` command, to start it again
        self.retried: set[str] = set()
        self._stopped = threading.Event()

    @property
    def run_id(self) -> str:
        return self.links.run_id

    @property
    def head_address(self) -> str:
        return self.links.head_address

    @property
    def node_addresses(self) -> list[str]:
        return [h.address for h in self.links.hosts]

    @property
    def address(self) -> str:
        """The GCS address to join (``ray.init(address=...)``, ``tfray run --address``)."""
        return f"{self.head_address}:{self.port}"

    # ------------------------------------------------------------- life

    def start(self) -> "NetnsCluster":
        """Leftovers of dead runs removed, the hosts made, the head and every node started and registered."""
        remove_leftovers()
        remove_on_exit(self.stop)
        try:
            self.links.create(self.node_count)
            ports = {flag: free_port(self.head_address) for flag in HEAD_PORTS}
            self.port = ports["--port"]
            head = ["--head", *(f"{flag}={port}" for flag, port in ports.items()), "--include-dashboard=false",
                    f"--system-config={json.dumps(self.system_config)}"]
            self._ray_start("head", None, self.head_address, head, self.head_cpus, self.head_resources)
            self._wait(lambda: _accepts(self.head_address, self.port), "the head's GCS to accept connections")
            for host in self.links.hosts:
                self._ray_start(host.netns, host.netns, host.address, [f"--address={self.address}"],
                                self.node_cpus, self.node_resources)
            self._wait(lambda: len(self.alive_nodes()) == self.node_count + 1, "every node to register")
        except BaseException:
            self.stop()
            raise
        return self

    def connect(self) -> None:
        """Attach this process to the cluster as a driver on the head's address."""
        import ray

        ray.init(address=self.address, _node_ip_address=self.head_address, log_to_driver=True)

    def stop(self) -> None:
        """Every process, namespace, link and the bridge of this run gone. Idempotent. A driver attached to the
        cluster (``connect``) calls ``ray.shutdown()`` first."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.links.remove()
        for proc in self.procs.values():
            proc.wait(timeout=10)  # killed by now: reaped, not left a zombie
        shutil.rmtree(self.tmp, ignore_errors=True)

    shutdown = stop  # as ray.cluster_utils.Cluster's, so the tests' SHARED_RAY ends either kind the same way

    def alive_nodes(self) -> list[str]:
        """The addresses of the nodes the GCS calls alive (asked of the GCS itself: no driver needed)."""
        from ray._raylet import GcsClient

        try:
            nodes = GcsClient(address=self.address).get_all_node_info(timeout=5)
        except Exception:  # the GCS is not up yet, or is busy: not every node is known then
            return []
        return [n.node_manager_address for n in nodes.values() if n.state == 0]  # 0: ALIVE

    # --------------------------------------------------- what a host's network does (HostNetwork)

    def silence(self, host: str) -> None:
        """Every packet between ``host`` and every other node (the head included) dropped, both ways."""
        self.links.silence(host)

    def silence_from_head(self, host: str) -> None:
        """Only the head and ``host`` lose each other (its raylet loses the GCS); other nodes still reach it."""
        self.links.silence_from_head(host)

    def heal(self, host: str) -> None:
        self.links.heal(host)

    def describe(self) -> str:
        return self.links.describe()

    # ---------------------------------------------------------- helpers

    def _ray_start(self, name: str, netns: str | None, address: str, extra: list[str], cpus: float,
                   resources: dict) -> None:
        self.starts[name] = [*(["ip", "netns", "exec", netns] if netns else []), *ray_command(), "start",
                             "--block", f"--node-ip-address={address}", f"--num-cpus={cpus}",
                             f"--resources={json.dumps(resources)}", f"--temp-dir={self.tmp / name}",
                             "--disable-usage-stats", *extra]
        self._spawn(name)

    def _spawn(self, name: str) -> None:
        env = {**os.environ, RUN_ENV: self.run_id, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
        with open(self.tmp / f"{name}.log", "a") as log:
            self.procs[name] = subprocess.Popen(self.starts[name], env=env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait(self, done, what: str) -> None:
        """Until ``done()``, bounded. A worker node's `ray start` gives up when its raylet has not registered
        within 30 s (Ray's own bound, ``_private/node.py``), which a loaded 2-core machine can pass: it is
        started again, once."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not done():
            for name, proc in list(self.procs.items()):
                if proc.poll() is None:
                    continue
                if name != "head" and name not in self.retried:
                    self.retried.add(name)
                    self._spawn(name)
                    continue
                raise RuntimeError(f"a `ray start` of the netns harness exited while waiting for {what}:\n"
                                   f"{self._log_tails()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"netns harness: {what} did not happen within {START_TIMEOUT_S:g}s:\n"
                                   f"{self._log_tails()}")
            time.sleep(0.2)

    def _log_tails(self) -> str:
        """The end of each node's `ray start` output (the folder goes with the teardown that follows)."""
        return "\n".join(f"--- {p.name}:\n{p.read_text()[-2000:]}" for p in sorted(self.tmp.glob("*.log")))


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False
