"""`plan --simulate` for people (a text timeline and advice) and for tools (JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wfrun.durations import format_duration
from wfrun.output_text import shown
from wfrun.reporters.plan_view import counted
from wfrun.reporters.summary_view import bottleneck_text
from wfrun.results import ms
from wfrun.simulate import Advice, DurationSource, Simulation
from wfrun.waits import WaitKind, WaitReason

TIMELINE_ROWS = 40  # steps drawn; a larger workflow shows the ones that end last
BAR = 40  # characters of the timeline's time axis

_SOURCE_WORDS = {
    DurationSource.HISTORY: "from the newest earlier run",
    DurationSource.ESTIMATE: "from estimate:",
    DurationSource.DEFAULT: "assumed 1s (no earlier run, no estimate:)",
}


def simulation_view(simulation: Simulation, advice: Advice) -> RenderableType:
    """The predicted makespan, a timeline, each pool's saturation and wait, and the advice."""
    plan = simulation.plan
    mode = f"parallel, cap {plan.max_concurrency}" if plan.parallel else "sequential"
    head = Text.assemble(
        ("predicted makespan ", "bold"),
        (format_duration(simulation.makespan), "bold cyan"),
        f" · {shown(plan.workflow.name)} · {counted(len(plan.steps), 'step')} · {mode}",
    )
    return Group(
        head,
        Text(_sources(simulation), style="dim"),
        Text(),
        _timeline(simulation),
        Text(),
        _limits(simulation),
        Text(),
        _advice(simulation, advice),
    )


def _sources(simulation: Simulation) -> str:
    tally: dict[DurationSource, int] = {}
    for source in simulation.sources.values():
        tally[source] = tally.get(source, 0) + 1
    parts = [f"{counted(n, 'step')} {_SOURCE_WORDS[s]}" for s, n in tally.items()]
    return "durations: " + "; ".join(parts)


def _timeline(simulation: Simulation) -> Table:
    steps = list(simulation.steps)
    hidden = 0
    if len(steps) > TIMELINE_ROWS:
        hidden = len(steps) - TIMELINE_ROWS
        last = sorted(steps, key=lambda s: -s.end)[:TIMELINE_ROWS]
        keep = {s.step_id for s in last}
        steps = [s for s in steps if s.step_id in keep]
    span = simulation.makespan or 1.0
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, style="bold", max_width=24)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, justify="right")
    table.add_column(style="dim", ratio=1, overflow="fold")
    for s in steps:
        cells = [" "] * BAR
        ready, start = _col(s.ready, span), _col(s.start, span)
        end = max(start + 1, _col(s.end, span))
        for i in range(ready, start):
            cells[i] = "·"
        for i in range(start, min(end, BAR)):
            cells[i] = "█"
        bar = Text("│")
        bar.append("".join(cells), style="cyan")
        bar.append("│")
        when = f"{format_duration(s.start)}–{format_duration(s.end)}"
        why = (
            f"waited {format_duration(s.waited)}: {_short(s.wait)}"
            if s.wait and s.waited > 0
            else ""
        )
        table.add_row(shown(s.step_id), bar, when, shown(why))
    if hidden:
        more = f"… {counted(hidden, 'more step')} (--format json lists every step)"
        table.add_row(Text(more, style="dim"), "", "", "")
    return table


def _short(wait: WaitReason) -> str:
    """The reason without the holders: a timeline row has no room for a list of steps."""
    if wait.kind is WaitKind.POOL:
        return f"pool {wait.pool}"
    if wait.kind is WaitKind.GLOBAL_CAP:
        return "the cap"
    return str(wait)


def _col(at: float, span: float) -> int:
    return min(BAR, round(BAR * at / span))


def _limits(simulation: Simulation) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    plan = simulation.plan
    grid.add_row(
        f"cap {plan.max_concurrency}",
        f"full {simulation.cap_saturation:.0%} of the time · "
        f"steps waited {format_duration(simulation.cap_wait)} for it",
    )
    for name, pool in simulation.pools.items():
        grid.add_row(
            f"pool {shown(name)} ({pool.capacity})",
            f"full {pool.saturation:.0%} of the time · "
            f"steps waited {format_duration(pool.wait_time)} for it",
        )
    if simulation.bottleneck is not None:
        grid.add_row("bottleneck", bottleneck_text(simulation.bottleneck))
    return grid


def _advice(simulation: Simulation, advice: Advice) -> Text:
    if advice.change is None:
        tried = counted(len(advice.tried), "change")
        return Text.assemble(
            ("advice: ", "bold"),
            f"no single change of a pool's capacity or of the cap shortens the predicted "
            f"makespan ({tried} simulated)",
        )
    return Text.assemble(
        ("advice: ", "bold"),
        (shown(str(advice.change)), "bold green"),
        f" shortens the predicted makespan by {format_duration(advice.saved)} "
        f"({format_duration(simulation.makespan)} → {format_duration(advice.makespan)})",
    )


def simulation_json(simulation: Simulation, advice: Advice) -> dict[str, Any]:
    """The simulation for tools; times in whole milliseconds, as in the run report."""
    plan = simulation.plan
    return {
        "workflow": plan.workflow.name,
        "parallel": plan.parallel,
        "maxConcurrency": plan.max_concurrency,
        "makespan": ms(simulation.makespan),
        "steps": {
            s.step_id: {
                "readyTime": ms(s.ready),
                "startTime": ms(s.start),
                "endTime": ms(s.end),
                "duration": ms(simulation.durations[s.step_id]),
                "durationFrom": simulation.sources[s.step_id].value,
                "waitTime": ms(s.waited),
                "waitReason": str(s.wait) if s.wait else None,
            }
            for s in simulation.steps
        },
        "cap": {
            "capacity": plan.max_concurrency,
            "saturation": round(simulation.cap_saturation, 4),
            "waitTime": ms(simulation.cap_wait),
        },
        "resources": {
            name: {
                "capacity": pool.capacity,
                "saturation": round(pool.saturation, 4),
                "waitTime": ms(pool.wait_time),
            }
            for name, pool in simulation.pools.items()
        },
        "bottleneck": simulation.bottleneck.to_dict() if simulation.bottleneck else None,
        "advice": {
            "change": None
            if advice.change is None
            else {
                "pool": advice.change.pool,
                "from": advice.change.before,
                "to": advice.change.after,
            },
            "makespan": ms(advice.makespan),
            "saved": ms(advice.saved),
            "tried": [
                {"pool": c.pool, "from": c.before, "to": c.after, "makespan": ms(t)}
                for c, t in advice.tried
            ],
        },
    }
