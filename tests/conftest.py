"""Shared test setup: Ray runs without token auth and with a private HOME.

Since Ray 2.59 a plain local ``ray.init()`` writes ``~/.ray/auth_token`` and
turns token auth on, which later breaks clients that lack it (docs/design.md §6);
tests set the mode explicitly and keep Ray's files out of the real HOME.
"""

import os
import tempfile

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("HOME", tempfile.mkdtemp(prefix="tfray-home-"))
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
