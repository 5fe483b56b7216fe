"""``python -m controller``: the tfray command line."""

from controller.cli import main

raise SystemExit(main())
