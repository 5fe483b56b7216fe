"""The multi-host harness (bench/netns): hosts on their own addresses, silence that really hangs a connect,
and a teardown that leaves nothing, whether the run ends, is stopped by a signal, or is killed outright."""

import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import ray

from bench.netns import links
from controller.settings import poll_until

from .conftest import REPO, netns_skip_reason

pytestmark = [pytest.mark.integration, pytest.mark.skipif(bool(netns_skip_reason()), reason=netns_skip_reason() or "")]

HANG_S = 5.0  # a connect to a silent host must still be waiting after this long


def network_now() -> tuple[str, set[str]]:
    """What the machine's network holds: the namespaces, and the links by name."""
    names = {line.split(":")[1].strip().split("@")[0] for line in links.ip("-o", "link", "show").stdout.splitlines()}
    return links.ip("netns", "list").stdout, names


def connect(address: str, port: int, netns: str | None = None) -> str:
    """'ok', 'hangs' (no answer within HANG_S) or the error: a connect from the root namespace or a host."""
    code = (f"import socket\ntry:\n socket.create_connection(('{address}', {port}), timeout={HANG_S}).close()\n"
            " print('ok')\nexcept TimeoutError:\n print('hangs')\nexcept OSError as e:\n print(repr(e))")
    cmd = [*(["ip", "netns", "exec", netns] if netns else []), sys.executable, "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_S + 20).stdout.strip()


def listener(net: links.Links, host: links.Host) -> tuple[subprocess.Popen, int]:
    """A process listening on a host's address (marked as the run's, so its teardown ends it)."""
    code = (f"import socket, time\ns = socket.socket()\ns.bind(('{host.address}', 0))\ns.listen()\n"
            "print(s.getsockname()[1], flush=True)\ntime.sleep(600)")
    proc = subprocess.Popen(["ip", "netns", "exec", host.netns, sys.executable, "-c", code], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, links.RUN_ENV: net.run_id})
    return proc, int(proc.stdout.readline())


def test_a_silenced_host_hangs_connects_and_heals_and_only_the_head_loses_a_host_silenced_from_it():
    before = network_now()
    net = links.Links.new()
    try:
        net.create(2)
        one, two = net.hosts
        proc, port = listener(net, one)
        assert connect(one.address, port) == "ok"
        net.silence_from_head(one.address)
        with ThreadPoolExecutor(2) as pool:  # both connects wait in parallel: the test waits HANG_S once
            from_head, from_peer = pool.map(lambda ns: connect(one.address, port, ns), [None, two.netns])
        assert (from_head, from_peer) == ("hangs", "ok")
        net.heal(one.address)
        net.silence(one.address)
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(lambda ns: connect(one.address, port, ns), [None, two.netns])) == ["hangs"] * 2
        net.heal(one.address)
        assert connect(one.address, port) == "ok" and connect(one.address, port, two.netns) == "ok"
    finally:
        net.remove()
    proc.wait(timeout=10)
    assert network_now() == before
    assert not links.run_processes(net.run_id)


HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
from bench.netns import links
net = links.Links.new()
links.remove_on_exit(net.remove)
net.create(1)
import subprocess, os
subprocess.Popen(["ip", "netns", "exec", net.hosts[0].netns, "sleep", "600"],
                 env={{**os.environ, links.RUN_ENV: net.run_id}}, start_new_session=True)
print(net.run_id, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_run_stopped_by_a_signal_or_killed_leaves_nothing_once_the_next_run_starts(sig):
    """SIGTERM: the run removes its own; SIGKILL (no handler runs): the next run's start removes it."""
    before = network_now()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=str(REPO))], stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the holder made no run"
        # Its sleeper is being exec'ed by `ip netns exec` when the holder prints: /proc shows its environment
        # once that exec is done (in CI a read in between found nothing).
        poll_until(lambda: links.run_processes(run_id), 30, 0.05, "the holder's sleeper to show its run's mark")
    except BaseException:
        proc.terminate()  # the holder removes what it made on SIGTERM: a failed test leaves nothing
        proc.wait(timeout=30)
        raise
    assert network_now() != before
    proc.send_signal(sig)
    proc.wait(timeout=30)
    if sig == signal.SIGKILL:
        assert links.run_processes(run_id)  # nothing ran at its death: its namespace and sleeper are still there
        assert run_id in links.remove_leftovers()
    assert network_now() == before
    assert not links.run_processes(run_id) and not (links.STATE_DIR / f"{run_id}.json").exists()


def test_ray_nodes_on_their_own_addresses_and_nothing_left_after_teardown(netns_cluster_factory):
    before = network_now()
    cluster = netns_cluster_factory(nodes=2, node_resources={"netns_host": 1})

    @ray.remote(num_cpus=0, resources={"netns_host": 1})
    class Placed:  # an actor holds its node's one netns_host while it lives: the two land on two nodes
        def address(self) -> str:
            return ray.util.get_node_ip_address()

    placed = [Placed.remote() for _ in range(2)]
    assert sorted(ray.get([p.address.remote() for p in placed], timeout=60)) == sorted(cluster.node_addresses)
    assert cluster.head_address not in cluster.node_addresses
    run_id = cluster.run_id
    assert links.run_processes(run_id)
    ray.shutdown()
    cluster.stop()
    assert network_now() == before
    assert not links.run_processes(run_id)
    with pytest.raises(OSError):
        socket.create_connection((cluster.head_address, cluster.port), timeout=1)
