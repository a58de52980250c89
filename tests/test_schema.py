"""The workflow JSON Schema: valid draft-07 that editors understand, documented, one source."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from wfrun.model import OutputFormat, PromptMode, StepType
from wfrun.schemas import report_schema, workflow_schema, workflow_schema_text

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

# What draft-07 defines; yaml-language-server and VS Code understand all of it. Later drafts'
# `$defs`, `unevaluatedProperties`, `dependentRequired`... are missing on purpose.
DRAFT7_KEYWORDS = {
    "$schema", "$id", "$ref", "$comment", "title", "description", "default", "examples",
    "readOnly", "writeOnly", "definitions", "type", "enum", "const", "multipleOf", "maximum",
    "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
    "additionalItems", "items", "maxItems", "minItems", "uniqueItems", "contains",
    "maxProperties", "minProperties", "required", "properties", "patternProperties",
    "additionalProperties", "dependencies", "propertyNames", "if", "then", "else", "allOf",
    "anyOf", "oneOf", "not", "format", "contentMediaType", "contentEncoding",
}  # fmt: skip
NAMED_SCHEMAS = {"properties", "patternProperties", "definitions"}  # name -> schema
ONE_SCHEMA = {"items", "additionalItems", "additionalProperties", "contains", "propertyNames",
              "if", "then", "else", "not"}  # fmt: skip
SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "items"}


def subschemas(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema inside `schema` (itself included), with its JSON pointer."""
    if not isinstance(schema, dict):
        return
    yield where, schema
    for keyword, value in schema.items():
        if keyword in NAMED_SCHEMAS:
            for name, sub in value.items():
                yield from subschemas(sub, f"{where}/{keyword}/{name}")
        elif keyword in SCHEMA_LISTS and isinstance(value, list):
            for index, sub in enumerate(value):
                yield from subschemas(sub, f"{where}/{keyword}/{index}")
        elif keyword in ONE_SCHEMA:
            yield from subschemas(value, f"{where}/{keyword}")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return workflow_schema()


def test_schema_is_valid_draft7(schema: dict[str, Any]) -> None:
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"] == "https://wfrun.dev/schemas/workflow.schema.json"


def test_schema_uses_only_draft7_keywords(schema: dict[str, Any]) -> None:
    unknown = {
        f"{where}: {keyword}"
        for where, sub in subschemas(schema)
        for keyword in sub
        if keyword not in DRAFT7_KEYWORDS
    }
    assert unknown == set()


def test_every_property_has_a_description(schema: dict[str, Any]) -> None:
    undocumented = [
        f"{where}/properties/{name}"
        for where, sub in subschemas(schema)
        for name, prop in sub.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []
    assert all(definition.get("description") for definition in schema["definitions"].values())


def test_every_mapping_is_closed(schema: dict[str, Any]) -> None:
    open_mappings = [
        where
        for where, sub in subschemas(schema)
        # Closed: unknown keys refused, or (a matrix) every other key held to a schema of its own.
        if "properties" in sub and "type" in sub and sub.get("additionalProperties", True) is True
    ]
    assert open_mappings == []


def test_references_point_at_definitions(schema: dict[str, Any]) -> None:
    for _, sub in subschemas(schema):
        if "$ref" in sub:
            name = sub["$ref"].removeprefix("#/definitions/")
            assert name in schema["definitions"], sub["$ref"]


def test_schema_enums_match_the_model(schema: dict[str, Any]) -> None:
    definitions = schema["definitions"]
    assert definitions["step"]["properties"]["type"]["enum"] == [t.value for t in StepType]
    agent = definitions["agent"]["properties"]
    assert agent["prompt"]["enum"] == [mode.value for mode in PromptMode]
    assert agent["output"]["enum"] == [output.value for output in OutputFormat]


def test_schema_text_is_the_file_on_disk() -> None:
    on_disk = (SCHEMAS / "workflow.schema.json").read_text(encoding="utf-8")
    assert workflow_schema_text() == on_disk
    assert json.loads(on_disk) == workflow_schema()


def test_parsed_schemas_are_fresh_copies() -> None:
    workflow_schema()["title"] = "changed"
    assert workflow_schema()["title"] == "wfrun workflow"


def test_report_schema_is_found_the_same_way() -> None:
    schema = report_schema()
    assert schema["$id"] == "https://wfrun.dev/schemas/report.schema.json"
    Draft7Validator.check_schema(schema)


@pytest.mark.parametrize(
    ("duration", "valid"),
    [("500ms", True), ("30s", True), ("1h30m", True), ("1.5h", True),
     ("900", False), ("15 m", False), ("5d", False), ("", False)],
)  # fmt: skip
def test_duration_pattern(schema: dict[str, Any], duration: str, valid: bool) -> None:
    validator = Draft7Validator(schema["definitions"]["duration"])
    assert validator.is_valid(duration) is valid
