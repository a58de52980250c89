"""Builders shared by the tests: steps, workflows, plans, results, and folded run states.

Imported as a plain module (`from builders import step, plan_of`); pytest puts tests/ on sys.path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wfrun.events import Event, RunStarted, StepFinished
from wfrun.model import (
    DEFAULT_MAX_CONCURRENCY,
    AgentConfig,
    ParallelConfig,
    ScriptConfig,
    Step,
    StepParallel,
    StepType,
    Workflow,
    frozen_map,
)
from wfrun.planner import Plan, make_plan
from wfrun.reporters.state import RunState
from wfrun.results import ParallelStats, RunResult, RunStatus, StepResult, StepStatus


def step(
    sid: str,
    deps: tuple[str, ...] = (),
    pools: Mapping[str, int] | None = None,
    *,
    limit: int | None = None,
    enabled: bool = True,
    isolate_errors: bool = True,
    command: str = "true",
    agent: AgentConfig | None = None,
) -> Step:
    """A step named `sid` that depends on `deps` and holds `pools` (pool -> units).

    A script running `command` unless `agent` is given, then an agent step with that config.
    `limit`, `enabled` and `isolate_errors` fill its `parallel:` block (`maxConcurrency`,
    `enabled`, `isolateErrors`). Its index is 0 until `workflow` or `plan_of` numbers it.
    """
    return Step(
        id=sid,
        name=sid,
        type=StepType.SCRIPT if agent is None else StepType.AGENT,
        config=ScriptConfig(command=command) if agent is None else agent,
        depends_on=deps,
        parallel=StepParallel(
            enabled=enabled,
            max_concurrency=limit,
            resources=frozen_map(pools),
            isolate_errors=isolate_errors,
        ),
    )


def workflow(
    *steps: Step,
    name: str = "ci",
    pools: Mapping[str, int] | None = None,
    cap: int = DEFAULT_MAX_CONCURRENCY,
) -> Workflow:
    """A workflow of `steps`, numbered in the order given, with pool capacities and a global cap."""
    return Workflow(
        name=name,
        steps=tuple(s._replace(index=i) for i, s in enumerate(steps)),
        parallel=ParallelConfig(default_max_concurrency=cap, resources=frozen_map(pools)),
    )


def plan_of(
    *steps: Step,
    name: str = "ci",
    pools: Mapping[str, int] | None = None,
    cap: int = DEFAULT_MAX_CONCURRENCY,
    parallel: bool | None = None,
    max_concurrency: int | None = None,
    durations: Mapping[str, float] | None = None,
) -> Plan:
    """The plan of `workflow(*steps, name=, pools=, cap=)`.

    `parallel`, `max_concurrency` and `durations` are passed on to `make_plan` (the run's mode,
    its cap override, and the previous run's step times for the critical path).
    """
    return make_plan(
        workflow(*steps, name=name, pools=pools, cap=cap),
        parallel=parallel,
        max_concurrency=max_concurrency,
        durations=durations,
    )


def result(
    plan: Plan,
    sid: str,
    status: StepStatus,
    start: float | None = None,
    end: float | None = None,
    **fields: Any,
) -> StepResult:
    """The result of step `sid` in `plan`'s group for it; other StepResult fields by keyword."""
    return StepResult(sid, status, plan.group_of[sid], start_time=start, end_time=end, **fields)


def ok(plan: Plan, sid: str, start: float, end: float) -> StepFinished:
    """The event of step `sid` succeeding at `end` after starting at `start`."""
    return StepFinished(sid, result(plan, sid, StepStatus.SUCCEEDED, start, end), end)


def run_result(
    results: Mapping[str, StepResult] | None = None,
    *,
    status: RunStatus = RunStatus.FAILED,
    run_id: str = "r1",
    name: str = "ci",
    version: str | None = None,
    file: str | None = None,
    parallel: bool = True,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    elapsed: float = 0.0,
    stats: ParallelStats | None = None,
) -> RunResult:
    """A finished run of workflow `name` with `results` (step id -> result) and `stats`."""
    return RunResult(
        run_id,
        name,
        version,
        file,
        status,
        parallel,
        max_concurrency,
        elapsed,
        dict(results or {}),
        stats,
    )


def fold(events: Iterable[Event], *, plan: Plan | None = None, now: float = 5.0) -> RunState:
    """A RunState with its clock fixed at `now`, after handling `events`.

    With `plan`, a RunStarted of it (run "run-1" in /tmp/run-1) is handled first.
    """
    state = RunState(now=lambda: now)
    if plan is not None:
        state.handle(RunStarted(plan.workflow, plan, "run-1", "/tmp/run-1"))
    for event in events:
        state.handle(event)
    return state
