"""Reading a workflow or agents file and turning its PyYAML nodes into plain values with positions.

This module's one job is the YAML side of loading: it reads the file's text, composes the node
tree, converts it into dicts, lists and scalars while collecting what YAML lets through but a
workflow cannot have (duplicate keys, non-string keys, custom tags, recursive aliases), and keeps
the tree to tell where a path is written. It is the only module that imports PyYAML.
"""

import functools
import gc
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from wfrun.checks import JsonPath
from wfrun.errors import Diagnostic, UnreadableFileError
from wfrun.model import Position

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR, _MERGE = _TAG + "str", _TAG + "merge"
_NULL = _TAG + "null"
_TYPED_SCALARS = frozenset(_TAG + name for name in ("int", "float", "bool", "null"))
_NUMBERS = frozenset((_TAG + "int", _TAG + "float"))
_MAX_NUMBER_TEXT = 100  # digits and signs: far beyond any count or duration, far below 4,300
_SCALARS = yaml.constructor.SafeConstructor()
# The standard tags the safe loader knows (`!!str`, `!!map`, `!!timestamp`, ...), and merges.
_KNOWN_TAGS = frozenset(
    {tag for tag in yaml.constructor.SafeConstructor.yaml_constructors if tag is not None}
    | {_MERGE}
)


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


class Problem(NamedTuple):
    """A diagnostic and the path it is about: the semantic checks skip what the schema rejected.
    YAML-level problems (duplicate keys, tags) have no path: they break nothing downstream."""

    path: JsonPath | None
    diagnostic: Diagnostic


# Limits that keep the work of loading bounded by the size of the file (README, "Limits").
MAX_DEPTH = 100  # nesting levels of lists and mappings, aliases expanded
ALIAS_GROWTH = 100_000  # values aliases may add to a document beyond its own size (if larger)


@functools.cache
def _not_printable() -> re.Pattern[str]:
    # What PyYAML's reader refuses: control characters other than tab, line feed and carriage
    # return, and the non-characters. Searched for only when the reader has refused something,
    # to say where; compiled then too (these ranges cost ~8 ms at every start otherwise).
    return re.compile(r"[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


_SHOWN_CONTROLS = 10
_NUL_MESSAGE = "a NUL character (\\0) cannot be passed to a program or its environment: remove it"


def parse(
    text: str, file: str, empty_message: Callable[[], str]
) -> tuple[Any, list[Problem], "Tree"]:
    """The plain data of `text` (None when it has none), its problems and its node tree."""
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)
    except yaml.MarkedYAMLError as error:
        return None, [Problem((), _syntax_diagnostic(error, text, file))], Tree(None)
    except (yaml.YAMLError, UnicodeError) as error:  # the reader: control characters, encoding
        return None, [Problem((), d) for d in _reader_diagnostics(error, text, file)], Tree(None)
    except RecursionError:
        # The composer recurses once per nesting level; a file this deep is not a workflow.
        message = f"invalid YAML: lists and mappings nested more than {MAX_DEPTH} levels deep"
        return None, [Problem((), Diagnostic(file, 1, 1, message))], Tree(None)
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL):
        position = _position(root) if root is not None else Position(1, 1)
        diagnostic = Diagnostic(file, position.line, position.col, empty_message())
        return None, [Problem((), diagnostic)], Tree(None)
    converter = _Converter(file)
    data = converter.value(root, 0)
    problem = converter.alias_problem(root)
    if problem is not None:
        # The data shares what the aliases point at, but every later stage walks it as a tree:
        # it must not see a document that expands to billions of values.
        return None, [*converter.problems, problem], Tree(None)
    return data, converter.problems, Tree(root, text)


def _reader_diagnostics(error: Exception, text: str, file: str) -> list[Diagnostic]:
    """Where the characters the YAML reader refuses are, each with what to write instead."""
    found: list[Diagnostic] = []
    for match in _not_printable().finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        col = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        code = ord(match.group())
        message = (
            f"control character U+{code:04X} is not allowed in YAML "
            f'(to mean it, write "\\x{code:02x}" inside a double-quoted string)'
            if code < 0x100
            else f"character U+{code:04X} is not allowed in YAML"
        )
        found.append(Diagnostic(file, line, col, message))
        if len(found) == _SHOWN_CONTROLS:
            break
    if not found:
        found.append(Diagnostic(file, 1, 1, f"invalid YAML: {error}"))
    return found


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
    message = _syntax_message(error, mark)
    if error.problem == "found undefined alias":  # name it: `*defaults` is what to look for
        alias = re.match(r"\*([^\s,\[\]{}]+)", line_text[col:])
        if alias is not None:
            message = (
                f"invalid YAML: undefined alias '*{alias[1]}' (no anchor '&{alias[1]}' before it)"
            )
    return Diagnostic(file, line + 1, col + 1, message)


def _syntax_message(error: yaml.MarkedYAMLError, mark: yaml.Mark | None) -> str:
    if error.problem == "but found another document":
        return "invalid YAML: a second document starts here (a workflow file holds one document)"
    if error.problem == "exceeded maximum nesting depth":  # libyaml's own limit (1,000 levels)
        return f"invalid YAML: lists and mappings nested more than {MAX_DEPTH} levels deep"
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


Entry = tuple[str | None, yaml.Node, yaml.Node]  # (key, key node, value node)


class _Entries:
    """The entries of mappings, merge keys (`<<: *base`) resolved, each mapping's once.

    Remembered per node: a base merged into a thousand steps is resolved once, and a chain of
    merges that doubles at each link costs its length, not two to the power of it.
    """

    def __init__(self) -> None:
        self._cache: dict[int, list[Entry]] = {}
        self._index: dict[int, dict[str | None, Entry]] = {}

    def of(self, node: yaml.MappingNode, depth: int = 0) -> list[Entry]:
        cached = self._cache.get(id(node))
        if cached is not None:
            return cached
        self._cache[id(node)] = []  # a mapping merged into itself adds nothing
        explicit: list[Entry] = []
        merged: list[Entry] = []
        for key, value in node.value:
            if key.tag == _MERGE:
                for base in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                    if isinstance(base, yaml.MappingNode) and depth < MAX_DEPTH:
                        merged += self.of(base, depth + 1)
            else:
                explicit.append((_key_text(key), key, value))
        if merged:
            seen = {key for key, _, _ in explicit}
            for entry in merged:
                if entry[0] not in seen:  # keys written in the mapping itself win over merged
                    seen.add(entry[0])
                    explicit.append(entry)
        self._cache[id(node)] = explicit
        return explicit

    def find(self, node: yaml.MappingNode, key: str | int) -> Entry | None:
        """The entry of `key`, through an index: locating 100,000 keys must not scan 100,000."""
        index = self._index.get(id(node))
        if index is None:
            index = {}
            for entry in self.of(node):
                index.setdefault(entry[0], entry)
            self._index[id(node)] = index
        return index.get(key) if isinstance(key, str) else None


class _Converter:
    """Turns a node tree into dicts, lists and scalars, collecting what YAML lets through but a
    workflow cannot have: duplicate keys, non-string keys, tags, recursive aliases, NUL
    characters, nesting deeper than MAX_DEPTH.

    A node reached again through an alias is converted once and its value shared; the converter
    counts the values the document would have with every alias expanded (`expanded`) against
    the nodes it really has (`own`), so an alias bomb is refused instead of walked.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.entries = _Entries()
        self.own = 0
        self.expanded = 0
        self._open: set[int] = set()  # collections being converted, to catch recursive aliases
        self._done: dict[int, tuple[Any, int]] = {}  # node -> (value, expanded size)
        self._too_deep = False

    def problem(self, node: yaml.Node, message: str) -> None:
        position = _position(node)
        diagnostic = Diagnostic(self.file, position.line, position.col, message)
        self.problems.append(Problem(None, diagnostic))

    def alias_problem(self, root: yaml.Node) -> Problem | None:
        limit = max(ALIAS_GROWTH, self.own)
        if self.expanded - self.own <= limit:
            return None
        message = (
            f"aliases expand this document to {self.expanded:,} values from its {self.own:,}: "
            f"more than {limit:,} added values is refused (an alias bomb?)"
        )
        position = _position(root)
        return Problem((), Diagnostic(self.file, position.line, position.col, message))

    def value(self, node: yaml.Node, depth: int) -> Any:
        if isinstance(node, yaml.ScalarNode):
            self.own += 1
            self.expanded += 1
            if node.tag == _STR and "\x00" not in node.value:
                return node.value  # most scalars: a plain string, nothing to check
            return self.scalar(node)
        done = self._done.get(id(node))
        if done is not None:
            self.expanded += done[1]
            return done[0]
        if id(node) in self._open:
            self.problem(node, "an alias refers to a node that contains it (recursive alias)")
            return None
        if depth >= MAX_DEPTH:
            if not self._too_deep:
                self._too_deep = True
                self.problem(node, f"lists and mappings nested more than {MAX_DEPTH} levels deep")
            return None
        self._check_tag(node, node.tag)
        before = self.expanded
        self.own += 1
        self.expanded += 1
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                value: Any = self.mapping(node, depth)
            else:
                value = [self.value(item, depth + 1) for item in node.value]
        finally:
            self._open.discard(id(node))
        self._done[id(node)] = (value, self.expanded - before)
        return value

    def _check_tag(self, node: yaml.Node, tag: str) -> None:
        if tag in _KNOWN_TAGS:
            return
        shown = "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
        if tag.startswith(_TAG + "python/"):
            message = (
                f"unsupported YAML tag {shown!r}: wfrun never builds Python objects from a file "
                "(remove the tag)"
            )
        else:
            message = f"unsupported YAML tag {shown!r}"
        self.problem(node, message)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag == _STR:
            if "\x00" in node.value:
                self.problem(node, _NUL_MESSAGE)
            return node.value
        if tag in _NUMBERS and len(node.value) > _MAX_NUMBER_TEXT:
            # Python refuses to read integers of more than 4,300 digits; any number this long is
            # out of every range wfrun has, which the later stages say with the value's name.
            return -math.inf if node.value.lstrip().startswith("-") else math.inf
        if tag in _TYPED_SCALARS:
            return _SCALARS.yaml_constructors[tag](_SCALARS, node)
        self._check_tag(node, tag)
        # Timestamps, binary and the like keep their text: the workflow format has no such type.
        return node.value

    def mapping(self, node: yaml.MappingNode, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key, key_node, value_node in self._checked_entries(node):
            if key is None:
                self.problem(key_node, "a key must be a plain name, not a list or a mapping")
            elif key in first_line:
                self.problem(key_node, f"duplicate key {key!r} (first at line {first_line[key]})")
            else:
                if "\x00" in key:
                    self.problem(key_node, _NUL_MESSAGE)
                first_line[key] = key_node.start_mark.line + 1
                result[key] = self.value(value_node, depth + 1)
        return result

    def _checked_entries(self, node: yaml.MappingNode) -> list[Entry]:
        pairs = node.value
        if not any(key.tag == _MERGE for key, _ in pairs):
            # No merge key: its entries are its pairs, and no other mapping merges into them
            # through this one (nothing to remember).
            return [(_key_text(key), key, value) for key, value in pairs]
        for key, value in pairs:
            if key.tag != _MERGE:
                continue
            bases = value.value if isinstance(value, yaml.SequenceNode) else [value]
            if not all(isinstance(base, yaml.MappingNode) for base in bases):
                self.problem(key, "'<<' merges mappings only")
        return self.entries.of(node)


class Tree:
    """The node tree of a file, kept to find where a path is written and what text it has."""

    def __init__(self, root: yaml.Node | None, text: str = "") -> None:
        self.root = root
        self._entries = _Entries()
        self._text = text
        self._lines: list[str] | None = None

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
                match = self._entries.find(node, part)
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

    def locate_value(self, path: JsonPath) -> Position:
        """Where the value of `path` is written, for messages about the value itself."""
        key_node, node = self.nodes_at(path)
        shown = node if node is not None else key_node
        return _position(shown) if shown is not None else Position(1, 1)

    def raw(self, path: JsonPath) -> str | None:
        """The text the user wrote for the scalar at `path`, for messages such as "quote it"."""
        _, node = self.nodes_at(path)
        return node.value if isinstance(node, yaml.ScalarNode) else None

    def locate_inside(self, path: JsonPath, offset: int) -> Position:
        """Where character `offset` of the string at `path` is written: a reference inside a
        long command is pointed at, not only its key. Escapes, quotes, folded lines and block
        scalars are followed back to the text the user wrote."""
        _, node = self.nodes_at(path)
        if not isinstance(node, yaml.ScalarNode):
            return self.locate_value(path)
        if self._lines is None:
            self._lines = [line.removesuffix("\r") for line in self._text.split("\n")]
        start, end = node.start_mark, node.end_mark
        found: Position | None = None
        if node.style in ("|", ">"):
            found = _inside_block(self._lines, start.line + 1, end.line, offset)
        else:
            raw = self._text[start.index : end.index]
            found_at = _inside_flow(raw, node.style, offset)
            if found_at is not None:
                line, col = found_at
                found = Position(
                    start.line + 1 + line, (start.column if line == 0 else 0) + col + 1
                )
        return found or _position(node)


def _inside_block(lines: list[str], first: int, last: int, offset: int) -> Position | None:
    """Lines `first`.. hold a block scalar's content, indented as its first non-empty line;
    each gives its text plus one character (the newline, or the space it is folded into)."""
    content = lines[first : last + 1]
    indent = next((len(ln) - len(ln.lstrip(" ")) for ln in content if ln.strip()), None)
    if indent is None:
        return None
    for k, line in enumerate(content):
        if line.strip() and len(line) - len(line.lstrip(" ")) < indent:
            return None  # past the scalar: the next key
        width = max(len(line) - indent, 0) + 1
        if offset < width:
            return Position(first + k + 1, indent + offset + 1)
        offset -= width
    return None


_ESCAPE_LENGTHS = {"x": 4, "u": 6, "U": 10}  # `\\x41`, `\\u00e9`: the whole escape


def _inside_flow(raw: str, style: str | None, offset: int) -> tuple[int, int] | None:
    """(line, column), both 0-based within `raw`, of the character `offset` of the value of a
    plain or quoted scalar written as `raw`: escapes and doubled quotes are one character,
    a line break folds into a space, indentation on the next line is not part of the value."""
    chars: list[tuple[str, int]] = []  # each character of the value, and where it stands
    i = 1 if style in ("'", '"') else 0
    stop = len(raw) - (1 if style in ("'", '"') else 0)
    while i < stop:
        c = raw[i]
        if c == "\n" or c == "\r":
            while chars and chars[-1][0] in " \t":
                chars.pop()
            j = i
            blank = 0
            while j < stop and raw[j] in " \t\r\n":
                if raw[j] == "\n":
                    blank += 1
                j += 1
            chars.extend(("\n", i) for _ in range(blank - 1))
            if blank == 1:
                chars.append((" ", i))
            i = j
        elif style == '"' and c == "\\" and i + 1 < stop:
            if raw[i + 1] in "\r\n":  # an escaped line break: nothing
                i += 2
                while i < stop and raw[i] in " \t\r\n":
                    i += 1
                continue
            chars.append(("?", i))
            i += _ESCAPE_LENGTHS.get(raw[i + 1], 2)
        elif style == "'" and c == "'" and i + 1 < stop and raw[i + 1] == "'":
            chars.append(("'", i))
            i += 2
        else:
            chars.append((c, i))
            i += 1
    if offset >= len(chars):
        return None
    at = chars[offset][1]
    line = raw.count("\n", 0, at)
    col = at - (raw.rfind("\n", 0, at) + 1)
    return line, col
