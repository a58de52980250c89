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
    """A line cut for display, saying that the log has the rest. (How much it has is not
    known here: an endless line reaches the displays in pieces.)"""
    if len(line) <= limit:
        return line
    return f"{line[:limit]}… (line cut for display; the log has all of it)"


# C0 and C1 controls, and the Unicode line and paragraph separators, which break a line too.
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown(text: str) -> str:
    """A string from the workflow file (a name, a command, a prompt, a reason that quotes them)
    made safe for the terminal: every control character is written as a visible escape.

    Unlike a step's output, which is stripped, such a string is the user's own text: `\\x1b`
    shows that it holds an escape, where the raw character would retitle the window or clear
    the screen.
    """
    if not _UNSHOWABLE.search(text):
        return text  # the usual case, and the one a big run's frame takes thousands of times
    return _UNSHOWABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if ord(char) > 0xFF:
        return f"\\u{ord(char):04x}"
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{ord(char):02x}")
