"""The live frame: a function of RunState and the terminal's height.

Every row is exactly one line (no wrapping, ellipsis on overflow), so the frame's height is known
before rendering and a 1,000-step run shows its counts plus only the rows that fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from wfrun.durations import format_duration
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


def _header(state: RunState, counts: Counts) -> Table:
    name = state.workflow.name if state.workflow else "workflow"
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, overflow="ellipsis", max_width=30)
    grid.add_column(width=BAR_WIDTH, no_wrap=True)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    bar = ProgressBar(total=max(counts.total, 1), completed=counts.finished, width=BAR_WIDTH)
    grid.add_row(Text(name, style="bold"), bar, _counts_text(state, counts))
    return grid


def _counts_text(state: RunState, counts: Counts) -> Text:
    text = Text(f"{counts.finished}/{counts.total} done")
    extras = [
        (counts.running, "running", "cyan"),
        (counts.waiting, "waiting", "dim"),
        (counts.failed + counts.timed_out, "failed", "red"),
        (counts.skipped, "skipped", "yellow"),
        (counts.cancelled, "cancelled", "magenta"),
    ]
    for number, label, style in extras:
        if number:
            text.append(" · ")
            text.append(f"{number} {label}", style=style)
    text.append(f" · {format_duration(state.elapsed())}", style="dim")
    return text


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


def _running_grid(rows: list[RunningStep], now: float) -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True, overflow="ellipsis", max_width=32, style="cyan")
    grid.add_column(no_wrap=True, style="dim")
    grid.add_column(no_wrap=True, overflow="ellipsis", max_width=24)
    grid.add_column(no_wrap=True, justify="right")
    grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1, style="dim")
    for row in rows:
        grid.add_row(
            Text("▶ " + row.step_id),
            Text(f"group {row.group}"),
            Text(format_units(row.resources)),
            Text(format_duration(max(0.0, now - row.started_at))),
            _detail(row),
        )
    return grid


def _detail(row: RunningStep) -> Text:
    """The last output line; for an agent step, the prompt it is answering first."""
    if row.prompt is None:
        return Text(row.last_line)
    text = Text("❯ " + row.prompt, style="italic")
    if row.last_line:
        text.append(" · " + row.last_line)
    return text


def _waiting_section(state: RunState, total: int, budget: _Budget) -> list[RenderableType]:
    rows = state.waiting(budget.waiting)
    parts: list[RenderableType] = [_title("waiting", total)]
    if rows:
        parts.append(_waiting_grid(rows))
    if budget.more_waiting:
        parts.append(_more(total - len(rows), "waiting"))
    return parts


def _waiting_grid(rows: list[WaitingStep]) -> Text:
    # One Text of aligned lines rather than a Table: the waiting list is most of a big run's
    # frame, and a table measures every cell on every redraw (a third of the frame's cost).
    width = min(32, max(len(row.step_id) for row in rows) + 2)
    block = Text(no_wrap=True, overflow="ellipsis")
    for index, row in enumerate(rows):
        if index:
            block.append("\n")
        block.append(f"· {row.step_id}"[:width].ljust(width) + " ")
        block.append(row.reason, style="yellow" if row.ready else "dim")
    return block


def _pools_grid(pools: list[PoolUsage]) -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True, overflow="ellipsis", max_width=24)
    grid.add_column(width=POOL_BAR_WIDTH, no_wrap=True)
    grid.add_column(no_wrap=True, justify="right")
    grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1, style="dim")
    for pool in pools:
        bar = ProgressBar(total=max(pool.capacity, 1), completed=pool.in_use, width=POOL_BAR_WIDTH)
        held = f"held by {', '.join(pool.holders)}" if pool.holders else ""
        grid.add_row(Text(f"pool {pool.name}"), bar, Text(f"{pool.in_use}/{pool.capacity}"), held)
    return grid
