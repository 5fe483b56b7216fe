"""The exit codes of every ``tfray`` command, in one place (the README lists them)."""

EXIT_OK = 0
EXIT_FAILED = 1  # the job failed
EXIT_BAD_INPUT = 2  # a spec, a file or an option is wrong; nothing was started
EXIT_STILL_RUNNING = 124  # `submit --follow` gave up after --timeout; the job goes on (as GNU timeout)
EXIT_STOPPED = 130  # the job was stopped (Ctrl-C, SIGTERM, `tfray stop`)
