"""What `tfray run` adds on a terminal to the API's one run sequence (``controller.api.run``).

Imported by ``tfray run`` only: the API (and, once a job runs, Ray) is no
cost to the commands that start nothing.
"""

from __future__ import annotations

import os
import signal
import sys

from controller import api
from controller.cli.app import warn
from controller.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_STOPPED


class TerminalRun(api.RunHooks):
    """What `tfray run` adds to the API's run sequence: warnings and the progress line on the terminal, what
    the tasks print (the console), SIGTERM taken as Ctrl-C, Ray's colours kept out of a pipe, the summary.
    Everything it prints goes through ``out`` and ``err``, which keep it in the attempt's ``driver.log`` too
    (the API's sequence adds the ``tfray:`` lines there)."""

    def __init__(self, spec_path: str, verbose: bool):
        from controller.report.driver_log import DriverLog
        from controller.status.console import Console

        self.spec_path = spec_path
        self.driver_log = DriverLog()
        self.out = self.driver_log.tee(sys.stdout)
        self.err = self.driver_log.tee(sys.stderr)
        self.console = Console(stream=self.out, verbose=verbose)

    def warn(self, text: str) -> None:
        warn(text, self.err)

    def nothing_to_run(self, message: str) -> None:
        print(message, file=self.out)

    def progress(self, progress) -> None:
        print(f"progress {progress.line()}", file=self.out, flush=True)

    def starting_ray(self) -> None:
        if not sys.stdout.isatty():
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # Ray's own lines without colour codes in a pipe or file

    def running(self, spec) -> None:
        from controller.plan.tasks import chief_of, plan

        def on_sigterm(signum, frame):
            raise KeyboardInterrupt  # same clean stop as Ctrl-C

        signal.signal(signal.SIGTERM, on_sigterm)
        # Every worker's fit(verbose=1) draws the same bar with its own per-step numbers; the chief's (worker-0's
        # when there is none) is the job's, and the others' stay in their log files.
        self.console.progress_of = str(chief_of(plan(spec)).key)

    def ended(self, spec, result) -> None:
        from controller.status.summary import summary_lines

        self.console.finish()  # every task's last lines before the summary
        print("\n" + "\n".join(summary_lines(spec, result, self.spec_path)), file=self.out, flush=True)


def run_on_terminal(args) -> int:
    """`tfray run`: the job through the API's run sequence with this terminal's hooks; the exit code."""
    from controller.states.state import JobState

    terminal = TerminalRun(args.spec, args.verbose)
    result = api.run(args.spec, address=args.address, faults=args.fault, fresh=args.fresh, num_cpus=args.num_cpus,
                     dashboard=args.dashboard, on_progress=terminal.progress, on_output=terminal.console.lines,
                     hooks=terminal, driver_log=terminal.driver_log)
    return {JobState.SUCCEEDED: EXIT_OK, JobState.STOPPED: EXIT_STOPPED}.get(result.state, EXIT_FAILED)
