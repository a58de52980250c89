"""The bottleneck of a run: the pool, the cap or the step limit that held up the run's end most.

The chain examined is the one that set the run's length: from the step that ended last, back
through what each step waited for — a dependency that ended last, or, when it waited for a pool,
the cap or a step limit, the step whose end let it start. A step's wait (ready to start, with the
reason the dispatcher recorded) counts for that reason; overlapping waits for one reason count
once, so the figure is the time the run's end was held back by it, not a sum of steps' waits.
"""

import bisect
import enum
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from wfrun.waits import WaitKind, WaitReason

TOLERANCE = 0.002  # seconds between one step's end and the start it allowed, in a real run
NEGLIGIBLE = 0.001  # a shorter wait is the dispatcher's own latency, not a bottleneck


class BottleneckKind(enum.Enum):
    POOL = "pool"
    CAP = "cap"
    STEP_LIMIT = "stepLimit"


class Span(NamedTuple):
    """When one step that ran became ready, started and ended (seconds), and why it waited."""

    step_id: str
    ready: float | None
    start: float
    end: float
    wait: WaitReason | None


class Bottleneck(NamedTuple):
    """What held up the run's end most, how long, and the steps of the chain that waited for it."""

    kind: BottleneckKind
    name: str | None  # the pool, or the step whose limit applied; None for the cap
    wait: float  # seconds the run's end was held back by it
    steps: tuple[str, ...]  # the steps of the chain that waited for it, earliest first

    def __str__(self) -> str:
        if self.kind is BottleneckKind.POOL:
            return f"pool {self.name}"
        if self.kind is BottleneckKind.CAP:
            return "the concurrency cap (-j)"
        return f"the step limit of {self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "waitTime": round(self.wait * 1000),
            "steps": list(self.steps),
        }


def find_bottleneck(
    spans: Sequence[Span], depends_on: Mapping[str, Sequence[str]]
) -> Bottleneck | None:
    """What the chain that set the run's end waited for longest; None when it never waited."""
    chain = _end_chain(spans, depends_on)
    waits: dict[tuple[BottleneckKind, str | None], list[Span]] = {}
    for span in chain:
        key = _key(span)
        if key is not None:
            waits.setdefault(key, []).append(span)
    best: Bottleneck | None = None
    for (kind, name), waiting in waits.items():
        held = _union([(s.ready or 0.0, s.start) for s in waiting])
        if held >= NEGLIGIBLE and (best is None or held > best.wait):
            ordered = tuple(s.step_id for s in sorted(waiting, key=lambda s: s.start))
            best = Bottleneck(kind, name, held, ordered)
    return best


def _key(span: Span) -> tuple[BottleneckKind, str | None] | None:
    wait = span.wait
    if wait is None or span.ready is None or span.start - span.ready < NEGLIGIBLE:
        return None
    if wait.kind is WaitKind.POOL:
        return (BottleneckKind.POOL, wait.pool)
    if wait.kind is WaitKind.GLOBAL_CAP:
        return (BottleneckKind.CAP, None)
    if wait.kind is WaitKind.RUNS_ALONE:
        return (BottleneckKind.STEP_LIMIT, wait.limit_step or span.step_id)
    return None


def _end_chain(spans: Sequence[Span], depends_on: Mapping[str, Sequence[str]]) -> list[Span]:
    """The steps that set the run's end, last first (O(n log n): found by bisecting ends)."""
    if not spans:
        return []
    by_id = {s.step_id: s for s in spans}
    by_end = sorted(spans, key=lambda s: s.end)
    ends = [s.end for s in by_end]
    chain: list[Span] = []
    seen: set[str] = set()
    current: Span | None = by_end[-1]
    while current is not None and current.step_id not in seen:
        chain.append(current)
        seen.add(current.step_id)
        if _key(current) is not None:
            current = _freed_by(current, by_id, by_end, ends, seen)
        else:
            deps = [by_id[d] for d in depends_on.get(current.step_id, ()) if d in by_id]
            current = max(deps, key=lambda s: s.end, default=None)
    return chain


def _freed_by(
    span: Span, by_id: Mapping[str, Span], by_end: list[Span], ends: list[float], seen: set[str]
) -> Span | None:
    """The step whose end let `span` start: a holder of the pool it waited for if one ended
    in time, else whichever step ended last before it started."""
    assert span.wait is not None
    holders = [by_id[h] for h in span.wait.held_by if h in by_id and h not in seen]
    in_time = [h for h in holders if h.end <= span.start + TOLERANCE]
    if in_time:
        return max(in_time, key=lambda s: s.end)
    i = bisect.bisect_right(ends, span.start + TOLERANCE)
    while i > 0:
        i -= 1
        if by_end[i].step_id not in seen:
            return by_end[i]
    return None


def _union(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total
