"""Targets (SPEC §11.3): run or plan only some steps and what they need, like `make TARGET`."""

from __future__ import annotations

from collections.abc import Sequence

from wfrun.errors import WfrunError
from wfrun.model import Step, Workflow
from wfrun.suggest import Vocabulary, listed


class UnknownTargetError(WfrunError):
    """A target names no step of the workflow; the message names each, with a suggestion."""


def _named(workflow: Workflow, name: str) -> list[Step]:
    """The steps a target names: the step of that id, or every instance of the matrix step of
    that id."""
    return [step for step in workflow.steps if name in (step.id, step.base_id)]


def select_targets(workflow: Workflow, targets: Sequence[str]) -> Workflow:
    """The workflow cut down to `targets` and their transitive dependencies, in file order
    (each step keeps its index, so ties still break as in the whole workflow). No targets:
    the whole workflow. Raises UnknownTargetError naming every unknown target."""
    if not targets:
        return workflow
    by_id = {step.id: step for step in workflow.steps}
    names = {**by_id, **{s.base_id: s for s in workflow.steps if s.base_id is not None}}
    wanted: set[str] = set()
    unknown: list[str] = []
    work: list[Step] = []
    for name in targets:
        found = _named(workflow, name)
        if not found:
            unknown.append(name)
        work.extend(found)
    if unknown:
        vocabulary = Vocabulary(names)
        problems = [f"unknown step {name!r}{vocabulary.did_you_mean(name)}" for name in unknown]
        steps = f"steps: {listed(names)}"
        raise UnknownTargetError("; ".join(problems) + f" ({steps})")
    while work:
        step = work.pop()
        if step.id in wanted:
            continue
        wanted.add(step.id)
        work.extend(by_id[dep] for dep in step.depends_on if dep in by_id)
    return workflow._replace(steps=tuple(s for s in workflow.steps if s.id in wanted))
