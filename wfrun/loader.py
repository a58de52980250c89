"""Reading workflow files: YAML nodes with positions -> JSON Schema -> semantic checks -> model.

This is the only module that imports PyYAML and jsonschema. Every problem found in one pass is
collected, and `load_workflow` raises a single `WorkflowError` carrying all of them, each pointing
at the offending key as FILE:LINE:COL.
"""

from __future__ import annotations

import functools
import gc
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from wfrun.checks import (
    DeclaredAgent,
    JsonPath,
    Source,
    check_agents,
    check_workflow,
    declared_agents,
    requested_units,
)
from wfrun.durations import bare_number_message, parse_duration
from wfrun.errors import Diagnostic, UnreadableFileError, WorkflowError
from wfrun.model import (
    DEFAULT_MAX_CONCURRENCY,
    Agent,
    AgentConfig,
    OutputFormat,
    ParallelConfig,
    Position,
    PromptMode,
    ScriptConfig,
    Step,
    StepParallel,
    StepType,
    Workflow,
    frozen_map,
)
from wfrun.schemas import workflow_schema
from wfrun.suggest import closest, did_you_mean

if TYPE_CHECKING:
    from jsonschema import Draft7Validator, ValidationError

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR, _MERGE = _TAG + "str", _TAG + "merge"
_TYPED_SCALARS = frozenset(_TAG + name for name in ("int", "float", "bool", "null"))
_SCALARS = yaml.constructor.SafeConstructor()
_DECIMAL = re.compile(r"\d+(\.\d+)?")


# ---- public API ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentsFile:
    """A parsed `--agents` file: its agents, and the problems found in it."""

    source: Source | None
    diagnostics: tuple[Diagnostic, ...] = ()


def load_workflow(path: str | os.PathLike[str], *, agents_file: str | None = None) -> Workflow:
    """Read, validate and build the workflow at `path`; raise WorkflowError with every problem.

    `agents_file` names an `--agents` file whose agents are merged under the workflow's own.
    A file that cannot be read at all raises UnreadableFileError.
    """
    extra = read_agents_file(agents_file) if agents_file is not None else None
    return load_workflow_text(
        _read_text(path), str(path), base_dir=Path(path).absolute().parent, extra_agents=extra
    )


def load_workflow_text(
    text: str,
    file: str = "<string>",
    base_dir: Path | None = None,
    extra_agents: AgentsFile | None = None,
) -> Workflow:
    """Validate and build a workflow from YAML text; raise WorkflowError with every problem.

    `file` is the name diagnostics carry (and the default workflow name, by its stem);
    `base_dir` defaults to its folder; `extra_agents` come from `read_agents_file`.
    """
    with _gc_paused():
        # The node tree dies with `_load`'s frame, before the collector is back to scan it.
        workflow, found = _load(text, file, base_dir, extra_agents)
    if workflow is None:
        raise WorkflowError(found)
    return workflow


def _load(
    text: str, file: str, base_dir: Path | None, extra_agents: AgentsFile | None
) -> tuple[Workflow | None, list[Diagnostic]]:
    data, problems, tree = _parse(text, file, _empty_workflow_message)
    if not _quickly_valid(data):
        problems += _validate(data, tree, file, "workflow", _workflow_validator())
    source = Source.validated(file, data, tree.locate, _broken_paths(problems))
    found = [p.diagnostic for p in problems]
    agents = declared_agents(source)
    if extra_agents is not None:
        found += extra_agents.diagnostics
        if extra_agents.source is not None:
            # The workflow's own agents win over those of the agents file.
            agents = {**declared_agents(extra_agents.source), **agents}
    if data is not None:
        found += check_workflow(source, agents) + check_agents(source)
    if found:
        return None, list(dict.fromkeys(found))  # aliases can repeat a problem: once is enough
    return _build_workflow(source, agents, file, base_dir), []


def read_agents_file(path: str | os.PathLike[str]) -> AgentsFile:
    """Read an `--agents` file: a YAML mapping with one top-level key, `agents:`, laid out like
    the workflow's own `agents:` section. Its problems are returned, not raised, so that they are
    reported together with the workflow's."""
    return parse_agents_text(_read_text(path), str(path))


def parse_agents_text(text: str, file: str = "<agents>") -> AgentsFile:
    """Parse and validate the text of an agents file (see `read_agents_file`)."""
    with _gc_paused():
        data, problems, tree = _parse(text, file, _empty_agents_message)
        problems += _validate(data, tree, file, "agents file", _agents_validator())
        source = Source.validated(file, data, tree.locate, _broken_paths(problems), "agents file")
    found = [p.diagnostic for p in problems]
    if data is not None:
        found += check_agents(source)
    return AgentsFile(source if data is not None else None, tuple(found))


def _broken_paths(problems: list[_Problem]) -> list[JsonPath]:
    return [problem.path for problem in problems if problem.path is not None]


def _empty_workflow_message() -> str:
    return "the file is empty: a workflow needs at least a 'steps' list"


def _empty_agents_message() -> str:
    return "the file is empty: an agents file needs an 'agents' mapping"


# ---- reading ---------------------------------------------------------------------------------


def _read_text(path: str | os.PathLike[str]) -> str:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnreadableFileError(f"{path}: is a directory, not a workflow file") from None
    except OSError as error:
        raise UnreadableFileError(f"{path}: cannot read it: {error.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        message = f"{path}: not UTF-8 text (invalid byte at offset {error.start})"
        raise UnreadableFileError(message) from None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file is loaded.

    The node tree of 10,000 steps is about a million objects that live until the model is built;
    the collector would rescan all of them again and again (5x the parsing time). They form no
    cycles, so reference counting frees them as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---- YAML nodes -> plain values with positions -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    """A diagnostic and the path it is about: the semantic checks skip what the schema rejected.
    YAML-level problems (duplicate keys, tags) have no path: they break nothing downstream."""

    path: JsonPath | None
    diagnostic: Diagnostic


def _parse(
    text: str, file: str, empty_message: Callable[[], str]
) -> tuple[Any, list[_Problem], _Tree]:
    """The plain data of `text` (None when it has none), its problems and its node tree."""
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)
    except yaml.MarkedYAMLError as error:
        return None, [_Problem((), _syntax_diagnostic(error, text, file))], _Tree(None)
    if root is None:
        return None, [_Problem((), Diagnostic(file, 1, 1, empty_message()))], _Tree(None)
    converter = _Converter(file)
    data = converter.value(root)
    return data, converter.problems, _Tree(root)


def _syntax_diagnostic(error: yaml.MarkedYAMLError, text: str, file: str) -> Diagnostic:
    mark = error.problem_mark or error.context_mark
    line, col = (mark.line, mark.column) if mark is not None else (0, 0)
    lines = text.splitlines()
    line_text = lines[line] if line < len(lines) else ""
    indent = line_text[: len(line_text) - len(line_text.lstrip(" \t"))]
    if "\t" in indent:
        message = (
            "tab character in the indentation: YAML indents with spaces only (replace the tabs)"
        )
        return Diagnostic(file, line + 1, indent.index("\t") + 1, message)
    return Diagnostic(file, line + 1, col + 1, _syntax_message(error, mark))


def _syntax_message(error: yaml.MarkedYAMLError, mark: yaml.Mark | None) -> str:
    if error.problem == "but found another document":
        return "invalid YAML: a second document starts here (a workflow file holds one document)"
    message = f"invalid YAML: {error.problem or 'syntax error'}"
    if error.context and error.context_mark is not None and error.context_mark != mark:
        message += f" ({error.context} started at line {error.context_mark.line + 1})"
    elif error.context:
        message += f" ({error.context})"
    return message


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _key_text(node: yaml.Node) -> str | None:
    # Keys stay the text the user wrote: `on:` or `1:` are names here, not booleans or numbers.
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _entries(node: yaml.MappingNode) -> list[tuple[str | None, yaml.Node, yaml.Node]]:
    """The (key, key node, value node) of a mapping, merge keys (`<<: *base`) resolved."""
    explicit: list[tuple[str | None, yaml.Node, yaml.Node]] = []
    merged: list[tuple[str | None, yaml.Node, yaml.Node]] = []
    for key, value in node.value:
        if key.tag == _MERGE:
            for base in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                if isinstance(base, yaml.MappingNode):
                    merged += _entries(base)
        else:
            explicit.append((_key_text(key), key, value))
    if not merged:
        return explicit
    seen = {key for key, _, _ in explicit}
    for entry in merged:
        if entry[0] not in seen:  # keys written in the mapping itself win over merged ones
            seen.add(entry[0])
            explicit.append(entry)
    return explicit


class _Converter:
    """Turns a node tree into dicts, lists and scalars, collecting what YAML lets through but a
    workflow cannot have: duplicate keys, non-string keys, custom tags, recursive aliases."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[_Problem] = []
        self._open: set[int] = set()  # collections being converted, to catch recursive aliases

    def problem(self, node: yaml.Node, message: str) -> None:
        position = _position(node)
        diagnostic = Diagnostic(self.file, position.line, position.col, message)
        self.problems.append(_Problem(None, diagnostic))

    def value(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if id(node) in self._open:
            self.problem(node, "an alias refers to a node that contains it (recursive alias)")
            return None
        if not node.tag.startswith(_TAG):
            self.problem(node, f"unsupported YAML tag {node.tag!r}")
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node)
            return [self.value(item) for item in node.value]
        finally:
            self._open.discard(id(node))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag in _TYPED_SCALARS:
            return _SCALARS.yaml_constructors[tag](_SCALARS, node)
        if not tag.startswith(_TAG):
            self.problem(node, f"unsupported YAML tag {tag!r}")
        # Timestamps, binary and the like keep their text: the workflow format has no such type.
        return node.value

    def mapping(self, node: yaml.MappingNode) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key, key_node, value_node in self._checked_entries(node):
            if key is None:
                self.problem(key_node, "a key must be a plain name, not a list or a mapping")
            elif key in first_line:
                self.problem(key_node, f"duplicate key {key!r} (first at line {first_line[key]})")
            else:
                first_line[key] = key_node.start_mark.line + 1
                result[key] = self.value(value_node)
        return result

    def _checked_entries(
        self, node: yaml.MappingNode
    ) -> list[tuple[str | None, yaml.Node, yaml.Node]]:
        for key, value in node.value:
            if key.tag != _MERGE:
                continue
            bases = value.value if isinstance(value, yaml.SequenceNode) else [value]
            if not all(isinstance(base, yaml.MappingNode) for base in bases):
                self.problem(key, "'<<' merges mappings only")
        return _entries(node)


class _Tree:
    """The node tree of a file, kept to find where a path is written and what text it has."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def nodes_at(self, path: JsonPath) -> tuple[yaml.Node | None, yaml.Node | None]:
        """The key node (None for list items and the root) and the value node at `path`."""
        key_node: yaml.Node | None = None
        node = self.root
        for part in path:
            if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                key_node, node = None, node.value[part]
            elif isinstance(node, yaml.MappingNode):
                match = next((entry for entry in _entries(node) if entry[0] == part), None)
                if match is None:
                    break
                _, key_node, node = match
            else:
                break
        return key_node, node

    def locate(self, path: JsonPath) -> Position:
        """Where the key of `path` is written (or the item itself, inside a list)."""
        key_node, node = self.nodes_at(path)
        shown = key_node if key_node is not None else node
        return _position(shown) if shown is not None else Position(1, 1)

    def raw(self, path: JsonPath) -> str | None:
        """The text the user wrote for the scalar at `path`, for messages such as "quote it"."""
        _, node = self.nodes_at(path)
        return node.value if isinstance(node, yaml.ScalarNode) else None


# ---- JSON Schema validation ------------------------------------------------------------------


@functools.cache
def _workflow_validator() -> Draft7Validator:
    return _compiled(_inline_refs(workflow_schema()))


@functools.cache
def _agents_validator() -> Draft7Validator:
    schema = _inline_refs(workflow_schema())
    agents_file = {
        "type": "object",
        "additionalProperties": False,
        "required": ["agents"],
        "properties": {"agents": schema["properties"]["agents"]},
    }
    return _compiled(agents_file)


def _compiled(schema: dict[str, Any]) -> Draft7Validator:
    from jsonschema import Draft7Validator  # lazily: `wfrun --help` must not pay for it

    return Draft7Validator(schema)


# Above this many steps, compiling the schema to Python code once (~30 ms) costs less than
# jsonschema's interpretation (~90 µs a step).
QUICK_CHECK_STEPS = 300


def _quickly_valid(data: Any) -> bool:
    """True when a large document is valid by fastjsonschema's compiled validator.

    Only a pre-check: fastjsonschema stops at the first error and cannot say where, so a document
    it rejects (or a small one) goes through jsonschema, which reports every error with its path.
    """
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        return False
    if len(data["steps"]) < QUICK_CHECK_STEPS:
        return False
    from fastjsonschema import JsonSchemaException

    try:
        _compiled_check()(data)
    except JsonSchemaException:
        return False
    return True


@functools.cache
def _compiled_check() -> Callable[[Any], Any]:
    import fastjsonschema

    check: Callable[[Any], Any] = fastjsonschema.compile(workflow_schema())
    return check


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


def _validate(
    data: Any, tree: _Tree, file: str, kind: str, validator: Draft7Validator
) -> list[_Problem]:
    if data is None:
        return []
    explainer = _Explainer(Source(file, data, tree.locate, kind=kind), tree)
    return [
        problem for error in validator.iter_errors(data) for problem in explainer.explain(error)
    ]


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

    def __init__(self, source: Source, tree: _Tree) -> None:
        self.source = source
        self.tree = tree
        self.facts = _schema_facts()

    def explain(self, error: ValidationError) -> list[_Problem]:
        path: JsonPath = tuple(error.absolute_path)
        if self.under_unknown_type(path):
            return []  # the config of a step of an unknown type: the type's message says it all
        handler = getattr(self, f"_{error.validator}", None)
        if handler is None:
            return [self.problem(path, f"{self.name(path)}: {error.message}")]
        found: list[_Problem] = handler(error, path)
        return found

    def problem(self, path: JsonPath, message: str) -> _Problem:
        return _Problem(path, self.source.at(path, message))

    def step_type(self, path: JsonPath) -> Any:
        """The `type` of the step `path` is in (the default when it has none), else None."""
        if len(path) < 2 or path[0] != "steps" or not isinstance(path[1], int):
            return None
        step = self.source.data["steps"][path[1]]
        return step.get("type", "script") if isinstance(step, dict) else None

    def under_unknown_type(self, path: JsonPath) -> bool:
        return path[2:3] == ("config",) and self.step_type(path) not in self.facts.config_keys

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
        shown = self.tree.raw(path) or str(value)
        return f"got {kind} {shown!r}" if kind == "string" else f"got {kind} {shown}"

    def _type(self, error: ValidationError, path: JsonPath) -> list[_Problem]:
        value, expected = error.instance, error.validator_value
        if error.schema.get("pattern") == self.facts.duration_pattern:
            return [self.problem(path, self.duration_message(path, value))]
        wanted = " or ".join(
            _EXPECTED[t] for t in ([expected] if isinstance(expected, str) else expected)
        )
        message = f"{self.name(path)} must be {wanted}, {self.got(path, value)}"
        if expected == "string" and _kind(value) in ("integer", "number", "boolean"):
            message += f' (quote it: "{self.tree.raw(path) or value}")'
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

    def _pattern(self, error: ValidationError, path: JsonPath) -> list[_Problem]:
        if error.validator_value == self.facts.duration_pattern:
            return [self.problem(path, self.duration_message(path, error.instance))]
        if error.validator_value == self.facts.id_pattern:
            message = f"invalid step id {error.instance!r}: use only letters, digits, '_' and '-'"
            return [self.problem(path, message)]
        message = f"{self.name(path)} must match {error.validator_value}, got {error.instance!r}"
        return [self.problem(path, message)]

    def _additionalProperties(self, error: ValidationError, path: JsonPath) -> list[_Problem]:
        allowed = list(error.schema.get("properties", {}))
        found = []
        for key in error.instance:
            if key not in allowed:
                hint = (
                    did_you_mean(key, allowed)
                    or self.other_type_hint(key, path)
                    or _nested_hint(key, error.schema)
                )
                if path:
                    message = f"unknown key {key!r} {self.source.place(path)}{hint}"
                else:
                    message = f"unknown top-level key {key!r}{hint}"
                found.append(self.problem((*path, key), message))
        return found

    def _required(self, error: ValidationError, path: JsonPath) -> list[_Problem]:
        allowed = list(error.schema.get("properties", {}))
        extras = [key for key in error.instance if key not in allowed]
        found = []
        for key in error.validator_value:
            # A misspelt key already says "did you mean 'id'?": no second message for the same slip.
            if key in error.instance or any(closest(e, allowed) == key for e in extras):
                continue
            message = f"{self.name(path)} is missing required key {key!r}"
            found.append(_Problem((*path, key), self.source.at(path, message)))
        return found

    def _enum(self, error: ValidationError, path: JsonPath) -> list[_Problem]:
        choices = [str(choice) for choice in error.validator_value]
        hint = did_you_mean(error.instance, choices) if isinstance(error.instance, str) else ""
        value = error.instance
        got = f"got {value!r}" if isinstance(value, str) else self.got(path, value)
        message = f"{self.name(path)} must be one of {', '.join(choices)}, {got}{hint}"
        return [self.problem(path, message)]

    def _minimum(self, error: ValidationError, path: JsonPath) -> list[_Problem]:
        message = (
            f"{self.name(path)} must be at least {error.validator_value}, got {error.instance}"
        )
        return [self.problem(path, message)]

    def _minItems(self, error: ValidationError, path: JsonPath) -> list[_Problem]:
        return [self.problem(path, f"{self.name(path)} must not be empty")]

    _minProperties = _minItems

    def _uniqueItems(self, error: ValidationError, path: JsonPath) -> list[_Problem]:
        seen: list[Any] = []
        for index, item in enumerate(error.instance):
            if item in seen:
                message = f"{self.name(path)} lists {item!r} twice"
                return [self.problem((*path, index), message)]
            seen.append(item)
        return []

    def _oneOf(self, error: ValidationError, path: JsonPath) -> list[_Problem]:
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


def _nested_hint(key: str, schema: Mapping[str, Any]) -> str:
    """` (it belongs under 'config')` when `key` is a key of one of the mapping's sub-mappings."""
    branches = [schema, schema.get("then", {}), schema.get("else", {})]
    for branch in branches:
        for name, sub in branch.get("properties", {}).items():
            if key in sub.get("properties", {}):
                return f" (it belongs under {name!r})"
    return ""


@dataclass(frozen=True, slots=True)
class _SchemaFacts:
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


# ---- the model -------------------------------------------------------------------------------


def _seconds(value: str | None) -> float | None:
    return parse_duration(value) if value is not None else None


def _build_workflow(
    source: Source, agents: Mapping[str, DeclaredAgent], file: str, base_dir: Path | None
) -> Workflow:
    data: dict[str, Any] = source.data
    built_agents = {name: _build_agent(agent) for name, agent in agents.items()}
    anonymous = file.startswith("<")
    return Workflow(
        name=data.get("name", "workflow" if anonymous else Path(file).stem),
        steps=tuple(
            _build_step(source, index, built_agents) for index in range(len(data["steps"]))
        ),
        version=data.get("version"),
        description=data.get("description"),
        env=frozen_map(data.get("env")),
        timeout=_seconds(data.get("timeout")),
        metadata=frozen_map(data.get("metadata")),
        parallel=_build_parallel(data.get("parallel", {})),
        agents=frozen_map(built_agents),
        file=None if anonymous else Path(file),
        base_dir=base_dir if base_dir is not None else Path(file).parent,
    )


def _build_parallel(data: dict[str, Any]) -> ParallelConfig:
    return ParallelConfig(
        enabled=data.get("enabled", True),
        default_max_concurrency=data.get("defaultMaxConcurrency", DEFAULT_MAX_CONCURRENCY),
        resources=frozen_map(data.get("resources")),
    )


def _build_step(source: Source, index: int, agents: Mapping[str, Agent]) -> Step:
    data: dict[str, Any] = source.data["steps"][index]
    step_type = StepType(data.get("type", "script"))
    config = data["config"]
    parallel = data.get("parallel", {})
    return Step(
        id=data["id"],
        name=data.get("name", data["id"]),
        type=step_type,
        config=(
            _agent_config(config, agents[config["agent"]])
            if step_type is StepType.AGENT
            else _script_config(config)
        ),
        depends_on=tuple(data.get("dependsOn", ())),
        parallel=StepParallel(
            enabled=parallel.get("enabled", True),
            max_concurrency=parallel.get("maxConcurrency"),
            resources=frozen_map(requested_units(parallel.get("resource"))),
            isolate_errors=parallel.get("isolateErrors", True),
        ),
        continue_on_error=data.get("continueOnError", False),
        index=index,
        position=source.locate(("steps", index, "id")),
    )


def _script_config(data: dict[str, Any]) -> ScriptConfig:
    return ScriptConfig(
        command=data["command"],
        args=tuple(data.get("args", ())),
        shell=data.get("shell", False),
        working_directory=data.get("workingDirectory"),
        env=frozen_map(data.get("env")),
        timeout=_seconds(data.get("timeout")),
    )


def _agent_config(data: dict[str, Any], agent: Agent) -> AgentConfig:
    timeout = _seconds(data.get("timeout"))
    return AgentConfig(
        agent=data["agent"],
        prompt=data["prompt"],
        parameters=frozen_map({**agent.parameters, **data.get("parameters", {})}),
        working_directory=data.get("workingDirectory"),
        env=frozen_map(data.get("env")),
        # The agent's timeout is the default of its steps, so `step.timeout` is the one to apply.
        timeout=timeout if timeout is not None else agent.timeout,
    )


def _build_agent(agent: DeclaredAgent) -> Agent:
    data: dict[str, Any] = agent.data
    return Agent(
        name=agent.name,
        command=tuple(data["command"]),
        prompt=PromptMode(data.get("prompt", "stdin")),
        output=OutputFormat(data.get("output", "text")),
        result=data.get("result"),
        parameters=frozen_map(data.get("parameters")),
        env=frozen_map(data.get("env")),
        timeout=_seconds(data.get("timeout")),
        position=agent.source.locate(agent.path),
    )
