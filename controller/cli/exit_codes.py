"""The exit codes of every ``tfray`` command, in one place (the README and ``tfray submit --help`` list them)."""

EXIT_OK = 0
EXIT_FAILED = 1  # the job failed
EXIT_BAD_INPUT = 2  # a spec, a file or an option is wrong, or the cluster cannot be reached; nothing was started
# `submit --follow` stopped following (Ctrl-C) and the job goes on: distinct from EXIT_STOPPED, so a script
# that follows a job can tell "I let go of it" from "it was stopped".
EXIT_DETACHED = 3
EXIT_STILL_RUNNING = 124  # `submit --follow` gave up after --timeout; the job goes on (as GNU timeout)
EXIT_STOPPED = 130  # the job was stopped (Ctrl-C or SIGTERM to `run`, `tfray stop`), or Ctrl-C before it was submitted
# Any command whose output's reader went away (`tfray status JOB --json | head -c 1500`): it ends quietly, as a
# Unix tool killed by SIGPIPE would (128 + 13), with no traceback; a shell's pipeline reports its last command.
EXIT_BROKEN_PIPE = 141
