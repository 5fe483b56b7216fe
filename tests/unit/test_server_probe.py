"""The PSS coordinator's gRPC readiness probe: it waits for servers and names the ones that never come up."""

import socket
import time
from concurrent import futures

import grpc
import pytest

from workers.server_probe import wait_for_servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_never_comes_up_is_named_within_the_timeout():
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"ps-0 at {dead}"):
        wait_for_servers((("ps-0", dead),), timeout_s=1.5, probe_max_s=2.0)
    assert time.monotonic() - started < 10


def test_a_serving_server_passes():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        wait_for_servers((("worker-0", f"127.0.0.1:{port}"),), timeout_s=10, probe_max_s=2.0)
    finally:
        server.stop(None)
