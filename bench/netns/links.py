"""Hosts on their own addresses on this machine: a bridge, one network namespace per host, a veth pair each.

The root namespace holds the bridge with the subnet's ``.1`` (the head and the
driver live there); host ``i`` is namespace ``<run>-<i>`` with ``.<i+1>`` on
its end of a veth pair whose other end is a port of the bridge. Every name
starts with ``tfrn`` and the run's id, so two runs never collide, and a run's
state file (``/tmp/tfray-netns/<id>.json``, written before anything is made)
lets a later run remove what a run that died left behind.

Silence is a neighbour entry: the peer's address pinned to a MAC address that
no interface has (``nud permanent``, so the kernel never asks again). Frames
to it are flooded by the bridge and dropped by every port, so a TCP connect
hangs until its own timeout and an open connection's packets vanish, as they
do when a real host dies or a switch drops it. Taking a veth down instead is
not silence: the sender's ARP fails and a connect is refused with
EHOSTUNREACH after about 3 s (checked). ``tc netem`` is not in this kernel.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

FAMILY = "tfrn"  # the first letters of every namespace, link and bridge a harness makes
STATE_DIR = Path("/tmp/tfray-netns")
RUN_ENV = "TFRAY_NETNS_RUN"  # set on every process a run starts: how its processes are found again
SILENT_MAC = "02:00:00:00:00:99"  # locally administered; no interface here has it
IP_TIMEOUT_S = 10.0  # one `ip` command answers in milliseconds


class NetnsUnavailable(RuntimeError):
    """This machine cannot make network namespaces here; the message says why."""


def unavailable() -> str | None:
    """Why this process cannot build hosts in namespaces, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (this process runs as uid %d)" % os.geteuid()
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{FAMILY}probe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    if made.returncode != 0:
        return f"`ip netns add` is refused here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=IP_TIMEOUT_S)
    return None


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """One ``ip`` command (inside ``netns`` when given); a failure raises with its stderr."""
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    if check and done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class Host:
    """One host: its namespace, its address, and the two ends of its veth pair."""

    netns: str
    address: str
    veth_root: str  # the bridge's port, in the root namespace
    veth_host: str  # inside the namespace


@dataclass
class Links:
    """The bridge and the hosts of one run."""

    run_id: str
    subnet: str  # e.g. 10.77.23.0/24
    hosts: list[Host] = field(default_factory=list)
    owner_pid: int = field(default_factory=os.getpid)
    owner_started: str = field(default_factory=lambda: process_start(os.getpid()))

    @property
    def bridge(self) -> str:
        return f"{FAMILY}{self.run_id}b"

    @property
    def head_address(self) -> str:
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    @property
    def state_file(self) -> Path:
        return STATE_DIR / f"{self.run_id}.json"

    @classmethod
    def new(cls) -> "Links":
        return cls(run_id=secrets.token_hex(2), subnet=free_subnet())

    @classmethod
    def load(cls, state_file: Path) -> "Links":
        """A run's links as its state file has them (another process's run: its faults, not its teardown)."""
        data = json.loads(state_file.read_text())
        return cls(**{**data, "hosts": [Host(**h) for h in data["hosts"]]})

    def describe(self) -> str:
        return (f"netns run {self.run_id}: head {self.head_address}, hosts "
                f"{', '.join(h.address for h in self.hosts)}")

    def create(self, hosts: int) -> None:
        """The bridge with the head's address, then ``hosts`` namespaces on it; the state file first."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(self)))
        prefix = ipaddress.ip_network(self.subnet).prefixlen
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.head_address}/{prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        addresses = list(ipaddress.ip_network(self.subnet).hosts())[1:hosts + 1]
        for i, address in enumerate(addresses, start=1):
            host = Host(f"{FAMILY}{self.run_id}-{i}", str(address), f"{FAMILY}{self.run_id}h{i}",
                        f"{FAMILY}{self.run_id}n{i}")
            self.hosts.append(host)
            self.state_file.write_text(json.dumps(asdict(self)))  # what to remove, before it exists
            ip("netns", "add", host.netns)
            ip("link", "add", host.veth_root, "type", "veth", "peer", "name", host.veth_host)
            ip("link", "set", host.veth_host, "netns", host.netns)
            ip("link", "set", host.veth_root, "master", self.bridge, "up")
            ip("addr", "add", f"{address}/{prefix}", "dev", host.veth_host, netns=host.netns)
            ip("link", "set", host.veth_host, "up", netns=host.netns)
            ip("link", "set", "lo", "up", netns=host.netns)

    def host(self, address: str) -> Host:
        found = next((h for h in self.hosts if h.address == address), None)
        if found is None:
            raise ValueError(f"no host of this harness has address {address} (hosts: "
                             f"{', '.join(h.address for h in self.hosts)}; the head is {self.head_address})")
        return found

    def _pin(self, at: str | None, device: str, peer: str) -> None:
        ip("neigh", "replace", peer, "lladdr", SILENT_MAC, "dev", device, "nud", "permanent", netns=at)

    def silence(self, address: str) -> None:
        """Every packet between host ``address`` and every other address here (the head's, the other hosts')
        dropped, both ways."""
        self.cut(address, [self.head_address, *(h.address for h in self.hosts if h.address != address)])

    def silence_from_head(self, address: str) -> None:
        """Only the head's address and host ``address`` lose each other; the other hosts still reach it."""
        self.cut(address, [self.head_address])

    def cut(self, address: str, peers: list[str]) -> None:
        """Drop every packet between ``address`` and each of ``peers``, both ways."""
        host = self.host(address)
        for peer in peers:
            self._pin(host.netns, host.veth_host, peer)  # from the host to the peer
            if peer == self.head_address:
                self._pin(None, self.bridge, address)  # from the root namespace to the host
            else:
                other = self.host(peer)
                self._pin(other.netns, other.veth_host, address)

    def heal(self, address: str) -> None:
        """Every cut to or from ``address`` undone: the kernels ask for the real MAC addresses again."""
        host = self.host(address)
        ip("neigh", "flush", "dev", host.veth_host, "nud", "permanent", netns=host.netns, check=False)
        ip("neigh", "del", address, "dev", self.bridge, check=False)
        for other in self.hosts:
            if other is not host:
                ip("neigh", "del", address, "dev", other.veth_host, netns=other.netns, check=False)

    def remove(self) -> None:
        """Every namespace (its veth end goes with it, and so the pair) and the bridge, then the state file."""
        remove_run(self.run_id)


def free_subnet() -> str:
    """A 10.77.X.0/24 that no interface of this machine is on."""
    used = {str(ipaddress.ip_interface(a).network) for a in ip("-o", "-4", "addr", "show").stdout.split()
            if "/" in a and a[0].isdigit()}
    free = [f"10.77.{x}.0/24" for x in range(1, 255) if f"10.77.{x}.0/24" not in used]
    if not free:
        raise NetnsUnavailable("every 10.77.X.0/24 subnet is in use on this machine")
    return random.choice(free)


def process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot), or '' when there is none: a pid and its start
    tell a process apart from a later one that got the same pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def run_processes(run_id: str) -> list[int]:
    """Every process started for run ``run_id``: those whose environment carries its mark."""
    mark = f"{RUN_ENV}={run_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile, or a kernel thread
                pass
    return pids


def end_processes(run_id: str, within_s: float = 10.0) -> list[int]:
    """SIGKILL to every process of the run, each by its pid; the pids still there after ``within_s``. No
    SIGTERM first: `ray start --block` and a raylet sat out a SIGTERM for over 12 s here (checked), and
    nothing of a test's cluster needs a graceful end."""
    deadline = time.monotonic() + within_s
    while (pids := run_processes(run_id)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return run_processes(run_id)


def remove_run(run_id: str) -> None:
    """Everything of run ``run_id``: its processes, namespaces, links, bridge, state file. Safe to repeat."""
    left = end_processes(run_id)
    if left:
        raise RuntimeError(f"netns run {run_id}: processes {left} did not end within 10s of SIGKILL")
    names = f"{FAMILY}{run_id}"
    for netns in ip("netns", "list").stdout.split():
        if netns.startswith(f"{names}-"):
            ip("netns", "del", netns, check=False)
    for line in ip("-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(names):
            ip("link", "del", name, check=False)
    (STATE_DIR / f"{run_id}.json").unlink(missing_ok=True)


def live_runs() -> list[Path]:
    """The state files of runs whose owner process still lives."""
    runs = []
    for state in sorted(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else []:
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if data.get("owner_pid") and process_start(data["owner_pid"]) == data.get("owner_started"):
            runs.append(state)
    return runs


def remove_leftovers() -> list[str]:
    """The runs whose owner process is gone (killed before its teardown), removed; their ids."""
    live = set(live_runs())  # a run in progress writes its state file before it makes anything
    removed = []
    for state in sorted(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else []:
        if state not in live:
            remove_run(state.stem)
            removed.append(state.stem)
    return removed


def remove_on_exit(remove) -> None:
    """``remove`` runs at interpreter exit, and on SIGTERM or SIGHUP before the process ends (their default
    ends it at once, with no atexit); a handler that was there before still runs after. Only the main thread
    may set handlers; a SIGKILL leaves the run to the next one's ``remove_leftovers``."""
    atexit.register(remove)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        before = signal.getsignal(sig)

        def handler(signum, frame, before=before):
            remove()
            if callable(before):
                before(signum, frame)
            else:
                raise SystemExit(128 + signum)

        signal.signal(sig, handler)
