"""Did-you-mean suggestions for misspelt keys, step ids, pools and agents."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` most likely misspells, or None when none is close."""
    by_folded: dict[str, str] = {}
    for candidate in candidates:
        by_folded.setdefault(candidate.casefold(), candidate)
    folded = word.casefold()
    # Case slips (`dependson`) are the commonest typo and difflib would score them like any other.
    if folded in by_folded:
        return by_folded[folded]
    matches = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=0.75)
    return by_folded[matches[0]] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`" (did you mean 'x'?)"` for the closest candidate, or an empty string."""
    match = closest(word, candidates)
    return f" (did you mean {match!r}?)" if match is not None and match != word else ""
