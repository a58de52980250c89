"""The end-of-run summary: a table per group, the statistics, pool utilization, failure digests."""

from __future__ import annotations

import signal

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from wfrun.durations import format_duration
from wfrun.output_text import printable
from wfrun.planner import Plan
from wfrun.reporters.plan_view import id_width, titled_table
from wfrun.results import ParallelStats, PoolStats, RunResult, RunStatus, StepResult, StepStatus

DIGEST_LINES = 10
NOTABLE_WAIT = 0.01  # shorter waits are the dispatcher's own latency, not worth a column
MAX_LINE = 300  # a minified bundle on one line would otherwise fill the screen
GROUP_ROWS = 15  # succeeded steps listed per group; the rest are counted

# glyph, words, style per final status
_STATUS: dict[StepStatus, tuple[str, str, str]] = {
    StepStatus.SUCCEEDED: ("✔", "succeeded", "green"),
    StepStatus.FAILED: ("✘", "failed", "red"),
    StepStatus.TIMED_OUT: ("✘", "timed out", "red"),
    StepStatus.SKIPPED: ("○", "skipped", "yellow"),
    StepStatus.CANCELLED: ("⊘", "cancelled", "magenta"),
}
_RUN_STYLE = {
    RunStatus.SUCCEEDED: ("✔", "green"),
    RunStatus.FAILED: ("✘", "red"),
    RunStatus.TIMED_OUT: ("✘", "red"),
    RunStatus.CANCELLED: ("⊘", "magenta"),
}
_DIGESTED = (StepStatus.FAILED, StepStatus.TIMED_OUT, StepStatus.CANCELLED)


def status_glyph(result: StepResult) -> str:
    return _STATUS[result.status][0]


def status_style(result: StepResult) -> str:
    if result.allowed_failure and result.status is StepStatus.FAILED:
        return "yellow"
    return _STATUS[result.status][2]


def status_words(result: StepResult) -> str:
    """`failed (allowed)` for a continueOnError failure, which does not fail the run."""
    words = _STATUS[result.status][1]
    if result.allowed_failure and not result.success:
        return f"{words} (allowed)"
    return words


def ended_by(result: StepResult) -> str:
    """`exit code 1` or `signal 9 (SIGKILL)`; empty when the step never ran a process."""
    if result.signal is not None:
        try:
            name = signal.Signals(result.signal).name
        except ValueError:
            return f"signal {result.signal}"
        return f"signal {result.signal} ({name})"
    if result.exit_code is not None:
        return f"exit code {result.exit_code}"
    return ""


def tail_lines(output_tail: str, limit: int = DIGEST_LINES) -> list[str]:
    """The last `limit` lines of an output tail (trailing blank lines dropped), made printable."""
    lines = [printable(line) for line in output_tail.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    return [line[:MAX_LINE] for line in lines[-limit:]]


def summary_view(result: RunResult, plan: Plan, *, tables: bool = True) -> RenderableType:
    """Everything a user needs after the run; `tables=False` leaves out the per-group tables."""
    parts: list[RenderableType] = [_headline(result)]
    if result.error:
        parts.append(Text(result.error, style="red"))
    parts += _group_tables(result, plan) if tables else [Text()]
    parts.append(_statistics(result, plan))
    if result.parallel_stats and result.parallel_stats.resources:
        parts.append(_pool_bars(result.parallel_stats))
    parts += [_digest(r) for r in _digested(result, plan)]
    return Group(*parts)


def _headline(result: RunResult) -> Text:
    glyph, style = _RUN_STYLE[result.status]
    text = Text.assemble(
        (f"{glyph} {result.workflow_name} ", "bold"),
        (result.status.value.replace("_", " "), f"bold {style}"),
        f" in {format_duration(result.execution_time_s)}",
    )
    tally: dict[str, int] = {}
    for r in result.step_results.values():
        tally[status_words(r)] = tally.get(status_words(r), 0) + 1
    parts = ", ".join(f"{n} {words}" for words, n in tally.items())
    text.append(f" · {len(result.step_results)} steps: {parts}", style="dim")
    return text


def _group_tables(result: RunResult, plan: Plan) -> list[RenderableType]:
    width = id_width(result.step_results)
    parts: list[RenderableType] = []
    for index, ids in enumerate(plan.groups):
        rows = [result.step_results[sid] for sid in ids if sid in result.step_results]
        shown, hidden = _rows_worth_showing(rows)
        table = _group_table(index, shown, width)
        if hidden:
            table.add_row(Text(f"… and {len(hidden)} more succeeded", style="dim"))
        parts += [Text(), table]
    return [*parts, Text()]


def _rows_worth_showing(rows: list[StepResult]) -> tuple[list[StepResult], list[StepResult]]:
    """Every step that did not simply succeed, and the slowest of the others.

    A group of a thousand quick steps would otherwise print a thousand rows that say the same
    thing; what a reader looks for is what went wrong and what took long.
    """
    fine = [r for r in rows if r.success]
    if len(fine) <= GROUP_ROWS:
        return rows, []
    slowest = sorted(fine, key=lambda r: -(r.duration or 0.0))[:GROUP_ROWS]
    keep = {id(r) for r in slowest}
    shown = [r for r in rows if not r.success or id(r) in keep]
    return shown, [r for r in fine if id(r) not in keep]


def _group_table(index: int, rows: list[StepResult], width: int) -> Table:
    table = titled_table(f"group {index}")
    table.add_column("step", min_width=width)
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("waited", justify="right", no_wrap=True)
    whys = [_why_cell(r) for r in rows]
    if any(whys):
        # The one column that wraps: why a step did not succeed, or what it waited for.
        table.add_column("why")
    for r, why in zip(rows, whys, strict=True):
        status = Text(f"{status_glyph(r)} {status_words(r)}", style=status_style(r))
        cells = [Text(r.step_id), status, _time_cell(r), _waited_cell(r)]
        table.add_row(*cells, *([why] if any(whys) else []))
    return table


def _time_cell(r: StepResult) -> Text:
    return Text("" if r.duration is None else format_duration(r.duration))


def _notable_wait(r: StepResult) -> float | None:
    wait = r.wait_time
    return wait if wait is not None and wait >= NOTABLE_WAIT else None


def _waited_cell(r: StepResult) -> Text:
    wait = _notable_wait(r)
    return Text("" if wait is None else format_duration(wait))


def _why_cell(r: StepResult) -> Text:
    text = Text()
    if r.reason and not r.success:
        text.append(r.reason)
    if r.wait_reason and _notable_wait(r) is not None:
        if text:
            text.append("; ")
        text.append(f"waited: {r.wait_reason}", style="dim")
    return text


def _statistics(result: RunResult, plan: Plan) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    stats = result.parallel_stats
    groups = stats.total_groups if stats else len(plan.groups)
    mode = f"parallel, cap {result.max_concurrency}" if result.parallel else "sequential"
    grid.add_row("mode", mode)
    grid.add_row("groups", str(groups))
    if stats is not None:
        _parallel_rows(grid, stats, result)
    else:
        ran = sum(r.duration or 0.0 for r in result.step_results.values())
        grid.add_row("step time", format_duration(ran))
    grid.add_row("wall time", format_duration(result.execution_time_s))
    if result.run_dir is not None:
        grid.add_row("logs, report", f"{result.run_dir}/")
    return grid


def _parallel_rows(grid: Table, stats: ParallelStats, result: RunResult) -> None:
    grid.add_row("peak concurrency", f"{stats.max_concurrent_steps} of {result.max_concurrency}")
    grid.add_row(
        "speedup",
        f"{stats.speedup:.2f}× ({format_duration(stats.sequential_time)} of step time)",
    )
    if stats.critical_path:
        chain = " → ".join(stats.critical_path)
        grid.add_row("critical path", f"{chain} ({format_duration(stats.critical_path_time)})")


def _pool_bars(stats: ParallelStats) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(width=20, no_wrap=True)
    grid.add_column()
    for name, pool in stats.resources.items():
        bar = ProgressBar(total=1.0, completed=pool.utilization, width=20)
        grid.add_row(f"pool {name}", bar, _pool_numbers(pool))
    return grid


def _pool_numbers(pool: PoolStats) -> str:
    text = f"mean {pool.utilization:.0%} · peak {pool.peak}/{pool.capacity}"
    if pool.wait_time >= 0.001:
        text += f" · steps waited {format_duration(pool.wait_time)}"
    return text


def _digested(result: RunResult, plan: Plan) -> list[StepResult]:
    """Failed, timed-out and cancelled steps, in plan order (skipped ones never ran)."""
    order = [sid for ids in plan.groups for sid in ids]
    order += [sid for sid in result.step_results if sid not in plan.group_of]
    rows = [result.step_results.get(sid) for sid in order]
    return [r for r in rows if r is not None and r.status in _DIGESTED]


def _digest(r: StepResult) -> Panel:
    body = Table.grid(padding=(0, 2))
    body.add_column(style="bold", no_wrap=True)
    body.add_column()
    if r.command:
        body.add_row("command", Text(r.command))
    if ended_by(r):
        body.add_row("ended by", Text(ended_by(r)))
    if r.reason:
        body.add_row("reason", Text(r.reason))
    if r.duration is not None:
        body.add_row("ran for", format_duration(r.duration))
    lines = tail_lines(r.output_tail)
    if lines:
        label = "last line" if len(lines) == 1 else f"last {len(lines)} lines"
        body.add_row(label, Text("\n".join(lines), style="dim"))
    if r.log_file:
        body.add_row("log", Text(r.log_file))
    title = Text(f"{status_glyph(r)} {r.step_id} {status_words(r)}", style=status_style(r))
    return Panel(body, title=title, title_align="left", box=box.ROUNDED)
