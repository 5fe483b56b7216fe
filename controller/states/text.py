"""Text that reaches records and people: plain (no terminal colour codes) and cut at line boundaries.

A task's error can be a long traceback with colour codes from Ray or a
terminal, and the output it ends with can be a progress bar that redraws
itself with carriage returns and backspaces (Keras's). Records keep it
readable: codes removed, each redrawn line as a terminal ends up showing it,
and when it is long, its first lines (where it started) and its last lines
(the exception), with how many lines were left out between them, never a
line cut in half.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
HEAD_LINES = 6
TAIL_LINES = 20


def plain(text: str) -> str:
    """``text`` without terminal escape codes (colours, cursor moves), each line redrawn to its final state."""
    text = _ANSI.sub("", text)
    if "\r" not in text and "\b" not in text:
        return text
    return "\n".join(redrawn(line) for line in text.split("\n"))


def redrawn(line: str) -> str:
    """What a terminal shows of one line that rewrites itself: a carriage return goes back to its start and a
    backspace one character back, and what follows overwrites what was there. A Keras progress bar is one such
    line per epoch, redrawn at every step; split at its carriage returns (``str.splitlines`` does) it is one
    half-drawn bar per step, and its last piece runs into whatever is printed next."""
    if "\r" not in line and "\b" not in line:
        return line
    shown: list[str] = []
    cursor = 0
    for char in line:
        if char == "\r":
            cursor = 0
        elif char == "\b":
            cursor = max(0, cursor - 1)
        else:
            if cursor < len(shown):
                shown[cursor] = char
            else:
                shown.append(char)
            cursor += 1
    return "".join(shown).rstrip()  # a redraw pads with blanks to cover a longer line before it


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
