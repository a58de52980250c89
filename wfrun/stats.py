"""Run statistics measured from what actually happened: the steps' own start and end times."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from wfrun.bottleneck import Bottleneck, Span, find_bottleneck
from wfrun.planner import Plan
from wfrun.results import ParallelStats, PoolStats, StepResult


def parallel_stats(plan: Plan, results: Mapping[str, StepResult], wall: float) -> ParallelStats:
    """Peak concurrency, time-weighted pool use, the critical path by real times, the speedup."""
    ran = [r for r in results.values() if r.duration is not None]
    sequential = sum(r.duration or 0.0 for r in ran)
    path, path_time = critical_path(plan, results)
    pools = {
        pool: _pool_stats(plan, pool, capacity, results, wall)
        for pool, capacity in plan.workflow.parallel.resources.items()
    }
    return ParallelStats(
        total_groups=len(plan.groups),
        max_concurrent_steps=peak(span for r in ran for span in _spans(r, 1)),
        resource_utilization={p: s.utilization for p, s in pools.items()},
        resources=pools,
        critical_path=path,
        critical_path_time=path_time,
        sequential_time=sequential,
        # Rounded as the report keeps it, so `wfrun report` shows the very same figure.
        speedup=round(sequential / wall, 3) if wall > 0 else 0.0,
        bottleneck=run_bottleneck(plan, results),
    )


def _spans(result: StepResult, weight: int) -> list[tuple[float, float, int]]:
    """When the step held its slot and units: each attempt, since a step waiting to be retried
    holds nothing."""
    if result.attempt_results:
        return [(a.start_time, a.end_time, weight) for a in result.attempt_results]
    return [(result.start_time or 0.0, result.end_time or 0.0, weight)]


def run_bottleneck(plan: Plan, results: Mapping[str, StepResult]) -> Bottleneck | None:
    """The pool, cap or step limit that held up the run's end most (wfrun.bottleneck)."""
    spans = [
        Span(sid, r.ready_time, r.start_time, r.end_time, r.wait)
        for sid, r in results.items()
        if r.start_time is not None and r.end_time is not None
    ]
    return find_bottleneck(spans, {s.id: s.depends_on for s in plan.steps})


def peak(intervals: Iterable[tuple[float, float, int]]) -> int:
    """The largest total weight of intervals open at one instant (an end at t closes before a
    start at t, since a slot freed by one step is what lets the next one start)."""
    edges: list[tuple[float, int]] = []
    for start, end, weight in intervals:
        edges.append((start, weight))
        edges.append((end, -weight))
    edges.sort(key=lambda e: (e[0], e[1]))
    level = best = 0
    for _, delta in edges:
        level += delta
        best = max(best, level)
    return best


def critical_path(plan: Plan, results: Mapping[str, StepResult]) -> tuple[list[str], float]:
    """The dependency chain with the largest total execution time in this run."""
    best: dict[str, tuple[float, str | None]] = {}
    for sid in plan.order:
        own = (results[sid].duration or 0.0) if sid in results else 0.0
        prev = max(plan.step(sid).depends_on, key=lambda d: best[d][0], default=None)
        best[sid] = (own + (best[prev][0] if prev else 0.0), prev)
    if not best:
        return [], 0.0
    tail = max(plan.order, key=lambda s: best[s][0])
    total = best[tail][0]
    path: list[str] = []
    cursor: str | None = tail
    while cursor is not None:
        path.append(cursor)
        cursor = best[cursor][1]
    return list(reversed(path)), total


def _pool_stats(
    plan: Plan, pool: str, capacity: int, results: Mapping[str, StepResult], wall: float
) -> PoolStats:
    holders = [
        (r, plan.step(sid).parallel.resources[pool])
        for sid, r in results.items()
        if pool in plan.step(sid).parallel.resources
    ]
    used = [span for r, units in holders if r.duration for span in _spans(r, units)]
    busy = sum((end - start) * units for start, end, units in used)
    waited = sum(r.wait_time or 0.0 for r, _ in holders if r.waited_on_pool == pool)
    return PoolStats(
        capacity=capacity,
        peak=peak(used),
        busy_time=busy,
        wait_time=waited,
        # Rounded as the report keeps it, so `wfrun report` shows the very same figure.
        utilization=round(min(1.0, busy / (capacity * wall)), 4) if wall > 0 else 0.0,
        usage=usage_steps(used),
    )


def usage_steps(intervals: Iterable[tuple[float, float, int]]) -> tuple[tuple[float, int], ...]:
    """Units in use over time as (time, level from then on), one entry per change; an end at
    t counts before a start at t, as the dispatcher gives back before it hands out again."""
    deltas: dict[float, int] = {}
    for start, end, units in intervals:
        deltas[start] = deltas.get(start, 0) + units
        deltas[end] = deltas.get(end, 0) - units
    level, out = 0, []
    for at in sorted(deltas):
        if deltas[at]:
            level += deltas[at]
            out.append((at, level))
    return tuple(out)
