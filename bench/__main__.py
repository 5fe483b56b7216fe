"""``python -m bench``: see bench/harness.py and BENCHMARKS.md."""

import sys

from bench.harness import main

sys.exit(main())
