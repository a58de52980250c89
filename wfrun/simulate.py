"""`plan --simulate`: the real dispatcher on a virtual clock, and advice found by simulating.

No second scheduler: the `Dispatcher` that runs workflows decides every start here too; this
module only plays the clock, ending each started step after its expected duration (the newest
earlier run's time, else the step's `estimate:`, else DEFAULT_DURATION). What-ifs are the same
simulation of a workflow with one pool's capacity or the cap changed.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Mapping
from dataclasses import dataclass

from wfrun.bottleneck import Bottleneck, Span, find_bottleneck
from wfrun.dispatch import Completion, Dispatcher
from wfrun.model import Workflow
from wfrun.planner import Plan, make_plan
from wfrun.stats import peak, usage_steps
from wfrun.waits import WaitKind, WaitReason

DEFAULT_DURATION = 1.0  # seconds, for a step with neither an earlier time nor an estimate
WORTH_IT = 0.005  # a change must win more than this share of the makespan to be advised
TIE = 0.02  # makespans this close to the shortest tie: the smallest change of them is advised


class DurationSource(enum.Enum):
    """Where a simulated step's duration came from."""

    HISTORY = "history"  # the newest earlier run of the file that ran the step
    ESTIMATE = "estimate"  # the step's `estimate:`
    DEFAULT = "default"  # neither: DEFAULT_DURATION


@dataclass(frozen=True, slots=True)
class SimulatedStep:
    step_id: str
    ready: float
    start: float
    end: float
    wait: WaitReason | None  # why it waited once ready, as the dispatcher decided it

    @property
    def waited(self) -> float:
        return self.start - self.ready


@dataclass(frozen=True, slots=True)
class PoolForecast:
    capacity: int
    saturation: float  # share of the makespan the pool was full, 0..1
    wait_time: float  # step-seconds spent waiting for this pool
    usage: tuple[tuple[float, int], ...]  # (time, units in use from then on)


@dataclass(frozen=True, slots=True)
class Change:
    """One what-if: a pool's capacity (`pool` set) or the global cap (`pool` None)."""

    pool: str | None
    before: int
    after: int

    def __str__(self) -> str:
        what = f"pool {self.pool}" if self.pool is not None else "the cap (-j)"
        return f"{what} {self.before} → {self.after}"


@dataclass(frozen=True, slots=True)
class Advice:
    change: Change | None  # None: no single change tried shortens the makespan
    makespan: float  # the predicted makespan with the change (or unchanged)
    saved: float  # seconds shorter than without it
    tried: tuple[tuple[Change, float], ...]  # every change simulated, with its makespan


@dataclass(frozen=True, slots=True)
class Simulation:
    plan: Plan
    makespan: float
    steps: tuple[SimulatedStep, ...]  # in start order
    pools: Mapping[str, PoolForecast]
    cap_saturation: float  # share of the makespan the global cap was reached
    cap_wait: float  # step-seconds spent waiting for the cap
    durations: Mapping[str, float]
    sources: Mapping[str, DurationSource]
    bottleneck: Bottleneck | None  # what would hold up the run most, as for a real run


def step_durations(
    workflow: Workflow, earlier: Mapping[str, float] | None
) -> tuple[dict[str, float], dict[str, DurationSource]]:
    """Each step's expected seconds, and where that figure comes from."""
    durations: dict[str, float] = {}
    sources: dict[str, DurationSource] = {}
    for step in workflow.steps:
        if earlier and step.id in earlier:
            durations[step.id], sources[step.id] = earlier[step.id], DurationSource.HISTORY
        elif step.estimate is not None:
            durations[step.id], sources[step.id] = step.estimate, DurationSource.ESTIMATE
        else:
            durations[step.id], sources[step.id] = DEFAULT_DURATION, DurationSource.DEFAULT
    return durations, sources


def simulate(
    workflow: Workflow,
    durations: Mapping[str, float],
    *,
    parallel: bool | None = None,
    max_concurrency: int | None = None,
    sources: Mapping[str, DurationSource] | None = None,
) -> Simulation:
    """One run of the workflow on a virtual clock, every step succeeding after its duration.

    The plan is made with the same durations, so ready steps are ordered as a real run that
    read them from its previous run would order them.
    """
    plan = make_plan(
        workflow, parallel=parallel, max_concurrency=max_concurrency, durations=durations
    )
    dispatcher, ready, start = _play(plan, durations)
    steps = tuple(
        SimulatedStep(sid, ready[sid], at, at + durations[sid], dispatcher.waited_for(sid))
        for sid, at in sorted(start.items(), key=lambda item: (item[1], plan.step(item[0]).index))
    )
    makespan = max((s.end for s in steps), default=0.0)
    return Simulation(
        plan=plan,
        makespan=makespan,
        steps=steps,
        pools=_pools(plan, steps, makespan),
        cap_saturation=_full_share([(s.start, s.end, 1) for s in steps], plan.max_concurrency),
        cap_wait=_waited(steps, WaitKind.GLOBAL_CAP),
        durations=dict(durations),
        sources=dict(sources or {}),
        # A sequential run names none (its report has no parallelStats): one at a time is the
        # mode chosen, not something steps wait on.
        bottleneck=find_bottleneck(
            [Span(s.step_id, s.ready, s.start, s.end, s.wait) for s in steps],
            {s.id: s.depends_on for s in plan.steps},
        )
        if plan.parallel
        else None,
    )


def _play(
    plan: Plan, durations: Mapping[str, float]
) -> tuple[Dispatcher, dict[str, float], dict[str, float]]:
    """Drive the dispatcher on the virtual clock: when each step became ready and started."""
    dispatcher = Dispatcher(plan)
    ready = dict.fromkeys(dispatcher.initial_ready(), 0.0)
    start: dict[str, float] = {}
    ends: list[tuple[float, int, str]] = []
    now = 0.0
    while dispatcher.is_active():
        for step_id in dispatcher.startable():
            start[step_id] = now
            heapq.heappush(ends, (now + durations[step_id], plan.step(step_id).index, step_id))
        if not ends:
            break  # nothing runs and nothing may start: cannot happen with valid limits
        now = ends[0][0]
        while ends and ends[0][0] <= now:  # every step ending now, before the next scan
            _, _, step_id = heapq.heappop(ends)
            for newly in dispatcher.finish(step_id, Completion.SUCCEEDED).ready:
                ready[newly] = now
    return dispatcher, ready, start


def _makespan(plan: Plan, durations: Mapping[str, float]) -> float:
    """Only the predicted makespan: what a what-if needs."""
    _, _, start = _play(plan, durations)
    return max((at + durations[sid] for sid, at in start.items()), default=0.0)


def advise(simulation: Simulation) -> Advice:
    """The single change of one pool's capacity or of the cap that shortens the predicted
    makespan most, found by simulating each; among changes within TIE of the best, the
    smallest."""
    base = simulation.plan
    workflow = base.workflow
    tried: list[tuple[Change, float]] = []
    for change in _changes(simulation):
        changed_workflow, cap = workflow, base.max_concurrency
        if change.pool is None:
            cap = change.after
        else:
            resources = {**workflow.parallel.resources, change.pool: change.after}
            changed_workflow = workflow._replace(
                parallel=workflow.parallel._replace(resources=resources)
            )
        # The graph, the priorities and the steps are the same: only the limits change.
        what_if = base._replace(workflow=changed_workflow, max_concurrency=cap)
        makespan = _makespan(what_if, simulation.durations)
        tried.append((change, makespan))
    shortest = min((makespan for _, makespan in tried), default=None)
    # Makespans within TIE of the shortest are a tie: a bigger change for a few more
    # milliseconds is not advice anyone wants (2 → 4 GPUs to save 16 ms more than 2 → 3).
    near = [t for t in tried if shortest is not None and t[1] <= shortest * (1 + TIE)]
    best = min(near, key=lambda t: (abs(t[0].after - t[0].before), t[1]), default=None)
    threshold = simulation.makespan * (1 - WORTH_IT)
    if best is None or best[1] >= threshold:
        return Advice(None, simulation.makespan, 0.0, tuple(tried))
    return Advice(best[0], best[1], simulation.makespan - best[1], tuple(tried))


def _changes(simulation: Simulation) -> list[Change]:
    """+1, +2 and doubled for each pool and the cap, and -1 where that stays valid."""
    plan = simulation.plan
    changes: list[Change] = []
    needs: dict[str, int] = {}
    for step in plan.steps:
        for pool, units in step.parallel.resources.items():
            needs[pool] = max(needs.get(pool, 0), units)
    for pool, capacity in plan.workflow.parallel.resources.items():
        floor = max(1, needs.get(pool, 1))
        changes += [Change(pool, capacity, after) for after in _alternatives(capacity, floor)]
    if plan.parallel:  # a sequential run has a cap of 1 whatever -j says
        cap = plan.max_concurrency
        changes += [Change(None, cap, after) for after in _alternatives(cap, 1)]
    return changes


def _alternatives(value: int, floor: int) -> list[int]:
    ups = sorted({value + 1, value + 2, value * 2})
    return ([value - 1] if value - 1 >= floor else []) + ups


def _pools(
    plan: Plan, steps: tuple[SimulatedStep, ...], makespan: float
) -> dict[str, PoolForecast]:
    pools: dict[str, PoolForecast] = {}
    for pool, capacity in plan.workflow.parallel.resources.items():
        held = [
            (s.start, s.end, plan.step(s.step_id).parallel.resources[pool])
            for s in steps
            if pool in plan.step(s.step_id).parallel.resources
        ]
        pools[pool] = PoolForecast(
            capacity=capacity,
            saturation=_full_share(held, capacity, makespan),
            wait_time=_waited(steps, WaitKind.POOL, pool),
            usage=usage_steps(held),
        )
    return pools


def _full_share(
    intervals: list[tuple[float, float, int]], capacity: int, makespan: float | None = None
) -> float:
    """Share of [0, makespan] during which the intervals' units reach `capacity`."""
    total = makespan if makespan is not None else max((e for _, e, _ in intervals), default=0.0)
    if total <= 0 or peak(intervals) < capacity:
        return 0.0
    levels = usage_steps(intervals)
    full = 0.0
    for (at, level), (after, _) in zip(levels, (*levels[1:], (total, 0)), strict=True):
        if level >= capacity:
            full += after - at
    return min(1.0, full / total)


def _waited(steps: tuple[SimulatedStep, ...], kind: WaitKind, pool: str | None = None) -> float:
    return sum(
        s.waited
        for s in steps
        if s.wait is not None and s.wait.kind is kind and (pool is None or s.wait.pool == pool)
    )
