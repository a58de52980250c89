"""The dispatcher's own cost: the pure state machine driven by hand, no processes, no threads.

    python bench/bench_dispatch.py [--rounds 7] [--quick]

Builds the random DAG of workloads.py (step i depends on 0..3 earlier steps, seed 42) in memory
at 1,000 and 10,000 steps and drives `wfrun.dispatch.Dispatcher` the way the scheduler does:
`startable()`, `take_wait_changes()`, then `finish()` of the oldest running step, until nothing
is left. Reported: time per (steps + edges) at both sizes and their ratio, which stays near 1
when the cost grows linearly (the dispatcher promises O((steps + edges) log n), so a ratio up to
about log(10000)/log(1000) = 1.33 is still in line). The ratio is judged relative to that of
`make_plan` (below), since caches alone make a linear pass 1.1-1.4x dearer per unit at 10x size.

Variants: plain (global cap 8, no pools); pool-heavy (every step takes pool `cpu` of capacity 2,
cap 8: the pool, not the cap, holds steps back); ten pools (step i takes pool `p{i % 10}` of
capacity 2, cap 8: ten ready classes to scan). `make_plan`, a single linear pass, is timed the
same way as a control: its ratio shows what cache effects alone do at 10,000 steps.
"""

from __future__ import annotations

import gc
import math
import time
from collections import deque
from collections.abc import Callable

import benchlib as bl
from workloads import random_deps

from wfrun.dispatch import Completion, Dispatcher
from wfrun.model import ParallelConfig, ScriptConfig, Step, StepParallel, StepType, Workflow
from wfrun.planner import Plan, make_plan

SIZES = (1000, 10000)
CAP = 8
Pools = Callable[[int], dict[str, int]]  # step index -> pool units it takes

VARIANTS: dict[str, tuple[dict[str, int], Pools]] = {
    "plain": ({}, lambda i: {}),
    "one pool cpu=2": ({"cpu": 2}, lambda i: {"cpu": 1}),
    "ten pools of 2": ({f"p{k}": 2 for k in range(10)}, lambda i: {f"p{i % 10}": 1}),
}


def workflow(steps: int, capacity: dict[str, int], pools: Pools) -> Workflow:
    config = ScriptConfig("true")
    built = tuple(
        Step(
            id=f"s{i}",
            name=f"s{i}",
            type=StepType.SCRIPT,
            config=config,
            depends_on=tuple(f"s{d}" for d in deps),
            parallel=StepParallel(resources=pools(i)),
            index=i,
        )
        for i, deps in enumerate(random_deps(steps, seed=42))
    )
    parallel = ParallelConfig(enabled=True, default_max_concurrency=CAP, resources=capacity)
    return Workflow(name="bench", steps=built, parallel=parallel)


def drive(plan: Plan) -> int:
    """Run the whole plan through a fresh dispatcher; return the number of steps finished."""
    dispatcher = Dispatcher(plan)
    running: deque[str] = deque()  # start order, so popleft() is the first running step
    finished = 0
    while dispatcher.is_active():
        running.extend(dispatcher.startable())
        dispatcher.take_wait_changes()
        if not running:
            break  # nothing runs and nothing may start: a bug, reported by the count below
        dispatcher.finish(running.popleft(), Completion.SUCCEEDED)
        finished += 1
    return finished


def timed(action: Callable[[], object]) -> float:
    """Seconds of one call, with the cyclic GC off: a collection walks every live object, so
    its cost grows with the heap (the 10,000-step workflow), not with the dispatcher's work."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started
    finally:
        gc.enable()


def drive_case(plan: Plan) -> bl.Case:
    return lambda: timed(lambda: drive(plan))


def plan_case(flow: Workflow) -> bl.Case:
    return lambda: timed(lambda: make_plan(flow))


def scaling_rows(variant: str, s: dict[str, list[float]], units: dict[int, int]) -> list[bl.Row]:
    """Per-unit cost at the large size over the small one, for the dispatcher and the control."""
    small, large = SIZES
    ratios, rows = {}, []
    for what in ("drive", "make_plan"):
        per_unit = {n: bl.median(s[f"{variant}: {what} {n}"]) / units[n] for n in SIZES}
        ratios[what] = ratio = per_unit[large] / per_unit[small]
        figure = f"{ratio:.2f}× ({per_unit[small] * 1e6:.2f} → {per_unit[large] * 1e6:.2f} µs)"
        rows.append(bl.Row(f"{variant}: {what}, cost per (steps+edges) {large} / {small}", figure))
    # Judged against the control's growth, which is what caches and allocation do to any linear
    # pass at 10x the size on this machine (1.1-1.4x here), so only the algorithm is left.
    log_factor = math.log(large) / math.log(small)
    relative = ratios["drive"] / ratios["make_plan"]
    drive, control = rows
    drive.value += f"; {relative:.2f}× the control's growth"
    drive.target, drive.met = (
        f"≤ {log_factor:.2f}× the control (log factor)",
        relative <= log_factor,
    )
    control.note = f"control: one linear pass; steps+edges {units[small]} → {units[large]}"
    return rows


def main() -> None:
    args = bl.parser(__doc__ or "").parse_args()
    rounds = bl.rounds_of(args)
    report = bl.Report("bench_dispatch", "wfrun dispatcher: cost per (steps + edges)", rounds)
    variants = dict(list(VARIANTS.items())[:1]) if args.quick else VARIANTS
    for variant, (capacity, pools) in variants.items():
        flows = {n: workflow(n, capacity, pools) for n in SIZES}
        units = {
            n: len(w.steps) + sum(len(s.depends_on) for s in w.steps) for n, w in flows.items()
        }
        plans = {n: make_plan(w) for n, w in flows.items()}
        for n, plan in plans.items():
            done = drive(plan)
            if done != n:
                report.notes.append(f"{variant}, {n} steps: only {done} finished")
        cases: dict[str, bl.Case] = {}
        for n in SIZES:
            cases[f"{variant}: drive {n}"] = drive_case(plans[n])
            cases[f"{variant}: make_plan {n}"] = plan_case(flows[n])
        s = bl.alternate(cases, rounds, label=variant)
        report.keep(s)
        report.add(*scaling_rows(variant, s, units))
    report.notes.append(
        "drive = Dispatcher(plan) plus the loop startable / take_wait_changes / finish(first "
        "running) to the end; a ratio near 1.00 is linear growth."
    )
    bl.publish(report)


if __name__ == "__main__":
    main()
