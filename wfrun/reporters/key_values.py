"""Rows of a bold key and its value, the values aligned and wrapped under themselves.

This is what a two-column `Table.grid(padding=(0, 2))` draws. The run summary's statistics are
printed after every run, quiet ones included, and importing `rich.table` (with the fractions and
decimal modules it pulls in) cost about 5 ms of a one-step run's start-up; the few runs that draw
a real table (groups, pools, failures) still import it when they do.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style

_BOLD = Style(bold=True)
_GAP = 2  # blank cells between a key and its value
_NARROWEST = 10  # a value column never narrower than this, however wide the keys


class KeyValues:
    """`mode  parallel, cap 8` and the like: keys never wrap, values wrap within their column."""

    def __init__(self, rows: Sequence[tuple[str, RenderableType]]) -> None:
        self.rows = list(rows)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.rows:
            return
        key_width = max(cell_len(key) for key, _ in self.rows)
        value_width = max(options.max_width - key_width - _GAP, _NARROWEST)
        value_options = options.update(width=value_width, height=None)
        indent = Segment(" " * (key_width + _GAP))
        new_line = Segment.line()
        for key, value in self.rows:
            lines = console.render_lines(value, value_options, pad=False, new_lines=False)
            for number, line in enumerate(lines or [[]]):
                if number == 0:
                    yield Segment(key, _BOLD)
                    yield Segment(" " * (key_width - cell_len(key) + _GAP))
                else:
                    yield indent
                yield from line
                yield new_line
