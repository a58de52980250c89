"""Warnings about a valid workflow: what the file allows but the machine it is checked on says
will probably fail.

Not errors: the file is valid, and the machine may change before the run (an earlier step can
create a step's working directory). `wfrun validate` prints them and still succeeds; `wfrun run`
does not look, since a step whose directory is missing fails with its own message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wfrun.errors import Diagnostic, UnreadableFileError
from wfrun.model import Position, Step, Workflow


def workflow_warnings(workflow: Workflow, file: str) -> list[Diagnostic]:
    """A warning for each step whose workingDirectory is not a directory now."""
    missing: list[tuple[Step, str, Path]] = []  # the step, its directory as written, resolved
    for step in workflow.steps:
        written = step.config.working_directory
        if written is None or "${{" in written:  # a reference is known only at run time
            continue
        where = workflow.base_dir / written
        if not where.is_dir():
            missing.append((step, written, where))
    if not missing:
        return []
    place = _places(file)
    warnings = []
    for step, written, where in missing:
        at = place(step) if place is not None else step.position
        shown = repr(written)
        if not Path(written).is_absolute():
            shown += f" (in {workflow.base_dir})"
        if where.exists():
            problem = "is not a directory: the step will fail to start"
        else:
            problem = "does not exist yet: the step will fail unless an earlier step creates it"
        message = f"the workingDirectory of step {step.id!r}, {shown}, {problem}"
        warnings.append(Diagnostic(file, at.line, at.col, message))
    return warnings


def _places(file: str) -> Callable[[Step], Position] | None:
    """Where each step's workingDirectory is written. The file is read again, only when there is
    a warning to place: the model keeps the position of each step's id, not of every value. A
    step is found by that position (a matrix step's instances all come from one entry)."""
    from wfrun.yaml_source import parse, read_text

    try:
        data, _, tree = parse(read_text(file), file, lambda: "")
    except UnreadableFileError:  # gone since it was loaded: the step's id will do
        return None
    entries = data.get("steps") if isinstance(data, dict) else None
    count = len(entries) if isinstance(entries, list) else 0
    index_at = {tree.locate(("steps", i, "id")): i for i in range(count)}

    def place(step: Step) -> Position:
        index = index_at.get(step.position)
        if index is None:
            return step.position
        return tree.locate_value(("steps", index, "config", "workingDirectory"))

    return place
