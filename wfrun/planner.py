"""The graph of a workflow: parallel groups (dependency levels), dependents, critical path, and
the effective mode and cap of a run (SPEC §3.1-§3.3)."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from wfrun.errors import Diagnostic, WorkflowError
from wfrun.model import STEP_ID, Step, Workflow


class Plan(NamedTuple):
    """A workflow planned for one run. Groups are for display and statistics, never barriers."""

    workflow: Workflow
    parallel: bool
    max_concurrency: int
    groups: tuple[tuple[str, ...], ...]  # level -> step ids in file order
    group_of: Mapping[str, int]
    dependents: Mapping[str, tuple[str, ...]]  # step -> steps that depend on it, file order
    order: tuple[str, ...]  # a topological order (dependencies first)
    remaining: Mapping[str, float]  # longest path from the step to a sink, the step included
    critical_path: tuple[str, ...]
    by_id: Mapping[str, Step]
    durations_known: bool = False  # True when remaining/critical_path use measured durations

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.workflow.steps

    def step(self, step_id: str) -> Step:
        return self.by_id[step_id]

    def to_dict(self) -> dict[str, Any]:
        """The `plan --format json` document of SPEC §4."""
        return {
            "workflow": self.workflow.name,
            "parallel": self.parallel,
            "maxConcurrency": self.max_concurrency,
            "resources": dict(self.workflow.parallel.resources),
            "groups": [{"id": i, "steps": list(ids)} for i, ids in enumerate(self.groups)],
            "criticalPath": list(self.critical_path),
            "steps": {
                s.id: {
                    "parallelGroup": self.group_of[s.id],
                    "dependsOn": list(s.depends_on),
                    "resources": dict(s.parallel.resources),
                    "maxConcurrency": s.parallel.effective_max_concurrency,
                    **_data_flow(s),
                }
                for s in self.workflow.steps
            },
        }


def _data_flow(step: Step) -> dict[str, Any]:
    """What `plan --format json` says of a step's data (SPEC §10): its references, its
    condition, and for a matrix instance its step and values."""
    from wfrun.substitution import references_of

    found: dict[str, Any] = {"references": references_of(step)}
    if step.condition is not None:
        found["if"] = step.condition
    if step.base_id is not None:
        found["matrixOf"] = step.base_id
        found["matrix"] = dict(step.matrix)
    return found


def effective_mode(workflow: Workflow, parallel: bool | None) -> bool:
    """The run option wins, then the file's `parallel.enabled` (default on)."""
    return workflow.parallel.enabled if parallel is None else parallel


def effective_cap(workflow: Workflow, parallel: bool, max_concurrency: int | None) -> int:
    """Sequential mode is the same scheduler with a cap of 1."""
    if not parallel:
        return 1
    if max_concurrency is not None:
        return max_concurrency
    return workflow.parallel.default_max_concurrency


def check_steps(workflow: Workflow) -> None:
    """Refuse a workflow built in code with what the loader refuses in a file: malformed or
    duplicate ids (an id names the step's log file: `../x` must not write outside the run
    directory) and dependencies on unknown steps. Raises WorkflowError with every problem."""
    file = str(workflow.file or "<workflow>")
    found: list[Diagnostic] = []
    seen: set[str] = set()
    for step in workflow.steps:
        line, col = step.position.line, step.position.col
        if not isinstance(step.id, str) or not STEP_ID.fullmatch(step.id):
            message = f"invalid step id {step.id!r}: use only letters, digits, '_' and '-'"
            found.append(Diagnostic(file, line, col, message))
        elif step.id in seen:
            found.append(Diagnostic(file, line, col, f"duplicate step id {step.id!r}"))
        seen.add(step.id)
    ids = {step.id for step in workflow.steps}
    for step in workflow.steps:
        for dep in step.depends_on:
            if dep not in ids:
                message = f"step {step.id!r} depends on unknown step {dep!r}"
                found.append(Diagnostic(file, step.position.line, step.position.col, message))
    if found:
        raise WorkflowError(found)


def topological_order(workflow: Workflow) -> tuple[str, ...]:
    """Dependencies first, file order among independent steps; raises WorkflowError on a cycle."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for step in workflow.steps:
        sorter.add(step.id, *step.depends_on)
    try:
        return tuple(sorter.static_order())
    except graphlib.CycleError as err:
        cycle = " -> ".join(reversed(err.args[1]))
        file = str(workflow.file or "<workflow>")
        raise WorkflowError([Diagnostic(file, 1, 1, f"dependency cycle: {cycle}")]) from None


def make_plan(
    workflow: Workflow,
    parallel: bool | None = None,
    max_concurrency: int | None = None,
    durations: Mapping[str, float] | None = None,
) -> Plan:
    """Plan a workflow in time linear in steps + edges.

    `durations` (seconds per step, e.g. from the previous run) weight the critical path;
    without them every step weighs 1, so the critical path is the longest chain by step count.
    Raises WorkflowError for a workflow built in code with bad ids, unknown steps or a cycle.
    """
    check_steps(workflow)
    order = topological_order(workflow)
    level: dict[str, int] = {}
    by_id = {s.id: s for s in workflow.steps}
    for sid in order:
        level[sid] = 1 + max((level[d] for d in by_id[sid].depends_on), default=-1)
    groups: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    dependents: dict[str, list[str]] = {s.id: [] for s in workflow.steps}
    for step in workflow.steps:
        groups[level[step.id]].append(step.id)
        for dep in step.depends_on:
            dependents[dep].append(step.id)
    weight = _weights(workflow, durations)
    remaining: dict[str, float] = {}
    for sid in reversed(order):
        remaining[sid] = weight[sid] + max((remaining[d] for d in dependents[sid]), default=0.0)
    mode = effective_mode(workflow, parallel)
    return Plan(
        workflow=workflow,
        parallel=mode,
        max_concurrency=effective_cap(workflow, mode, max_concurrency),
        groups=tuple(tuple(g) for g in groups),
        group_of=MappingProxyType(level),
        dependents=MappingProxyType({k: tuple(v) for k, v in dependents.items()}),
        order=order,
        remaining=MappingProxyType(remaining),
        critical_path=_critical_path(workflow, dependents, remaining),
        by_id=MappingProxyType(by_id),
        durations_known=durations is not None,
    )


def _weights(workflow: Workflow, durations: Mapping[str, float] | None) -> dict[str, float]:
    if durations is None:
        return {s.id: 1.0 for s in workflow.steps}
    # A step the previous run did not time gets the mean, so new steps neither vanish nor dominate.
    known = [durations[s.id] for s in workflow.steps if s.id in durations]
    fallback = sum(known) / len(known) if known else 1.0
    return {s.id: float(durations.get(s.id, fallback)) for s in workflow.steps}


def _critical_path(
    workflow: Workflow, dependents: Mapping[str, list[str]], remaining: Mapping[str, float]
) -> tuple[str, ...]:
    index = {s.id: s.index for s in workflow.steps}

    def heaviest(ids: list[str]) -> str:
        return min(ids, key=lambda sid: (-remaining[sid], index[sid]))

    if not workflow.steps:
        return ()
    roots = [s.id for s in workflow.steps if not s.depends_on]
    path = [heaviest(roots)]
    while dependents[path[-1]]:
        path.append(heaviest(dependents[path[-1]]))
    return tuple(path)
