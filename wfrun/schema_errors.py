"""JSON Schema validation of converted documents, and jsonschema errors turned into messages.

This module's one job is the schema stage of loading: a document passes if the schema compiled
into wfrun (wfrun.compiled_schemas) accepts it; otherwise it builds the jsonschema validator
(with `$ref`s inlined) and explains each jsonschema error as one human message at the offending
key, using the node tree for positions and the text the user wrote. It is the only module that
imports jsonschema, and only for an invalid document: a valid one must not pay for it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from wfrun.checks import JsonPath, Source
from wfrun.compiled_schemas import agents_file_valid, workflow_valid
from wfrun.durations import bare_number_message, parse_duration
from wfrun.schemas import agents_file_schema, workflow_schema
from wfrun.suggest import Vocabulary
from wfrun.yaml_source import Problem, Tree

if TYPE_CHECKING:
    from jsonschema import Draft7Validator, ValidationError

_DECIMAL = re.compile(r"\d+(\.\d+)?")


@functools.cache
def workflow_validator() -> Draft7Validator:
    return _compiled(_inline_refs(workflow_schema()))


@functools.cache
def agents_validator() -> Draft7Validator:
    return _compiled(_inline_refs(agents_file_schema()))


def _compiled(schema: dict[str, Any]) -> Draft7Validator:
    from jsonschema import Draft7Validator  # lazily: only an invalid document needs it

    return Draft7Validator(schema)


def quickly_valid(data: Any) -> bool:
    """True when a workflow document is valid by the schema compiled into wfrun.

    That code stops at the first error and cannot say where, so a document it rejects goes
    through jsonschema, which reports every error with its path; a valid one never imports it.
    """
    return workflow_valid(data)


def agents_quickly_valid(data: Any) -> bool:
    """`quickly_valid` for an `--agents` file."""
    return agents_file_valid(data)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with each `#/definitions/...` reference replaced by its target.

    jsonschema resolves a `$ref` on every visit, which costs a third of the validation time of a
    large workflow. Draft-07 ignores the siblings of `$ref`, so inlining changes nothing else.
    """
    definitions = schema.get("definitions", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].removeprefix("#/definitions/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {key: inline(value) for key, value in schema.items() if key != "definitions"}


def validate(
    data: Any, tree: Tree, file: str, kind: str, validator: Draft7Validator
) -> list[Problem]:
    if data is None:
        return []
    source = Source(file, data, tree.locate, kind=kind, locate_value=tree.locate_value)
    explainer = _Explainer(source, tree)
    return [
        problem for error in validator.iter_errors(data) for problem in explainer.explain(error)
    ]


# Did-you-mean comparisons per set of names in one file: past them, unknown keys are still each
# reported, with a suggestion only for case slips (10,000 unknown keys must not take minutes).
SUGGESTIONS = 1_000

_EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "empty",
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else "string"


class _Explainer:
    """Turns jsonschema errors into one human message each, at the offending key."""

    def __init__(self, source: Source, tree: Tree) -> None:
        self.source = source
        self.tree = tree
        self.facts = _schema_facts()
        self._vocabularies: dict[tuple[str, ...], Vocabulary] = {}

    def vocabulary(self, names: list[str]) -> Vocabulary:
        """The names as a Vocabulary, one per set of names, sharing one budget of suggestions."""
        key = tuple(names)
        found = self._vocabularies.get(key)
        if found is None:
            found = self._vocabularies[key] = Vocabulary(names, budget=SUGGESTIONS)
        return found

    def explain(self, error: ValidationError) -> list[Problem]:
        path: JsonPath = tuple(error.absolute_path)
        if self.under_unknown_type(path):
            return []  # the config of a step of an unknown type: the type's message says it all
        handler = getattr(self, f"_{error.validator}", None)
        if handler is None:
            return [self.problem(path, f"{self.name(path)}: {error.message}")]
        found: list[Problem] = handler(error, path)
        return found

    def problem(self, path: JsonPath, message: str) -> Problem:
        return Problem(path, self.source.at(path, message))

    def value_problem(self, path: JsonPath, message: str) -> Problem:
        return Problem(path, self.source.at_value(path, message))

    def step_type(self, path: JsonPath) -> Any:
        """The `type` of the step `path` is in (the default when it has none), else None."""
        if len(path) < 2 or path[0] != "steps" or not isinstance(path[1], int):
            return None
        step = self.source.data["steps"][path[1]]
        return step.get("type", "script") if isinstance(step, dict) else None

    def under_unknown_type(self, path: JsonPath) -> bool:
        if path[2:3] != ("config",):
            return False
        step_type = self.step_type(path)  # `type: {}` is a value too, and not a hashable one
        return not isinstance(step_type, str) or step_type not in self.facts.config_keys

    def other_type_hint(self, key: str, path: JsonPath) -> str:
        """` (a key of script steps; this step has type: agent)` for a key of the other kind."""
        if path[2:] != ("config",):
            return ""
        own = self.step_type(path)
        for kind, keys in self.facts.config_keys.items():
            if kind != own and key in keys:
                return f" (a key of {kind} steps; this step has type: {own})"
        return ""

    def name(self, path: JsonPath) -> str:
        return self.source.name(path)

    def got(self, path: JsonPath, value: Any) -> str:
        kind = _kind(value)
        if kind in ("object", "array"):
            return f"got {_EXPECTED[kind]}"
        if value is None:
            return "got an empty value"
        shown = _short(self.tree.raw(path) or str(value))
        return f"got {kind} {shown!r}" if kind == "string" else f"got {kind} {shown}"

    def _type(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        value, expected = error.instance, error.validator_value
        if error.schema.get("pattern") == self.facts.duration_pattern:
            return [self.value_problem(path, self.duration_message(path, value))]
        wanted = " or ".join(
            _EXPECTED[t] for t in ([expected] if isinstance(expected, str) else expected)
        )
        message = f"{self.name(path)} must be {wanted}, {self.got(path, value)}"
        if expected == "string" and _kind(value) in ("integer", "number", "boolean"):
            message += f' (quote it: "{_short(self.tree.raw(path) or str(value))}")'
        elif expected == "array" and isinstance(value, str):
            message += f" (write [{value}])"
        return [self.problem(path, message)]

    def duration_message(self, path: JsonPath, value: Any) -> str:
        if _kind(value) in ("integer", "number"):
            raw = self.tree.raw(path) or ""
            number = raw if _DECIMAL.fullmatch(raw) else str(value)  # not `0x10` or `1e3`
            return f"{self.name(path)}: {bare_number_message(number)}"
        if isinstance(value, str):
            try:
                parse_duration(value)
            except ValueError as error:
                return f"{self.name(path)}: {error}"
        return (
            f"{self.name(path)} must be a duration with a unit such as 500ms, 30s, 5m or 1h30m, "
            f"{self.got(path, value)}"
        )

    def _pattern(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        if error.validator_value == self.facts.duration_pattern:
            return [self.value_problem(path, self.duration_message(path, error.instance))]
        if error.validator_value == self.facts.id_pattern:
            message = f"invalid step id {error.instance!r}: use only letters, digits, '_' and '-'"
            return [self.problem(path, message)]
        message = f"{self.name(path)} must match {error.validator_value}, got {error.instance!r}"
        return [self.problem(path, message)]

    def _additionalProperties(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        allowed = list(error.schema.get("properties", {}))
        patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
        found = []
        for key in error.instance:
            if key not in allowed and not any(p.search(key) for p in patterns):
                hint = (
                    self.vocabulary(allowed).did_you_mean(key)
                    or self.other_type_hint(key, path)
                    or _nested_hint(key, error.schema)
                )
                if path:
                    message = f"unknown key {key!r} {self.source.place(path)}{hint}"
                else:
                    message = f"unknown top-level key {key!r}{hint}"
                found.append(self.problem((*path, key), message))
        return found

    def _required(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        allowed = list(error.schema.get("properties", {}))
        extras = [key for key in error.instance if key not in allowed]
        found = []
        for key in error.validator_value:
            # A misspelt key already says "did you mean 'id'?": no second message for the same slip.
            vocabulary = self.vocabulary(allowed)
            if key in error.instance or any(vocabulary.closest(e) == key for e in extras):
                continue
            message = f"{self.name(path)} is missing required key {key!r}"
            found.append(Problem((*path, key), self.source.at(path, message)))
        return found

    def _enum(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        choices = [str(choice) for choice in error.validator_value]
        value = error.instance
        hint = self.vocabulary(choices).did_you_mean(value) if isinstance(value, str) else ""
        got = f"got {_short(repr(value))}" if isinstance(value, str) else self.got(path, value)
        message = f"{self.name(path)} must be one of {', '.join(choices)}, {got}{hint}"
        return [self.problem(path, message)]

    def _minimum(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        if _kind(error.instance) != "integer":
            return []  # `.inf` where a count goes: the type's message says it
        message = (
            f"{self.name(path)} must be at least {error.validator_value}, "
            f"got {_short(str(error.instance))}"
        )
        return [self.problem(path, message)]

    def _maximum(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        if _kind(error.instance) != "integer":
            return []
        shown = self.tree.raw(path) or str(error.instance)
        message = (
            f"{self.name(path)} must be at most {error.validator_value:,}, got {_short(shown)}"
        )
        return [self.problem(path, message)]

    def _minItems(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        return [self.problem(path, f"{self.name(path)} must not be empty")]

    _minProperties = _minItems

    def _uniqueItems(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        seen: set[str] = set()
        for index, item in enumerate(error.instance):
            key = json.dumps(item, sort_keys=True)  # lists and mappings are items too
            if key in seen:
                message = f"{self.name(path)} lists {_short(repr(item))} twice"
                return [self.problem((*path, index), message)]
            seen.add(key)
        return []

    def _oneOf(self, error: ValidationError, path: JsonPath) -> list[Problem]:
        # The branches are told apart by type: explain the one whose type fits the value.
        kind = _kind(error.instance)
        for index, branch in enumerate(error.validator_value):
            if branch.get("type") == kind:
                inner = [e for e in error.context if e.relative_schema_path[0] == index]
                return [p for e in inner for p in self.explain(e)]
        wanted = ", ".join(
            _EXPECTED[branch.get("type", "null")] for branch in error.validator_value
        )
        wanted = " or".join(wanted.rsplit(",", 1))
        return [
            self.problem(
                path, f"{self.name(path)} must be {wanted}, {self.got(path, error.instance)}"
            )
        ]

    _anyOf = _oneOf


def _short(text: str) -> str:
    """A value as messages show it: a 400-digit number or a page of text is cut short."""
    return text if len(text) <= 40 else f"{text[:30]}… ({len(text):,} characters)"


def _nested_hint(key: str, schema: Mapping[str, Any]) -> str:
    """` (it belongs under 'config')` when `key` is a key of one of the mapping's sub-mappings."""
    branches = [schema, schema.get("then", {}), schema.get("else", {})]
    for branch in branches:
        for name, sub in branch.get("properties", {}).items():
            if key in sub.get("properties", {}):
                return f" (it belongs under {name!r})"
    return ""


class _SchemaFacts(NamedTuple):
    """What the messages need to know about the schema, read from it rather than repeated."""

    duration_pattern: str
    id_pattern: str
    config_keys: Mapping[str, frozenset[str]]  # step type -> the keys of its `config`


@functools.cache
def _schema_facts() -> _SchemaFacts:
    definitions = workflow_schema()["definitions"]
    step = definitions["step"]
    agent = step["if"]["properties"]["type"]["const"]
    script = next(kind for kind in step["properties"]["type"]["enum"] if kind != agent)
    return _SchemaFacts(
        duration_pattern=definitions["duration"]["pattern"],
        id_pattern=definitions["stepId"]["pattern"],
        config_keys={
            agent: frozenset(definitions["agentConfig"]["properties"]),
            script: frozenset(definitions["scriptConfig"]["properties"]),
        },
    )
