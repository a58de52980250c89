"""Reading a workflow or agents file and turning its PyYAML nodes into plain values with positions.

This module's one job is the YAML side of loading: it reads the file's text, composes the node
tree, converts it into dicts, lists and scalars while collecting what YAML lets through but a
workflow cannot have (duplicate keys, non-string keys, custom tags, recursive aliases), and keeps
the tree to tell where a path is written. It is the only module that imports PyYAML.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wfrun.checks import JsonPath
from wfrun.errors import Diagnostic, UnreadableFileError
from wfrun.model import Position

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR, _MERGE = _TAG + "str", _TAG + "merge"
_TYPED_SCALARS = frozenset(_TAG + name for name in ("int", "float", "bool", "null"))
_SCALARS = yaml.constructor.SafeConstructor()


# ---- reading ---------------------------------------------------------------------------------


def read_text(path: str | os.PathLike[str]) -> str:
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
def gc_paused() -> Iterator[None]:
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
class Problem:
    """A diagnostic and the path it is about: the semantic checks skip what the schema rejected.
    YAML-level problems (duplicate keys, tags) have no path: they break nothing downstream."""

    path: JsonPath | None
    diagnostic: Diagnostic


def parse(
    text: str, file: str, empty_message: Callable[[], str]
) -> tuple[Any, list[Problem], Tree]:
    """The plain data of `text` (None when it has none), its problems and its node tree."""
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)
    except yaml.MarkedYAMLError as error:
        return None, [Problem((), _syntax_diagnostic(error, text, file))], Tree(None)
    if root is None:
        return None, [Problem((), Diagnostic(file, 1, 1, empty_message()))], Tree(None)
    converter = _Converter(file)
    data = converter.value(root)
    return data, converter.problems, Tree(root)


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
        self.problems: list[Problem] = []
        self._open: set[int] = set()  # collections being converted, to catch recursive aliases

    def problem(self, node: yaml.Node, message: str) -> None:
        position = _position(node)
        diagnostic = Diagnostic(self.file, position.line, position.col, message)
        self.problems.append(Problem(None, diagnostic))

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


class Tree:
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
