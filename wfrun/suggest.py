"""Did-you-mean suggestions for misspelt keys, step ids, pools and agents.

A suggestion must cost little however many names there are: 2,000 misspelt dependencies among
2,000 steps must not compare every pair. Small sets go through difflib as a whole; large ones
through an index of their one-character deletions (the SymSpell idea), which finds every name
within one slip — a wrong, missing, extra or swapped character — before difflib ranks those few.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Up to this many names difflib compares them all; above it the deletion index picks the few.
SMALL_SET = 100
_CUTOFF = 0.75
# The longest word the index takes apart; longer ones are matched on case alone.
_INDEXED_LENGTH = 64


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class Vocabulary:
    """The names a word may be a misspelling of, ready to answer many `closest` questions."""

    def __init__(self, candidates: Iterable[str], budget: int | None = None) -> None:
        # `budget`: how many words may still be compared with difflib; past it only case slips
        # are found, so that 100,000 unknown keys cost a dictionary lookup each.
        self.budget = budget
        self._by_folded: dict[str, str] = {}
        for candidate in candidates:
            self._by_folded.setdefault(candidate.casefold(), candidate)
        self._index: dict[str, list[str]] | None = None

    def __len__(self) -> int:
        return len(self._by_folded)

    def closest(self, word: str) -> str | None:
        """The candidate `word` most likely misspells, or None when none is close."""
        folded = word.casefold()
        # Case slips (`dependson`) are the commonest typo and difflib would score them like any.
        if folded in self._by_folded:
            return self._by_folded[folded]
        if self.budget is not None:
            if self.budget <= 0:
                return None
            self.budget -= 1
        pool = list(self._by_folded) if len(self) <= SMALL_SET else self._near(folded)
        matches = difflib.get_close_matches(folded, pool, n=1, cutoff=_CUTOFF)
        return self._by_folded[matches[0]] if matches else None

    def _near(self, folded: str) -> list[str]:
        """The folded candidates one slip away from `folded`, through the deletion index."""
        if len(folded) > _INDEXED_LENGTH:
            return []
        index = self._index
        if index is None:
            index = self._index = {}
            for candidate in self._by_folded:
                if len(candidate) <= _INDEXED_LENGTH:
                    for key in {candidate, *_deletions(candidate)}:
                        index.setdefault(key, []).append(candidate)
        near: dict[str, None] = {}
        for key in {folded, *_deletions(folded)}:
            near.update(dict.fromkeys(index.get(key, ())))
        return list(near)

    def did_you_mean(self, word: str) -> str:
        """`" (did you mean 'x'?)"` for the closest candidate, or an empty string."""
        match = self.closest(word)
        return f" (did you mean {match!r}?)" if match is not None and match != word else ""


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` most likely misspells, or None when none is close."""
    return Vocabulary(candidates).closest(word)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`" (did you mean 'x'?)"` for the closest candidate, or an empty string."""
    return Vocabulary(candidates).did_you_mean(word)


def listed(names: Iterable[str], limit: int = 10) -> str:
    """`a, b, c`, or the first `limit` names and how many more: a message stays one line."""
    shown: list[str] = []
    more = 0
    for name in names:
        if len(shown) < limit:
            shown.append(name)
        else:
            more += 1
    return ", ".join(shown) + (f" and {more:,} more" if more else "")
