"""Small function entrypoints for integration tests that need real actors but not TensorFlow."""

import time

MAX_WAIT_S = 120  # bound on how long a task waits to be killed by the controller


def fail_on(ctx, role: str = "worker", index: int = 1) -> str:
    """The chosen task raises at once; the others wait, as MWMS peers stuck in a collective would."""
    if (ctx.role, ctx.index) == (role, index):
        raise ValueError(f"boom from {ctx.role}-{ctx.index}")
    deadline = time.monotonic() + MAX_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.1)
    return "not killed"


def count_steps(ctx, steps: int = 600, interval_s: float = 0.2) -> int:
    """Reports a step every interval; long enough to be stopped with Ctrl-C."""
    for step in range(1, steps + 1):
        ctx.report({"loss": 1.0 / step}, step=step)
        time.sleep(interval_s)
    return steps
