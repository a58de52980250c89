"""One self-contained HTML page of a run, from its report: a timeline and the pools' use.

Everything is inline (CSS and SVG, no script, no font, no URL), so the page opens offline, from
an archive or a CI artifact, and shows the same everywhere. Hover texts are SVG `<title>`s,
which every browser shows without a script. Every string that came from the workflow file or a
step's output goes through `html.escape`.

Rows are compact (ROW pixels) and the time axis stays at the top while the page scrolls, so a run
of a thousand steps is a long page rather than an unreadable one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from wfrun.durations import format_duration

ROW = 14  # pixels per step row
GROUP_ROW = 18  # pixels of a group's heading row
LABEL = 230  # pixels of the step-id column
PLOT = 980  # pixels of the time axis
LANE = 44  # pixels of a pool's lane
MAX_LABEL = 32  # characters of a step id shown before it is cut (the hover has all of it)
MAX_TIP = 600  # characters of a command or reason in a hover text
# Waits shorter than this (ms) are the dispatcher's own latency, as in the summary: not drawn.
NOTABLE_WAIT = 10

COLOURS = {
    "succeeded": "#2f9e50",
    "failed": "#d64545",
    "timed_out": "#e07b00",
    "cancelled": "#a347ba",
    "skipped": "#9a9a9a",
    "allowed": "#d9b400",
}

STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 0 16px 24px; color: #222; }
h1 { font-size: 18px; margin: 14px 0 4px; }
.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; margin: 8px 0; }
.facts dt { font-weight: 600; }
.facts dd { margin: 0; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 12px; height: 10px; margin-right: 4px;
  vertical-align: middle; }
.scroll { overflow-x: auto; }
.axis { position: sticky; top: 0; background: #fff; z-index: 1; border-bottom: 1px solid #ccc; }
svg text { font: 11px system-ui, sans-serif; fill: #222; }
svg .group { font-weight: 600; fill: #555; }
svg .crit { font-weight: 700; }
svg .note { fill: #777; font-style: italic; }
svg .wait { fill: #d4d4d4; stroke: #b0b0b0; stroke-dasharray: 2 2; }
svg rect.crit { stroke: #111; stroke-width: 1.5; }
svg .grid { stroke: #eee; }
svg .cap { stroke: #a33; stroke-dasharray: 3 2; }
svg .use { fill: #8e6ad8; fill-opacity: 0.55; stroke: #6a45b8; }
svg .row:hover { fill: #f3f3ff; }
"""


def html_page(report: Mapping[str, Any]) -> str:
    """The page for one report (the dict of SPEC §5, as `report.json` holds it)."""
    steps: dict[str, Mapping[str, Any]] = dict(report.get("stepResults") or {})
    stats = report.get("parallelStats") or {}
    span = _span(report, steps)
    critical = set(stats.get("criticalPath") or ())
    name = _text(report.get("workflow", {}).get("name") or "workflow")
    body = [
        f"<h1>{name} · {_text(str(report.get('status', '')).replace('_', ' '))}</h1>",
        _facts(report, stats),
        _legend(),
        _axis(span),
        _pools(stats, span),
        _timeline(steps, critical, span),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{name} · wfrun run {_text(str(report.get('runId', '')))}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _tip(lines: Iterable[str]) -> str:
    """An SVG hover text: each line cut to MAX_TIP characters, all of it escaped."""
    cut = [line if len(line) <= MAX_TIP else line[:MAX_TIP] + "…" for line in lines if line]
    return f"<title>{_text(chr(10).join(cut))}</title>"


def _ms(value: object) -> str:
    return format_duration(value / 1000) if isinstance(value, int | float) else "?"


def _span(report: Mapping[str, Any], steps: Mapping[str, Mapping[str, Any]]) -> float:
    """Milliseconds the axis covers: the run, or the last end if a step outlived the clock."""
    ends = [float(t) for r in steps.values() for t in _bars_ends(r)]
    return max([float(report.get("executionTime") or 0), *ends, 1.0])


def _bars_ends(r: Mapping[str, Any]) -> list[float]:
    return [float(end) for _, end, _, _ in step_attempts(r) if end is not None]


def _x(ms: float, span: float) -> float:
    return round(LABEL + PLOT * max(0.0, ms) / span, 2)


def _facts(report: Mapping[str, Any], stats: Mapping[str, Any]) -> str:
    rows = [
        ("run", report.get("runId")),
        ("wall time", _ms(report.get("executionTime"))),
        (
            "mode",
            f"parallel, cap {report.get('maxConcurrency')}"
            if report.get("parallel")
            else "sequential",
        ),
        ("steps", len(report.get("stepResults") or {})),
    ]
    if report.get("error"):
        rows.append(("error", report["error"]))
    path = stats.get("criticalPath") or []
    if path:
        rows.append(("critical path", f"{' → '.join(path)} ({_ms(stats.get('criticalPathTime'))})"))
    found = stats.get("bottleneck")
    if found:
        rows.append(("bottleneck", _bottleneck_words(found)))
    cells = "".join(f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>" for k, v in rows)
    return f"<dl class='facts'>{cells}</dl>"


def _bottleneck_words(found: Mapping[str, Any]) -> str:
    kind, name = found.get("kind"), found.get("name")
    what = {"pool": f"pool {name}", "cap": "the concurrency cap (-j)"}.get(
        str(kind), f"the step limit of {name}"
    )
    steps = len(found.get("steps") or [])
    waited = f"{steps} step{'s' if steps != 1 else ''} waited"
    return f"{what}: held up the run {_ms(found.get('waitTime'))} ({waited})"


def _legend() -> str:
    items = [
        (COLOURS[k], k.replace("_", " ")) for k in ("succeeded", "failed", "timed_out", "cancelled")
    ]
    items.append((COLOURS["allowed"], "failed (allowed)"))
    spans = "".join(f"<span><i style='background:{c}'></i>{_text(w)}</span>" for c, w in items)
    spans += "<span><i style='background:#ccc'></i>waiting (ready, not started)</span>"
    spans += "<span><i style='outline:2px solid #111'></i>critical path</span>"
    return f"<p class='legend'>{spans}</p>"


def _ticks(span: float) -> list[float]:
    step = 1.0
    for candidate in (
        1,
        2,
        5,
        10,
        20,
        50,
        100,
        200,
        500,
        1000,
        2000,
        5000,
        10000,
        15000,
        30000,
        60000,
        120000,
        300000,
        600000,
        1800000,
        3600000,
    ):
        step = float(candidate)
        if span / step <= 10:
            break
    else:
        step = span / 10
    return [i * step for i in range(int(span // step) + 1)]


def _axis(span: float) -> str:
    width = LABEL + PLOT + 10
    parts = [
        f"<div class='axis'><svg width='{width}' height='20' role='img' aria-label='time axis'>"
    ]
    for t in _ticks(span):
        x = _x(t, span)
        parts.append(f"<line x1='{x}' x2='{x}' y1='14' y2='20' stroke='#999'/>")
        parts.append(f"<text x='{x}' y='11' text-anchor='middle'>{_text(_ms(t))}</text>")
    parts.append("</svg></div>")
    return "".join(parts)


def _pools(stats: Mapping[str, Any], span: float) -> str:
    pools: Mapping[str, Mapping[str, Any]] = stats.get("resources") or {}
    if not pools:
        return ""
    width = LABEL + PLOT + 10
    height = LANE * len(pools) + 4
    parts = [
        "<h2 style='font-size:14px'>Pools: units in use</h2>",
        f"<div class='scroll'><svg id='pools' width='{width}' height='{height}' role='img' "
        "aria-label='pool use over time'>",
    ]
    for i, (name, pool) in enumerate(pools.items()):
        parts.append(_lane(str(name), pool, i * LANE + 2, span))
    parts.append("</svg></div>")
    return "".join(parts)


def _lane(name: str, pool: Mapping[str, Any], top: float, span: float) -> str:
    capacity = max(1, int(pool.get("capacity") or 1))
    height = LANE - 8
    bottom = top + height

    def y(units: float) -> float:
        return round(bottom - height * min(units, capacity) / capacity, 2)

    points = [f"{_x(0, span)},{bottom}"]
    level = 0.0
    for at, units in pool.get("usage") or []:
        points.append(f"{_x(at, span)},{y(level)}")
        level = float(units)
        points.append(f"{_x(at, span)},{y(level)}")
    points.append(f"{_x(span, span)},{y(level)}")
    points.append(f"{_x(span, span)},{bottom}")
    tip = _tip(
        [
            f"pool {name}: capacity {capacity}, peak {pool.get('peak')}",
            f"mean use {float(pool.get('utilization') or 0):.0%}",
            f"steps waited for it {_ms(pool.get('waitTime'))} in all",
        ]
    )
    return (
        f"<g class='lane' data-pool='{_text(name)}'>{tip}"
        f"<rect x='0' y='{top}' width='{LABEL + PLOT}' height='{height}' fill='#fafafa'/>"
        f"<text x='4' y='{top + height / 2 + 4}'>pool {_text(_cut(name))} ({capacity})</text>"
        f"<line class='cap' x1='{LABEL}' x2='{LABEL + PLOT}' y1='{y(capacity)}' "
        f"y2='{y(capacity)}'/>"
        f"<polygon class='use' points='{' '.join(points)}'/></g>"
    )


def _cut(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def _timeline(steps: Mapping[str, Mapping[str, Any]], critical: set[str], span: float) -> str:
    groups: dict[int, list[str]] = {}
    for sid, r in steps.items():
        groups.setdefault(int(r.get("parallelGroup") or 0), []).append(sid)
    height = sum(GROUP_ROW + ROW * len(ids) for ids in groups.values()) + 4
    width = LABEL + PLOT + 10
    parts = [
        "<h2 style='font-size:14px'>Steps, by parallel group</h2>",
        f"<div class='scroll'><svg id='timeline' width='{width}' height='{height}' role='img' "
        "aria-label='step timeline'>",
    ]
    top = 0
    for group in sorted(groups):
        ids = groups[group]
        for t in _ticks(span):
            x = _x(t, span)
            bottom = top + GROUP_ROW + ROW * len(ids)
            parts.append(f"<line class='grid' x1='{x}' x2='{x}' y1='{top}' y2='{bottom}'/>")
        label = f"group {group} · {len(ids)} step{'s' if len(ids) != 1 else ''}"
        parts.append(f"<text class='group' x='2' y='{top + 13}'>{_text(label)}</text>")
        top += GROUP_ROW
        for sid in ids:
            parts.append(_row(sid, steps[sid], top, sid in critical, span))
            top += ROW
    parts.append("</svg></div>")
    return "\n".join(parts)


def step_attempts(r: Mapping[str, Any]) -> list[tuple[Any, Any, str, Mapping[str, Any]]]:
    """(start, end, status, attempt) per attempt: `attemptResults` when the report has them,
    else the step's own start and end as its one attempt."""
    listed: Sequence[Mapping[str, Any]] = r.get("attemptResults") or []
    found = [
        (a.get("startTime"), a.get("endTime"), str(a.get("status") or r.get("status")), a)
        for a in listed
        if isinstance(a, Mapping) and a.get("startTime") is not None
    ]
    if found:
        return found
    if r.get("startTime") is None:
        return []
    return [(r.get("startTime"), r.get("endTime"), str(r.get("status")), r)]


def _colour(status: str, r: Mapping[str, Any], last: bool) -> str:
    if last and r.get("allowedFailure") and status == "failed":
        return COLOURS["allowed"]
    return COLOURS.get(status, COLOURS["skipped"])


def _row(sid: str, r: Mapping[str, Any], top: int, critical: bool, span: float) -> str:
    crit = " crit" if critical else ""
    cells = [
        f"<g class='step{crit}' data-step='{_text(sid)}'>",
        f"<rect class='row' x='0' y='{top}' width='{LABEL + PLOT}' height='{ROW}' "
        "fill='transparent'/>",
        f"<text class='{crit.strip() or 'id'}' x='8' y='{top + ROW - 3}'>{_text(_cut(sid))}"
        f"{_tip([sid])}</text>",
    ]
    ready, start = r.get("readyTime"), r.get("startTime")
    if (
        isinstance(ready, int | float)
        and isinstance(start, int | float)
        and start >= ready + NOTABLE_WAIT
    ):
        x0, x1 = _x(ready, span), _x(start, span)
        tip = _tip(
            [
                f"{sid} waited {_ms(start - ready)} before it started",
                f"why: {r.get('waitReason') or 'the dispatcher was starting other steps'}",
            ]
        )
        cells.append(
            f"<rect class='wait' x='{x0}' y='{top + 3}' width='{max(1.0, round(x1 - x0, 2))}' "
            f"height={ROW - 6}>{tip}</rect>"
        )
    attempts = step_attempts(r)
    for n, (begin, end, status, attempt) in enumerate(attempts, 1):
        x0 = _x(float(begin), span)
        x1 = _x(float(end if end is not None else begin), span)
        label = f" (attempt {n} of {len(attempts)})" if len(attempts) > 1 else ""
        cells.append(
            f"<rect class='bar{crit}' data-status='{_text(status)}' x='{x0}' y='{top + 2}' "
            f"width='{max(1.5, round(x1 - x0, 2))}' height='{ROW - 4}' "
            f"fill='{_colour(status, r, n == len(attempts))}'>"
            f"{_tip(_bar_tip(sid, r, attempt, status, label))}</rect>"
        )
    if not attempts:
        why = f"{str(r.get('status', '')).replace('_', ' ')}: {r.get('reason') or 'not started'}"
        if r.get("reused"):
            why = "reused: succeeded in the run this one resumed, not run again"
        cells.append(
            f"<text class='note' x='{LABEL + 4}' y='{top + ROW - 3}'>{_text(why[:200])}</text>"
        )
    cells.append("</g>")
    return "".join(cells)


def _bar_tip(
    sid: str, r: Mapping[str, Any], attempt: Mapping[str, Any], status: str, label: str
) -> list[str]:
    exit_code = attempt.get("exitCode")
    ended = f"exit {exit_code}" if exit_code is not None else ""
    if attempt.get("signal") is not None:
        ended = f"signal {attempt.get('signal')}"
    begin, end = attempt.get("startTime"), attempt.get("endTime")
    took = (
        _ms(end - begin) if isinstance(begin, int | float) and isinstance(end, int | float) else ""
    )
    lines = [
        f"{sid}{label}: {status.replace('_', ' ')}" + (f" after {took}" if took else ""),
        f"command: {r.get('command')}" if r.get("command") else "",
        ended,
        f"reason: {attempt.get('reason')}" if attempt.get("reason") else "",
        f"waited before: {r.get('waitReason')}" if r.get("waitReason") else "",
        f"log: {r.get('logFile')}" if r.get("logFile") else "",
    ]
    return lines
