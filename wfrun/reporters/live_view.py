"""The live frame: a function of RunState and the terminal's height.

Every row is exactly one line (no wrapping, ellipsis on overflow), so the frame's height is known
before rendering and a 1,000-step run shows its counts plus only the rows that fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from wfrun.durations import format_duration
from wfrun.output_text import shown
from wfrun.reporters.plan_view import format_units
from wfrun.reporters.state import Counts, PoolUsage, RunningStep, RunState, WaitingStep

BAR_WIDTH = 30
POOL_BAR_WIDTH = 20


@dataclass(frozen=True, slots=True)
class _Budget:
    """How many rows each section gets, and whether it needs an `… and N more` line."""

    running: int
    more_running: bool
    waiting: int
    more_waiting: bool


def live_view(state: RunState, height: int) -> RenderableType:
    """Header, running steps, waiting steps with their reason, a bar per pool; at most `height`
    lines (one is left free for the cursor the live display keeps below the frame)."""
    if not state.started:
        return Text("wfrun: starting…", style="dim")
    counts = state.counts()
    pools = state.pools()
    lines_left = max(height - 1, 1) - 1 - len(pools)
    budget = _share(counts, lines_left)
    parts: list[RenderableType] = [_header(state, counts)]
    if budget.running or budget.more_running:
        parts += _running_section(state, counts.running, budget)
    if budget.waiting or budget.more_waiting:
        parts += _waiting_section(state, counts.waiting, budget)
    if pools and lines_left >= 0:
        parts.append(_pools_grid(pools))
    return Group(*parts)


def _fit(rows: int, space: int) -> tuple[int, bool]:
    """Rows shown out of `rows` in `space` lines, keeping one for `… and N more` if needed."""
    if rows <= space:
        return rows, False
    return max(space - 1, 0), space >= 1


def _share(counts: Counts, lines: int) -> _Budget:
    """Running steps first (there are few), then waiting ones; each section has a title line."""
    run_space, wait_space = 0, 0
    if counts.running and lines >= 2:
        reserve = 2 if counts.waiting else 0  # keep room for the waiting title and one row
        run_space = max(min(counts.running, lines - 1 - reserve), 1)
        lines -= run_space + 1
    if counts.waiting and lines >= 2:
        wait_space = lines - 1
    running, more_running = _fit(counts.running, run_space)
    waiting, more_waiting = _fit(counts.waiting, wait_space)
    return _Budget(running, more_running, waiting, more_waiting)


def bar_text(completed: int, total: int, width: int, style: str) -> Text:
    """`━━━━──────`: done cells `━`, the rest `─`, so that a capture without colour still tells
    a full bar from an empty one."""
    done = round(width * min(completed, total) / max(total, 1))
    return Text.assemble(("━" * done, style), ("─" * (width - done), "dim"))


class Bar:
    """A bar at most `width` cells wide, narrower when the line needs the room."""

    def __init__(self, completed: int, total: int, width: int, style: str = "green") -> None:
        self.completed, self.total, self.width, self.style = completed, total, width, style

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(0, min(self.width, options.max_width))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = min(self.width, options.max_width)
        yield bar_text(self.completed, self.total, width, self.style)


class _Header:
    """`name 12s ━━━━───── 3/8 done · 1 failed · 2 running`, on one line at any width.

    The name, the elapsed time and the done and failed counts stay whole (a name longer than
    30 cells is cut); the bar gives way first, then the other counts.
    """

    def __init__(self, name: str, elapsed: float, counts: Counts) -> None:
        self.name = Text(name, style="bold")
        self.elapsed = Text(format_duration(elapsed), style="dim")
        self.counts = counts

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        essential, counts = _counts_text(self.counts)
        name = self.name.copy()
        name.truncate(
            max(8, min(30, width - self.elapsed.cell_len - essential - 4)), overflow="ellipsis"
        )
        line = Text.assemble(name, " ", self.elapsed, " ")
        room = width - line.cell_len - counts.cell_len - 1
        if room >= 5:
            line.append_text(
                bar_text(self.counts.finished, self.counts.total, min(room, BAR_WIDTH), "green")
            )
            line.append(" ")
        line.append_text(counts)
        line.truncate(width, overflow="ellipsis")
        yield line


def _header(state: RunState, counts: Counts) -> _Header:
    name = shown(state.workflow.name) if state.workflow else "workflow"
    return _Header(name, state.elapsed(), counts)


def _counts_text(counts: Counts) -> tuple[int, Text]:
    """The counts, the done and failed ones first; and the width of those two."""
    text = Text(f"{counts.finished}/{counts.total} done")
    extras = [
        (counts.failed + counts.timed_out, "failed", "red"),
        (counts.running, "running", "cyan"),
        (counts.waiting, "waiting", "dim"),
        (counts.skipped, "skipped", "yellow"),
        (counts.cancelled, "cancelled", "magenta"),
    ]
    essential = text.cell_len
    for number, label, style in extras:
        if number:
            text.append(" · ")
            text.append(f"{number} {label}", style=style)
            if label == "failed":
                essential = text.cell_len
    return essential, text


def _title(label: str, count: int) -> Text:
    return Text.assemble((label, "bold"), (f" ({count})", "dim"))


def _more(count: int, label: str) -> Text:
    return Text(f"  … and {count} more {label}", style="dim")


def _running_section(state: RunState, total: int, budget: _Budget) -> list[RenderableType]:
    rows = state.running(budget.running)
    parts: list[RenderableType] = [_title("running", total)]
    if rows:
        parts.append(_running_grid(rows, state.elapsed()))
    if budget.more_running:
        parts.append(_more(total - len(rows), "running"))
    return parts


def _running_grid(rows: list[RunningStep], now: float) -> Text:
    # Aligned columns in one Text, as for the waiting list: a Table measures every cell on every
    # redraw, which made these few rows the dearest part of the frame.
    cells = [
        (
            Text("▶ " + shown(row.step_id), style="cyan"),
            Text(f"group {row.group}" + (f" · attempt {row.attempt}" if row.attempt else "")),
            Text(format_units(row.resources)),
            Text(format_duration(max(0.0, now - row.started_at))),
        )
        for row in rows
    ]
    widths = [
        min(limit, max(cell[column].cell_len for cell in cells))
        for column, limit in enumerate((32, 1000, 24, 1000))
    ]
    block = Text(no_wrap=True, overflow="ellipsis")
    for index, (row, (name, group, units, elapsed)) in enumerate(zip(rows, cells, strict=True)):
        if index:
            block.append("\n")
        for cell, width, style in ((name, widths[0], ""), (group, widths[1], "dim")):
            cell.truncate(width, overflow="ellipsis", pad=True)
            cell.stylize(style)
            block.append_text(cell)
            block.append(" ")
        if widths[2]:
            units.truncate(widths[2], overflow="ellipsis", pad=True)
            block.append_text(units)
            block.append(" ")
        block.append(" " * (widths[3] - elapsed.cell_len))
        block.append_text(elapsed)
        detail = _detail(row)
        if detail:
            block.append(" ")
            detail.stylize("dim")
            block.append_text(detail)
    return block


def _detail(row: RunningStep) -> Text:
    """The last output line; for an agent step, the prompt it is answering first."""
    if row.prompt is None:
        return Text(row.last_line)
    text = Text("❯ " + shown(row.prompt), style="italic")
    if row.last_line:
        text.append(" · " + row.last_line)
    return text


def _waiting_section(state: RunState, total: int, budget: _Budget) -> list[RenderableType]:
    rows = state.waiting(budget.waiting)
    parts: list[RenderableType] = [_title("waiting", total)]
    if rows:
        parts.append(_waiting_grid(state, rows))
    if budget.more_waiting:
        parts.append(_more(total - len(rows), "waiting"))
    return parts


def _waiting_grid(state: RunState, rows: list[WaitingStep]) -> Text:
    # One Text of aligned lines rather than a Table: the waiting list is most of a big run's
    # frame, and a table measures every cell on every redraw (a third of the frame's cost).
    width = min(32, max(len(row.step_id) for row in rows) + 2)
    block = Text(no_wrap=True, overflow="ellipsis")
    for index, row in enumerate(rows):
        if index:
            block.append("\n")
        block.append(f"· {shown(row.step_id)}"[:width].ljust(width) + " ")
        block.append(_reason(state, row), style="yellow" if row.ready else "dim")
    return block


def _reason(state: RunState, row: WaitingStep) -> str:
    """Why a step waits; a step that needs nothing and was not reported ready yet (the first
    frame, before the scheduler's first pass) is about to start, not waiting for `needs `."""
    if not row.ready and not state.unfinished_dependencies(row.step_id):
        return "about to start"
    return shown(row.reason)


def _pools_grid(pools: list[PoolUsage]) -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True, overflow="ellipsis", max_width=24)
    grid.add_column(width=POOL_BAR_WIDTH, no_wrap=True)
    grid.add_column(no_wrap=True, justify="right")
    grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1, style="dim")
    for pool in pools:
        bar = Bar(pool.in_use, pool.capacity, POOL_BAR_WIDTH, style="magenta")
        held = f"held by {', '.join(map(shown, pool.holders))}" if pool.holders else ""
        grid.add_row(
            Text(f"pool {shown(pool.name)}"), bar, Text(f"{pool.in_use}/{pool.capacity}"), held
        )
    return grid
