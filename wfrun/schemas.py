"""Where the JSON Schemas live, and reading them.

The schemas exist once, in `schemas/` at the top of the repository. The wheel carries that folder
as `wfrun/schema_files/` (not `wfrun/schemas/`, which would clash with this module's name); a
source checkout or an editable install finds it next to the package instead.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

WORKFLOW_SCHEMA = "workflow.schema.json"
REPORT_SCHEMA = "report.schema.json"


def _candidates(name: str) -> tuple[Traversable, ...]:
    from importlib import resources  # lazily: it imports tempfile, shutil, ...

    return (
        resources.files("wfrun") / "schema_files" / name,  # installed wheel
        Path(__file__).resolve().parent.parent / "schemas" / name,  # checkout, editable install
    )


@functools.cache
def schema_text(name: str) -> str:
    """The text of the schema file `name` (e.g. "workflow.schema.json"), read once."""
    for candidate in _candidates(name):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise FileNotFoundError(f"schema {name} is missing from the wfrun installation")


def workflow_schema_text() -> str:
    """The workflow JSON Schema exactly as shipped (what `wfrun schema` prints)."""
    return schema_text(WORKFLOW_SCHEMA)


def workflow_schema() -> dict[str, Any]:
    """The workflow JSON Schema, parsed; a fresh copy the caller may change."""
    return _parse(WORKFLOW_SCHEMA)


def agents_file_schema() -> dict[str, Any]:
    """The schema of an `--agents` file: one key, `agents:`, laid out as in a workflow.

    Built from the workflow schema (its definitions come along for the `$ref`s), so the two
    cannot disagree about what an agent is.
    """
    workflow = workflow_schema()
    return {
        "$schema": workflow["$schema"],
        "type": "object",
        "additionalProperties": False,
        "required": ["agents"],
        "properties": {"agents": workflow["properties"]["agents"]},
        "definitions": workflow["definitions"],
    }


def report_schema() -> dict[str, Any]:
    """The run report JSON Schema, parsed; a fresh copy the caller may change."""
    return _parse(REPORT_SCHEMA)


def _parse(name: str) -> dict[str, Any]:
    # Parsing the cached text again is cheap and keeps callers from mutating a shared dict.
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema
