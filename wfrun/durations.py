"""Durations written with units: `500ms`, `30s`, `5m`, `1h`, `1h30m`."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise ValueError with a suggestion for anything else."""
    compact = text.strip()
    if not _WHOLE.fullmatch(compact):
        if re.fullmatch(r"\d+(?:\.\d+)?", compact):
            raise ValueError(bare_number_message(compact))
        raise ValueError(
            f"invalid duration {text!r}: write a number with a unit, e.g. 500ms, 30s, 5m, 1h30m"
        )
    seconds = sum(float(n) * _SECONDS[unit] for n, unit in _PART.findall(compact))
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: it must be longer than zero")
    return seconds


def bare_number_message(number: str) -> str:
    """The suggestion for a bare number, which is ambiguous (the source format meant ms)."""
    n = float(number)
    shown = number if "." in number else str(int(n))
    minutes = f", {n / 60:g}m" if n >= 60 and n % 60 == 0 else ""
    return (
        f"duration {shown} has no unit: write {shown}s{minutes} or {n * 1000:.10g}ms "
        "(a bare number is ambiguous)"
    )


def format_duration(seconds: float) -> str:
    """Human form for summaries: 850ms, 12.3s, 4m05s, 1h02m."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
