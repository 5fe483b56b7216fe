"""Wait until a parameter-server job's servers accept gRPC connections (the coordinator must not start
against a server that is not up yet)."""

from __future__ import annotations

import time


def wait_for_servers(servers: tuple, timeout_s: float, probe_max_s: float, stopped=lambda: False) -> None:
    """Block until every (task, host:port) accepts gRPC connections, or raise naming those that do not."""
    import grpc

    deadline = time.monotonic() + timeout_s
    waiting = dict(servers)
    while waiting and not stopped():
        for task, address in list(waiting.items()):
            with grpc.insecure_channel(address) as channel:
                try:
                    grpc.channel_ready_future(channel).result(
                        timeout=max(0.1, min(probe_max_s, deadline - time.monotonic())))
                    del waiting[task]
                except grpc.FutureTimeoutError:
                    pass
        if waiting and time.monotonic() >= deadline:
            names = ", ".join(f"{task} at {address}" for task, address in sorted(waiting.items()))
            raise TimeoutError(f"servers not reachable over gRPC within {timeout_s:g}s: {names}")
