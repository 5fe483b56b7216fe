"""Text that reaches records and people: plain (no terminal colour codes) and cut at line boundaries.

A task's error can be a long traceback with colour codes from Ray or a
terminal. Records keep it readable: codes removed, and when it is long, its
first lines (where it started) and its last lines (the exception), with how
many lines were left out between them, never a line cut in half.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
HEAD_LINES = 6
TAIL_LINES = 20


def plain(text: str) -> str:
    """``text`` without terminal escape codes (colours, cursor moves)."""
    return _ANSI.sub("", text)


def compact(text: str, max_chars: int = 2000) -> str:
    """``text`` made plain; if longer than ``max_chars``, its first and last lines with a note between."""
    text = plain(text).strip("\n")
    if len(text) <= max_chars:
        return text
    lines = text.splitlines()
    head, tail = lines[:HEAD_LINES], lines[-TAIL_LINES:] if len(lines) > HEAD_LINES else []
    while tail and len("\n".join(head + tail)) > max_chars - 40:
        tail = tail[1:]
    dropped = len(lines) - len(head) - len(tail)
    kept = head + ([f"... {dropped} line(s) left out ..."] if dropped > 0 else []) + tail
    return "\n".join(line if len(line) <= max_chars // 2 else line[: max_chars // 2] + " ..." for line in kept)


def duration(seconds: float | None) -> str:
    """``3h05m``, ``4m12s``, ``9s``: as long as it needs to be, no longer."""
    if seconds is None:
        return "?"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
