"""Durations written with units: `500ms`, `30s`, `5m`, `1h`, `1h30m`."""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# The longest duration wfrun accepts: a week. Longer is a slip (`3000000h`), and the waits that
# enforce a timeout take at most about 24 days on Linux.
MAX_SECONDS = 7 * 24 * 3600.0
MAX_TEXT = "168h"

# A bare number this large, and a multiple of 1000, reads as milliseconds first: `300000` is far
# more likely 5 minutes than 3 days and a half.
_MILLISECONDS_FROM = 10_000


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise ValueError with a suggestion for anything else."""
    compact = text.strip()
    if not _WHOLE.fullmatch(compact):
        if re.fullmatch(r"\d+(?:\.\d+)?", compact):
            raise ValueError(bare_number_message(compact))
        raise ValueError(
            f"invalid duration {_shown(text)}: write a number with a unit, e.g. 500ms, 30s, 5m, "
            "1h30m"
        )
    seconds = sum(float(n) * _SECONDS[unit] for n, unit in _PART.findall(compact))
    if seconds <= 0:
        raise ValueError(f"invalid duration {_shown(text)}: it must be longer than zero")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {_shown(text)} is too long: at most {MAX_TEXT} (a week)")
    return seconds


def _shown(text: str) -> str:
    """The text quoted, and cut short when long: a 5,000-digit number is a slip, not a message."""
    return repr(text) if len(text) <= 40 else repr(text[:30] + "…") + f" ({len(text):,} characters)"


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:30]}… ({len(text):,} characters)"


def bare_number_message(number: str) -> str:
    """The suggestion for a bare number, which is ambiguous (the source format meant ms).

    `number` is the text the user wrote (digits and at most one dot), or the number as Python
    prints it when the text is unusual (`1e3`, `.inf`).
    """
    try:
        n = float(number)
    except ValueError:
        n = math.nan
    if not math.isfinite(n) or n < 0 or n / 1000 > MAX_SECONDS:
        return (
            f"duration {_short(number)} has no unit and is out of range: write a number with a "
            f"unit, e.g. 500ms, 30s, 5m, 1h30m (at most {MAX_TEXT})"
        )
    shown = number if "." in number else str(int(n))
    as_seconds = f"{shown}s{_equal(n)}" if n <= MAX_SECONDS else ""
    as_ms = f"{n * 1000:.10g}ms" if n * 1000 <= MAX_SECONDS * 1000 else ""
    if n >= _MILLISECONDS_FROM and (n % 1000 == 0 or not as_seconds):
        choices = [f"{shown}ms{_equal(n / 1000)}", as_seconds]
        return (
            f"duration {shown} has no unit: write {' or '.join(c for c in choices if c)} "
            "(a bare number is ambiguous; this one reads like milliseconds)"
        )
    minutes = f", {n / 60:g}m" if n >= 60 and n % 60 == 0 else ""
    return (
        f"duration {shown} has no unit: write {shown}s{minutes} or {as_ms} "
        "(a bare number is ambiguous)"
    )


def _equal(seconds: float) -> str:
    """` (= 5m)`: the length in its plainest units, when that differs from the number itself."""
    if seconds < 60:
        return ""
    hours, rest = divmod(round(seconds, 3), 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{int(hours)}h" if hours else "") + (f"{int(minutes)}m" if minutes else "")
    text += f"{secs:g}s" if secs else ""
    return f" (= {text})"


def format_duration(seconds: float) -> str:
    """Human form for summaries: 850ms, 12.3s, 4m05s, 1h02m."""
    # Round first, so that 0.9996 s reads 1.0s rather than 1000ms, and 59.97 s reads 1m00s.
    if round(seconds * 1000) < 1000:
        return f"{seconds * 1000:.0f}ms"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    if round(seconds) < 3600:
        whole = round(seconds)
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
