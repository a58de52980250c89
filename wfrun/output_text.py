"""What steps print, made safe to show: without terminal escapes or stray control characters."""

from __future__ import annotations

import re

# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and lone ESC-x pairs.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences, which would corrupt a plain log or a frame's layout."""
    return _ANSI.sub("", text)


def printable(line: str) -> str:
    """One output line as a terminal would leave it: after the last \\r, without escapes."""
    line = strip_ansi(line.rstrip("\r\n"))
    if "\r" in line:
        # Progress bars redraw with \r; only the last redraw is what the user would see.
        line = line.rsplit("\r", 1)[-1]
    return _CONTROL.sub("", line.replace("\t", "    "))


DISPLAY_LINE_CHARS = 2000  # longer lines are cut for display (never in the log)


def shorten(line: str, limit: int = DISPLAY_LINE_CHARS) -> str:
    """A line cut for display, saying how much of it only the log has."""
    if len(line) <= limit:
        return line
    return f"{line[:limit]}… ({len(line) - limit} more characters in the log)"
