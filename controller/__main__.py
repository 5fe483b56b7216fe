"""``python -m controller``: the tfray command line."""

from controller.cli.app import main

raise SystemExit(main())
