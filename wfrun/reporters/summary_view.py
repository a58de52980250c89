"""The end-of-run summary: a table per group, the statistics, pool utilization, failure digests.

A large run gets the same on one screen: the slowest steps instead of a table per group, a
digest for at most DIGESTS steps that ran and failed, and one counted line per reason for the
steps that never started; every step's row is in report.json.
"""

from __future__ import annotations

import re
import signal
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.text import Text

from wfrun.bottleneck import Bottleneck
from wfrun.durations import format_duration
from wfrun.output_text import printable, shown
from wfrun.planner import Plan
from wfrun.reporters.key_values import KeyValues
from wfrun.reporters.plan_view import counted, id_width, titled_table
from wfrun.results import ParallelStats, PoolStats, RunResult, RunStatus, StepResult, StepStatus

if TYPE_CHECKING:
    from rich.panel import Panel
    from rich.table import Table  # imported where a table is drawn: a quiet run draws none

DIGEST_LINES = 10
NOTABLE_WAIT = 0.01  # shorter waits are the dispatcher's own latency, not worth a column
MAX_LINE = 300  # a minified bundle on one line would otherwise fill the screen
GROUP_ROWS = 15  # succeeded steps listed per group; the rest are counted
TABLE_STEPS = 30  # up to this many steps, a table per group; beyond, the slowest steps
SLOWEST = 10  # rows of the slowest-steps table of a large run
DIGESTS = 10  # failure digests shown; further failures are named on one line
NOT_STARTED_LINES = 5  # reasons shown for steps that never started; the rest are summed
PATH_STEPS = 8  # a longer critical path shows its ends and counts the middle

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
# The dispatcher's reason for a step skipped because of a dependency.
_DEPENDENCY = re.compile(
    r"dependency '(?P<step>.+)' (?P<how>failed|timed out|was cancelled|was skipped)"
)


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
    """Everything a user needs after the run, on one screen however large the run.

    A run of at most TABLE_STEPS steps gets a table per group; a larger one a table of its
    slowest steps. `tables=False` (the quiet mode) leaves out both.
    """
    parts: list[RenderableType] = [_headline(result)]
    if result.error:
        parts.append(Text(shown(result.error), style="red"))
    by_group = tables and len(result.step_results) <= TABLE_STEPS
    if by_group:
        parts += _group_tables(result, plan)
    elif tables:
        parts += [Text(), _Narrowable(_slowest_table(result)), Text()]
    else:
        parts.append(Text())
    parts.append(_statistics(result, plan, full_table_elsewhere=not by_group))
    if result.parallel_stats and result.parallel_stats.resources:
        parts.append(_pool_bars(result.parallel_stats))
    parts += _failures(result, plan)
    if not by_group:
        parts += _not_started(result)
    return Group(*parts)


def _headline(result: RunResult) -> Text:
    glyph, style = _RUN_STYLE[result.status]
    text = Text.assemble(
        (f"{glyph} {shown(result.workflow_name)} ", "bold"),
        (result.status.value.replace("_", " "), f"bold {style}"),
        f" in {format_duration(result.execution_time_s)}",
    )
    tally: dict[str, int] = {}
    for r in result.step_results.values():
        tally[status_words(r)] = tally.get(status_words(r), 0) + 1
    parts = ", ".join(f"{n} {words}" for words, n in tally.items())
    text.append(f" · {counted(len(result.step_results), 'step')}: {parts}", style="dim")
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
        parts += [Text(), _Narrowable(table)]
    return [*parts, Text()]


class _Narrowable:
    """A summary table whose step column gives way on a narrow terminal: its ids fold onto more
    lines, where rich would otherwise drop the status, time and reason columns whole."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        step = self.table.columns[0]
        step.min_width = min(step.min_width or 0, max(8, options.max_width // 3))
        step.overflow = "fold"
        yield self.table


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
    cells: list[list[RenderableType]] = [
        [Text(shown(r.step_id)), _status_cell(r), _time_cell(r)] for r in rows
    ]
    if any(r.worker is not None for r in rows):  # --executor dask: where each step ran
        table.add_column("worker", no_wrap=True)
        for r, row in zip(rows, cells, strict=True):
            row.append(Text(shown(r.worker or "")))
    _add_rows(table, rows, cells)
    return table


def _status_cell(r: StepResult) -> Text:
    return Text(f"{status_glyph(r)} {status_words(r)}", style=status_style(r))


def _add_rows(table: Table, rows: list[StepResult], cells: list[list[RenderableType]]) -> None:
    """The rows, with a `waited` column when some step waited for a reason, and a `why`
    column (the one that wraps) when some step did not succeed or waited."""
    waited = any(_notable_wait(r) is not None for r in rows)
    whys = [_why_cell(r) for r in rows]
    if waited:
        table.add_column("waited", justify="right", no_wrap=True)
    if any(whys):
        table.add_column("why")
    for r, why, row in zip(rows, whys, cells, strict=True):
        table.add_row(*row, *([_waited_cell(r)] if waited else []), *([why] if any(whys) else []))


def _slowest_table(result: RunResult) -> Table:
    ran = [r for r in result.step_results.values() if r.duration is not None]
    slowest = sorted(ran, key=lambda r: -(r.duration or 0.0))[:SLOWEST]
    table = titled_table(f"slowest {counted(len(slowest), 'step')} of {len(ran)} that ran")
    table.add_column("step", min_width=id_width(r.step_id for r in slowest))
    table.add_column("group", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    cells: list[list[RenderableType]] = [
        [Text(shown(r.step_id)), str(r.parallel_group), _status_cell(r), _time_cell(r)]
        for r in slowest
    ]
    _add_rows(table, slowest, cells)
    return table


def _time_cell(r: StepResult) -> Text:
    if r.reused:  # it did not run: its time is the earlier run's
        return Text("reused", style="dim")
    return Text("" if r.duration is None else format_duration(r.duration))


def _notable_wait(r: StepResult) -> float | None:
    """A wait worth showing: long enough, and with a reason. A step that waited for nothing
    (the dispatcher's own latency, or a burst of ready steps being started) did not wait."""
    wait = r.wait_time
    if wait is None or wait < NOTABLE_WAIT or not r.wait_reason:
        return None
    return wait


def _waited_cell(r: StepResult) -> Text:
    wait = _notable_wait(r)
    return Text("" if wait is None else format_duration(wait))


def _why_cell(r: StepResult) -> Text:
    text = Text()
    if r.reason and not r.success:
        text.append(shown(r.reason))
    if r.wait_reason and _notable_wait(r) is not None:
        if text:
            text.append("; ")
        text.append(f"waited: {shown(r.wait_reason)}", style="dim")
    return text


def _statistics(result: RunResult, plan: Plan, *, full_table_elsewhere: bool) -> KeyValues:
    rows: list[tuple[str, RenderableType]] = []
    stats = result.parallel_stats
    groups = stats.total_groups if stats else len(plan.groups)
    mode = f"parallel, cap {result.max_concurrency}" if result.parallel else "sequential"
    rows += [("mode", mode), ("groups", str(groups))]
    if stats is not None:
        rows += _parallel_rows(stats, result)
    else:
        ran = sum(r.duration or 0.0 for r in result.step_results.values())
        rows.append(("step time", format_duration(ran)))
    rows.append(("wall time", format_duration(result.execution_time_s)))
    if result.run_dir is not None:
        rows.append(("logs, report", f"{shown(result.run_dir)}/"))
        if full_table_elsewhere:
            rows.append(("every step", f"{shown(result.run_dir)}/report.json"))
    return KeyValues(rows)


def _parallel_rows(stats: ParallelStats, result: RunResult) -> list[tuple[str, RenderableType]]:
    rows: list[tuple[str, RenderableType]] = [
        ("peak concurrency", f"{stats.max_concurrent_steps} of {result.max_concurrency}"),
        (
            "speedup",
            f"{stats.speedup:.2f}× ({format_duration(stats.sequential_time)} of step time)",
        ),
    ]
    if stats.critical_path:
        rows.append(("critical path", _path_text(stats)))
    if stats.bottleneck is not None:
        rows.append(("bottleneck", bottleneck_text(stats.bottleneck)))
    return rows


def bottleneck_text(found: Bottleneck) -> str:
    """`pool cpu: held up the run 3.2s (4 steps waited)`."""
    steps = counted(len(found.steps), "step")
    return f"{shown(str(found))}: held up the run {format_duration(found.wait)} ({steps} waited)"


def _path_text(stats: ParallelStats) -> str:
    """`a → b → c (2.0s)`; a long chain keeps its ends: `a → b → c → … → x → y → z (120 steps,
    7.2s)`."""
    path = [shown(sid) for sid in stats.critical_path]
    time = format_duration(stats.critical_path_time)
    if len(path) <= PATH_STEPS:
        return f"{' → '.join(path)} ({time})"
    ends = [*path[:3], "…", *path[-3:]]
    return f"{' → '.join(ends)} ({len(path)} steps, {time})"


def _pool_bars(stats: ParallelStats) -> Table:
    from rich.table import Table

    from wfrun.reporters.live_view import Bar  # the quiet and plain modes need it for pools only

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(width=20, no_wrap=True)
    grid.add_column()
    for name, pool in stats.resources.items():
        bar = Bar(round(pool.utilization * 1000), 1000, 20, style="magenta")
        grid.add_row(f"pool {shown(name)}", bar, _pool_numbers(pool))
    return grid


def _pool_numbers(pool: PoolStats) -> str:
    text = f"mean {pool.utilization:.0%} · peak {pool.peak}/{pool.capacity}"
    if pool.wait_time >= 0.001:
        text += f" · steps waited {format_duration(pool.wait_time)}"
    return text


def _digested(result: RunResult, plan: Plan) -> list[StepResult]:
    """Steps that ran and failed, timed out or were cancelled while running, in plan order.

    A step that never started has nothing to digest (no command ran, no output, no log).
    """
    order = [sid for ids in plan.groups for sid in ids]
    order += [sid for sid in result.step_results if sid not in plan.group_of]
    rows = [result.step_results.get(sid) for sid in order]
    ran = [r for r in rows if r is not None and r.status in _DIGESTED and r.start_time is not None]
    # What failed the run first, then what was stopped, then what was allowed to fail: the
    # digests shown are the first DIGESTS.
    return sorted(ran, key=lambda r: 2 if r.allowed_failure else r.status is StepStatus.CANCELLED)


def _failures(result: RunResult, plan: Plan) -> list[RenderableType]:
    """A digest per step that ran and did not succeed, the first DIGESTS of them; the others
    are named on one line (their digests are in the report)."""
    digested = _digested(result, plan)
    parts: list[RenderableType] = [_digest(r) for r in digested[:DIGESTS]]
    rest = digested[DIGESTS:]
    if rest:
        names = ", ".join(shown(r.step_id) for r in rest[:10]) + (", …" if len(rest) > 10 else "")
        more = f"… and {counted(len(rest), 'more step')} that did not succeed: {names}"
        parts.append(Text(more, style="red"))
    return parts


def _not_started(result: RunResult) -> list[RenderableType]:
    """One counted line per reason for the steps that never started: `178 steps not started:
    run interrupted`, `12 steps skipped: dependency 'build' failed`, and for the steps skipped
    because one of several dependencies failed, one line that names them: `9 steps skipped: a
    dependency failed (test-1, test-2, …)`."""
    tally: dict[tuple[StepStatus, str], int] = {}
    named: dict[tuple[StepStatus, str], list[str]] = {}  # dependencies, per the way they ended
    for r in result.step_results.values():
        if r.start_time is None and not r.success:
            reason = r.reason or ""
            match = _DEPENDENCY.fullmatch(reason)
            if match is not None:
                reason = f"a dependency {match['how']}"
                names = named.setdefault((r.status, reason), [])
                if match["step"] not in names:
                    names.append(match["step"])
            key = (r.status, reason)
            tally[key] = tally.get(key, 0) + 1
    for (status, reason), names in named.items():
        if len(names) == 1:  # one dependency: its name says it better
            count = tally.pop((status, reason))
            tally[(status, f"dependency '{names[0]}' {reason.removeprefix('a dependency ')}")] = (
                count
            )
        else:
            shown_names = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
            tally[(status, f"{reason} ({shown_names})")] = tally.pop((status, reason))
    ranked = sorted(tally.items(), key=lambda item: -item[1])
    lines: list[RenderableType] = []
    for (status, reason), n in ranked[:NOT_STARTED_LINES]:
        if reason.startswith("not started"):  # the core's words already say it
            text = f"{counted(n, 'step')} {shown(reason)}"
        else:
            text = f"{counted(n, 'step')} {_STATUS[status][1]}"
            text += f": {shown(reason)}" if reason else ""
        lines.append(Text(text, style=_STATUS[status][2]))
    rest = sum(n for _, n in ranked[NOT_STARTED_LINES:])
    if rest:
        lines.append(Text(f"{counted(rest, 'more step')} did not start, for other reasons"))
    return lines


def _digest(r: StepResult) -> Panel:
    from rich import box
    from rich.panel import Panel  # a run without failures draws none
    from rich.table import Table

    body = Table.grid(padding=(0, 2))
    body.add_column(style="bold", no_wrap=True)
    body.add_column(overflow="fold")  # a path cut short with … could not be opened
    if r.command:
        body.add_row("command", Text(shown(r.command)))
    if ended_by(r):
        body.add_row("ended by", Text(ended_by(r)))
    if r.reason and r.reason != f"exited with code {r.exit_code}":  # `ended by` says that
        body.add_row("reason", Text(shown(r.reason)))
    if r.duration is not None:
        body.add_row("ran for", format_duration(r.duration))
    if r.worker is not None:
        body.add_row("worker", Text(shown(r.worker)))
    lines = tail_lines(r.output_tail)
    if lines:
        label = "last line" if len(lines) == 1 else f"last {len(lines)} lines"
        body.add_row(label, Text("\n".join(lines), style="dim"))
    if r.log_file:
        body.add_row("log", Text(shown(r.log_file)))
    title = Text(f"{status_glyph(r)} {shown(r.step_id)} {status_words(r)}", style=status_style(r))
    return Panel(body, title=title, title_align="left", box=box.ROUNDED)
