"""`--set NAME=VALUE` (SPEC §10.6): overriding the workflow's declared `vars`."""

from __future__ import annotations

from collections.abc import Iterable

from wfrun.errors import WfrunError
from wfrun.model import Workflow, frozen_map
from wfrun.suggest import closest, listed


class VariableError(WfrunError):
    """A `--set` that cannot apply: the command line is wrong (exit 2)."""


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """`NAME=VALUE` strings as a mapping; the value may contain `=` and may be empty."""
    found: dict[str, str] = {}
    for text in assignments:
        name, equals, value = text.partition("=")
        if not equals or not name:
            raise VariableError(f"--set {text!r}: write NAME=VALUE")
        found[name] = value
    return found


def with_vars(workflow: Workflow, overrides: dict[str, str]) -> Workflow:
    """The workflow with declared variables overridden; VariableError names an undeclared one."""
    if not overrides:
        return workflow
    declared = list(workflow.vars)
    problems: list[str] = []
    for name in overrides:
        if name in workflow.vars:
            continue
        if not declared:
            problems.append(
                f"--set {name}: the workflow declares no vars (add a vars: section with {name})"
            )
            continue
        hint = closest(name, declared)
        suggestion = f"did you mean {hint!r}? " if hint else ""
        problems.append(
            f"--set {name}: not a variable of the workflow ({suggestion}declared: "
            f"{listed(declared)})"
        )
    if problems:
        raise VariableError("\n".join(problems))
    return workflow._replace(vars=frozen_map({**workflow.vars, **overrides}))
