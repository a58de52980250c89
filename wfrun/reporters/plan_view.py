"""What `wfrun plan` prints: a table per group, the pools, the mode and cap, the critical path;
and the same graph as Mermaid or Graphviz text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from wfrun.durations import format_duration
from wfrun.model import Step
from wfrun.output_text import shown
from wfrun.planner import Plan

if TYPE_CHECKING:
    from rich.table import Table


def counted(n: int, noun: str) -> str:
    """`1 step`, `2 steps`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_units(resources: Mapping[str, int]) -> str:
    """`cpu 1, memory 2`: the units a step takes from each pool."""
    return ", ".join(f"{shown(pool)} {units}" for pool, units in resources.items())


def limit_text(step: Step) -> str:
    """A step's own concurrency limit in words (SPEC §3.3)."""
    limit = step.parallel.effective_max_concurrency
    if limit is None:
        return ""
    if limit <= 1:
        return "runs alone"
    return f"at most {limit} running"


def titled_table(title: str) -> Table:
    """A compact table with its title on the left, the look of every table wfrun prints.

    `rich.table` is imported here, not with the module: the summary of a quiet run draws no
    table, and the import (with fractions and decimal) is about 5 ms of its start-up.
    """
    from rich import box
    from rich.table import Table

    return Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )


def id_width(ids: Iterable[str], cap: int = 40) -> int:
    """A width that fits every step id (up to `cap`), so the tables of all groups line up."""
    return min(max((len(i) for i in ids), default=4), cap)


def mode_text(plan: Plan) -> str:
    if not plan.parallel:
        return "sequential (cap 1)"
    return f"parallel, cap {plan.max_concurrency}"


def critical_path_text(plan: Plan) -> str:
    if not plan.critical_path:
        return "—"
    chain = " → ".join(plan.critical_path)
    if plan.durations_known:
        estimate = format_duration(plan.remaining[plan.critical_path[0]])
        return f"{chain} (about {estimate}, from earlier runs)"
    return f"{chain} ({len(plan.critical_path)} steps)"


def plan_view(plan: Plan) -> RenderableType:
    """The text format of `wfrun plan`."""
    wf = plan.workflow
    headline = Text.assemble(
        (shown(wf.name), "bold"),
        f" · {counted(len(wf.steps), 'step')} in {counted(len(plan.groups), 'group')}"
        f" · {mode_text(plan)}",
    )
    by_id = {s.id: s for s in wf.steps}
    width = id_width(by_id)
    parts: list[RenderableType] = [headline]
    parts.append(_GroupTables([[by_id[sid] for sid in ids] for ids in plan.groups], width))
    if wf.parallel.resources:
        parts += [Text(), _pools_table(plan)]
    parts += [Text(), Text.assemble(("critical path: ", "bold"), critical_path_text(plan))]
    return Group(*parts)


_HEADERS = ("step", "pools", "limit", "depends on")
_GAP = "   "  # a cell's right padding, the (blank) divider, the next cell's left padding
_BOLD, _DIM_BOLD, _ITALIC = Style(bold=True), Style(bold=True, dim=True), Style(italic=True)


class _GroupTables:
    """A table per group, each preceded by a blank line, drawn as lines of segments.

    A rich Table measures and lays out every cell, about 3 ms a table: a 20,000-step chain has
    20,000 groups and took 40 s. These tables look the same as `_group_table` draws them; only
    a group whose rows are too wide for the terminal is drawn by a rich Table, which wraps cells.
    """

    def __init__(self, groups: list[list[Step]], id_width: int) -> None:
        self.groups = groups
        self.id_width = id_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        new_line = Segment.line()
        for index, steps in enumerate(self.groups):
            yield new_line
            rows = [_row_cells(step) for step in steps]
            widths = [
                max([_width(_HEADERS[c]), *(_width(row[c]) for row in rows)])
                for c in range(len(_HEADERS))
            ]
            widths[0] = max(widths[0], self.id_width)
            total = sum(widths) + len(_GAP) * (len(widths) - 1)
            if total > options.max_width:
                yield from console.render(_group_table(index, steps, self.id_width), options)
                continue
            title = f"group {index}"
            yield Segment(_padded(title, total) + "\n", _ITALIC)
            header = _GAP.join(_padded(h, w) for h, w in zip(_HEADERS, widths, strict=True))
            yield Segment(header + "\n", _BOLD)
            yield Segment("─" * total + "\n")
            for step, row in zip(steps, rows, strict=True):
                yield Segment(shown(step.id), _BOLD)
                if step.name != step.id:
                    yield Segment(f" ({shown(step.name)})", _DIM_BOLD)
                rest = "".join(_GAP + _padded(row[c], widths[c]) for c in range(1, len(_HEADERS)))
                yield Segment(" " * (widths[0] - _width(row[0])) + rest + "\n")


def _width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _padded(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _row_cells(step: Step) -> tuple[str, str, str, str]:
    label = shown(step.id) if step.name == step.id else f"{shown(step.id)} ({shown(step.name)})"
    return (
        label,
        format_units(step.parallel.resources),
        limit_text(step),
        ", ".join(step.depends_on),
    )


def _group_table(index: int, steps: list[Step], width: int) -> Table:
    table = titled_table(f"group {index}")
    table.add_column("step", style="bold", min_width=width)
    table.add_column("pools")
    table.add_column("limit")
    table.add_column("depends on")
    for step in steps:
        label = Text(shown(step.id))
        if step.name != step.id:
            label.append(f" ({shown(step.name)})", style="dim")
        table.add_row(
            label,
            Text(format_units(step.parallel.resources)),
            Text(limit_text(step)),
            Text(", ".join(step.depends_on)),
        )
    return table


def _pools_table(plan: Plan) -> Table:
    users: dict[str, int] = dict.fromkeys(plan.workflow.parallel.resources, 0)
    for step in plan.steps:
        for pool in step.parallel.resources:
            users[pool] = users.get(pool, 0) + 1
    table = titled_table("pools")
    table.add_column("pool", style="bold")
    table.add_column("capacity", justify="right")
    table.add_column("steps using it", justify="right")
    for pool, capacity in plan.workflow.parallel.resources.items():
        table.add_row(Text(shown(pool)), str(capacity), str(users[pool]))
    return table


# -- graph formats ---------------------------------------------------------------------------


def _mermaid_label(text: str) -> str:
    # Mermaid's entity codes are the only escapes it reads inside a quoted label.
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return '"' + text.replace("\n", " ") + '"'


def plan_mermaid(plan: Plan) -> str:
    """A `flowchart TD` with a subgraph per group.

    Nodes get generated ids (s0, s1, ...) with the step id as a quoted label, because a step id
    such as `end` or `graph` would otherwise be read as a Mermaid keyword.
    """
    node = {s.id: f"s{i}" for i, s in enumerate(plan.steps)}
    label = {s.id: s.id if s.name == s.id else f"{s.id}: {s.name}" for s in plan.steps}
    lines = ["flowchart TD"]
    for index, ids in enumerate(plan.groups):
        lines.append(f"  subgraph g{index}[{_mermaid_label(f'group {index}')}]")
        lines += [f"    {node[sid]}[{_mermaid_label(label[sid])}]" for sid in ids]
        lines.append("  end")
    for step in plan.steps:
        lines += [f"  {node[dep]} --> {node[step.id]}" for dep in step.depends_on]
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_label(step: Step) -> str:
    return "" if step.name == step.id else f" [label={_dot_id(f'{step.id}: {step.name}')}]"


def plan_dot(plan: Plan) -> str:
    """A Graphviz digraph with a cluster per group (`dot -Tsvg` draws it)."""
    by_id = {s.id: s for s in plan.steps}
    lines = [f"digraph {_dot_id(plan.workflow.name)} {{", "  rankdir=TB;", "  node [shape=box];"]
    for index, ids in enumerate(plan.groups):
        lines.append(f"  subgraph {_dot_id(f'cluster_{index}')} {{")
        lines.append(f"    label={_dot_id(f'group {index}')};")
        lines += [f"    {_dot_id(sid)}{_dot_label(by_id[sid])};" for sid in ids]
        lines.append("  }")
    for step in plan.steps:
        lines += [f"  {_dot_id(dep)} -> {_dot_id(step.id)};" for dep in step.depends_on]
    lines.append("}")
    return "\n".join(lines) + "\n"
