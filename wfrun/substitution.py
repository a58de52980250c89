"""Substituting `${{ }}` references when a step starts (SPEC §10.2), and judging `if:` (§10.3).

The contexts are built from what the run knows at that moment: the outputs and statuses of the
steps that ended, the workflow's variables, the environment, the step's matrix values, the run.
A value replaces its reference inside the string, so an argument stays one argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wfrun.expressions import (
    ExpressionError,
    Reference,
    StatusFunctions,
    Value,
    reference_is_set,
)
from wfrun.model import AgentConfig, ScriptConfig, Step, Workflow, frozen_map
from wfrun.templates import OPEN, Template, parse_condition, parse_template


class UnsetOutput(ExpressionError):
    """A referenced output that its step did not set: the step fails before it starts."""


@dataclass(frozen=True, slots=True)
class StepData:
    """What a later step can read of an ended step."""

    status: str
    outputs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RunFacts:
    """The parts of the contexts that do not change during a run."""

    workflow: Workflow
    run_id: str
    run_dir: str
    env: Mapping[str, str]  # the process env (and --env-file) with the workflow's env over it


def contexts(facts: RunFacts, step: Step, ended: Mapping[str, StepData]) -> dict[str, Value]:
    return {
        "steps": {
            sid: {"status": data.status, "outputs": dict(data.outputs)}
            for sid, data in ended.items()
        },
        "vars": dict(facts.workflow.vars),
        "env": dict(facts.env),
        "matrix": dict(step.matrix),
        "run": {"id": facts.run_id, "dir": facts.run_dir},
        "workflow": {"name": facts.workflow.name},
    }


def holds(step: Step, values: Mapping[str, Value], status: StatusFunctions) -> bool:
    """The step's `if`, judged; ExpressionError when it cannot be evaluated."""
    if step.condition is None:
        return status.success()
    return parse_condition(step.condition).holds(values, status)


def resolve(step: Step, values: Mapping[str, Value]) -> Step:
    """The step with every reference in its config replaced by its value. UnsetOutput when an
    output it reads was not set; ExpressionError when an expression cannot be evaluated."""
    config = step.config
    if isinstance(config, ScriptConfig):
        resolved: ScriptConfig | AgentConfig = config._replace(
            command=_text(config.command, values),
            args=tuple(_text(arg, values) for arg in config.args),
            working_directory=_maybe(config.working_directory, values),
            env=_mapping(config.env, values),
        )
    else:
        resolved = config._replace(
            prompt=_text(config.prompt, values),
            parameters=_mapping(config.parameters, values),
            working_directory=_maybe(config.working_directory, values),
            env=_mapping(config.env, values),
        )
    return step._replace(config=resolved) if resolved != config else step


def _text(text: str, values: Mapping[str, Value]) -> str:
    if OPEN not in text:
        return text
    template = parse_template(text)
    _check_set(template, values)
    return template.render(values)


def _maybe(text: str | None, values: Mapping[str, Value]) -> str | None:
    return None if text is None else _text(text, values)


def _mapping(items: Mapping[str, str], values: Mapping[str, Value]) -> Mapping[str, str]:
    if not any(OPEN in v for v in items.values()):
        return items
    return frozen_map({k: _text(v, values) for k, v in items.items()})


def _check_set(template: Template, values: Mapping[str, Value]) -> None:
    for reference in template.references():
        if _is_output(reference) and not reference_is_set(values, reference):
            raise UnsetOutput(f"{reference.dotted} is not set", reference.offset)


def _is_output(reference: Reference) -> bool:
    return (
        reference.context == "steps" and len(reference.path) >= 3 and reference.path[1] == "outputs"
    )


def referenced_steps(step: Step) -> set[str]:
    """The ids in the `steps.ID` references of the step's config and `if`."""
    found: set[str] = set()
    for reference in _references(step):
        if reference.context == "steps" and reference.path and isinstance(reference.path[0], str):
            found.add(reference.path[0])
    return found


def references_of(step: Step) -> list[str]:
    """Every context path the step reads, dotted, once each, in the order written."""
    return list(dict.fromkeys(reference.dotted for reference in _references(step)))


def _references(step: Step) -> list[Reference]:
    references: list[Reference] = []
    try:
        for text in step.config_texts():
            if OPEN in text:
                references += parse_template(text).references()
        if step.condition is not None:
            references += parse_condition(step.condition).references()
    except ExpressionError:
        return []  # `validate` refuses it; evaluating says why
    return references
