"""The CLI's commands that read a job's folder: ``tfray logs`` and ``tfray tensorboard``.

``logs`` prints what each task printed (``<job>/logs/attempt-<N>/<task>.log``,
its rotated parts first), of the newest attempt unless ``--attempt`` says
otherwise, and with ``--follow`` keeps printing new lines until the job's
driver is gone; ``logs JOB.yaml driver`` prints the driver's console of the
attempt instead (``driver.log``: what `tfray run` printed, each line
stamped). ``tensorboard`` serves the job folder's event files (the
driver's curves of every attempt, and the code's own logs) on loopback, until
Ctrl-C, SIGTERM or SIGHUP: every way it ends stops the server.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

from controller import settings
from controller.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from controller.store.lease import FileLease
from protocol.layout import DRIVER_LOG, LOGS_DIR


def _attempt_dir(job_dir: Path, attempt: int | None) -> Path | None:
    attempts = sorted((p for p in (job_dir / LOGS_DIR).glob("attempt-*") if p.name[8:].isdigit()),
                      key=lambda p: int(p.name[8:]))
    if attempt is None:
        return attempts[-1] if attempts else None
    return next((p for p in attempts if p.name == f"attempt-{attempt}"), None)


def _parts(folder: Path, task: str) -> list[Path]:
    """A task's log, its rotated parts first (oldest first)."""
    rotated = sorted(folder.glob(f"{task}.log.*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    return [*rotated, folder / f"{task}.log"]


def cmd_logs(args) -> int:
    from controller.spec import load_spec

    spec = load_spec(args.spec)
    folder = _attempt_dir(spec.job_dir, args.attempt)
    if folder is None:
        which = f"attempt {args.attempt}" if args.attempt else "any attempt"
        print(f"error: no logs of {which} of job {spec.name} in {spec.job_dir / LOGS_DIR}", file=sys.stderr)
        return EXIT_BAD_INPUT
    logs = sorted(p.name[:-4] for p in folder.glob("*.log"))
    tasks = [name for name in logs if name != DRIVER_LOG]  # the driver's console is asked for by name only
    if args.task and args.task not in logs:
        print(f"error: {folder} has no log of {args.task}; it has {', '.join(logs) or 'none'}", file=sys.stderr)
        return EXIT_BAD_INPUT
    chosen = [args.task] if args.task else tasks
    if not chosen:
        print(f"no task wrote a log in {folder}; `tfray logs {args.spec} {DRIVER_LOG}` shows what the driver "
              "printed", file=sys.stderr)
    offsets = {}
    for task in chosen:
        for part in _parts(folder, task):
            if part.exists():
                _print_from(part, 0, task if len(chosen) > 1 else None)
        offsets[task] = (folder / f"{task}.log").stat().st_size
    if args.follow:
        _follow(spec.job_dir, folder, chosen, offsets)
    return EXIT_OK


def _print_from(path: Path, offset: int, task: str | None) -> int:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for its end
    for line in complete.decode("utf-8", "replace").splitlines():
        print(f"({task}) {line}" if task else line)
    sys.stdout.flush()
    return offset + len(complete)


def _follow(job_dir: Path, folder: Path, tasks: list[str], offsets: dict[str, int]) -> None:
    """New lines as they come, until the job's driver is gone and nothing new came for a while."""
    quiet_since = time.monotonic()

    def over() -> bool:
        """New lines printed; True once the driver is gone and they stayed quiet long enough."""
        nonlocal quiet_since
        grew = False
        for task in tasks:
            path = folder / f"{task}.log"
            size = path.stat().st_size if path.exists() else 0
            if size < offsets[task]:  # rotated: start the new file from its beginning
                offsets[task] = 0
            if size > offsets[task]:
                offsets[task] = _print_from(path, offsets[task], task if len(tasks) > 1 else None)
                grew = True
        now = time.monotonic()
        quiet_since = now if grew else quiet_since
        return FileLease(job_dir).holder() is None and now - quiet_since > settings.LOGS_FOLLOW_QUIET_S

    try:  # no bound: it follows the job for as long as its driver lives, or until Ctrl-C
        settings.poll_until(over, None, settings.LOGS_FOLLOW_POLL_S, "the job's end")
    except KeyboardInterrupt:
        return


def cmd_tensorboard(args) -> int:
    from controller.spec import load_spec

    spec = load_spec(args.spec)
    if not spec.job_dir.is_dir():
        print(f"error: {spec.job_dir} does not exist yet: the job has not run", file=sys.stderr)
        return EXIT_BAD_INPUT
    port = args.port or _free_port()
    print(f"TensorBoard of job {spec.name} at http://127.0.0.1:{port}/ (every attempt's curves, and the code's own "
          f"logs); Ctrl-C stops it", flush=True)
    return _serve([sys.executable, "-m", "tensorboard.main", "--logdir", str(spec.job_dir), "--host", "127.0.0.1",
                   "--port", str(port)])


def _serve(command: list[str]) -> int:
    """Run the server until it ends or this process is told to stop: Ctrl-C, SIGTERM or SIGHUP (taken as
    Ctrl-C) or an error stop it on the way out; a SIGKILL, which nothing here can catch, stops it through
    the kernel (Linux: the server gets SIGTERM when its parent dies)."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    import subprocess  # here, not at the top: only this command starts a process

    parent = os.getpid()
    stop_with_parent = (lambda: _stop_with_parent(parent)) if sys.platform == "linux" else None
    server = subprocess.Popen(command, preexec_fn=stop_with_parent)  # noqa: PLW1509 (the CLI runs one thread)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return server.wait()
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(settings.TENSORBOARD_STOP_S)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _stop_with_parent(parent: int) -> None:
    """``preexec_fn``: the server gets SIGTERM when this process dies, however it dies (Linux's
    PR_SET_PDEATHSIG); if it died before that was set, the server does not start."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_commands(sub) -> None:
    p = sub.add_parser("logs", help="print what the job's tasks printed (their log files in the job folder), or "
                       "what its driver printed")
    p.add_argument("spec", help="job spec YAML")
    p.add_argument("task", nargs="?", help="one task, e.g. worker-1, or `driver`: the driver's console, what "
                   "`tfray run` printed, each line stamped (default: every task, each line prefixed)")
    p.add_argument("--attempt", type=int, help="which attempt (default: the newest)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until the job ends")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("tensorboard", help="serve the job's TensorBoard curves on 127.0.0.1 and print the URL")
    p.add_argument("spec", help="job spec YAML")
    p.add_argument("--port", type=int, help="the port (default: a free one)")
    p.set_defaults(func=cmd_tensorboard)
