"""A run as Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and chrome://tracing open.

Steps are complete events ("X") on one track per concurrency slot: a slot is taken by a step's
attempt and freed at its end, so the tracks show how full the cap was and a thousand steps stay
a few rows. Pools are counter events ("C"), one counter per pool; metadata events ("M") name the
process and the tracks. Times are microseconds from the run's start.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping
from typing import Any

from wfrun.reporters.html_page import step_attempts

STEPS_PID = 1
POOLS_PID = 2


def trace_events(report: Mapping[str, Any]) -> dict[str, Any]:
    """The trace document (JSON object format) of one report."""
    name = str((report.get("workflow") or {}).get("name") or "workflow")
    events: list[dict[str, Any]] = [
        _meta("process_name", STEPS_PID, 0, {"name": f"{name} · steps"}),
        _meta("process_sort_index", STEPS_PID, 0, {"sort_index": 0}),
    ]
    spans = []
    for sid, r in (report.get("stepResults") or {}).items():
        attempts = step_attempts(r)
        for n, (start, end, status, attempt) in enumerate(attempts, 1):
            end = start if end is None else end
            spans.append((float(start), float(end), n, len(attempts), str(sid), status, r, attempt))
    spans.sort(key=lambda s: (s[0], s[1]))
    free: list[int] = []
    busy: list[tuple[float, int]] = []  # (end, slot)
    slots = 0
    for start, end, n, of, sid, status, r, attempt in spans:
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            slot = heapq.heappop(free)
        else:
            slots += 1
            slot = slots
        heapq.heappush(busy, (end, slot))
        events.append(_complete(sid, start, end, slot, status, r, attempt, n, of))
    for slot in range(1, slots + 1):
        events.append(_meta("thread_name", STEPS_PID, slot, {"name": f"slot {slot}"}))
        events.append(_meta("thread_sort_index", STEPS_PID, slot, {"sort_index": slot}))
    events += _pool_counters(report)
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"runId": report.get("runId"), "workflow": name},
    }


def trace_json(report: Mapping[str, Any]) -> str:
    return json.dumps(trace_events(report), ensure_ascii=False, default=str) + "\n"


def _us(ms: float) -> int:
    return round(ms * 1000)


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ph": "M", "ts": 0, "pid": pid, "tid": tid, "args": args}


def _complete(
    sid: str,
    start: float,
    end: float,
    slot: int,
    status: str,
    r: Mapping[str, Any],
    attempt: Mapping[str, Any],
    n: int,
    of: int,
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "status": status,
        "group": r.get("parallelGroup"),
        "exitCode": attempt.get("exitCode"),
        "command": r.get("command"),
        "logFile": r.get("logFile"),
    }
    if r.get("waitReason") and n == 1:
        args["waited"] = f"{r.get('waitTime')} ms: {r.get('waitReason')}"
    if attempt.get("reason"):
        args["reason"] = attempt.get("reason")
    return {
        "name": sid if of == 1 else f"{sid} (attempt {n}/{of})",
        "cat": status,
        "ph": "X",
        "ts": _us(start),
        "dur": max(0, _us(end) - _us(start)),
        "pid": STEPS_PID,
        "tid": slot,
        "args": args,
    }


def _pool_counters(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    pools: Mapping[str, Mapping[str, Any]] = (report.get("parallelStats") or {}).get(
        "resources"
    ) or {}
    if not pools:
        return []
    events = [
        _meta("process_name", POOLS_PID, 0, {"name": "pools"}),
        _meta("process_sort_index", POOLS_PID, 0, {"sort_index": 1}),
    ]
    for pool, stats in pools.items():
        name = f"pool {pool}"
        events.append(_counter(name, 0.0, 0, int(stats.get("capacity") or 0)))
        for at, units in stats.get("usage") or ():
            events.append(_counter(name, float(at), int(units), int(stats.get("capacity") or 0)))
    return events


def _counter(name: str, at: float, units: int, capacity: int) -> dict[str, Any]:
    return {
        "name": name,
        "ph": "C",
        "ts": _us(at),
        "pid": POOLS_PID,
        "tid": 0,
        "args": {"in use": units, "free": max(0, capacity - units)},
    }
