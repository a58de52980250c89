"""`${{ … }}` references inside strings (SPEC §10.2) and `if:` conditions (§10.3). Pure: no I/O.

A string such as `--version=${{ steps.build.outputs.version }}` is a `Template`: literal text and
`Placeholder`s, each with its offsets in the string and its parsed expression (expressions.py).

    template = parse_template(arg)          # ExpressionError (offset in `arg`) on the first problem
    template_problems(arg)                  # every problem, for `validate` (empty when fine)
    template.references()                   # Reference objects, offsets in `arg`
    template.render(contexts)               # one string in, one string out

Rules:
- A `}}` inside a quoted string literal does not end a reference (`${{ format('{{0}}', x) }}`).
- `$${{` writes a literal `${{`; any other `$` (shell's `$$`, `$HOME`) is left alone.
- A `${{` never closed is an error at the `$`.
- `{{ steps.x.output }}`, `{{env.X}}`, `{{variables.X}}`, `{{parameters.X}}` — the references of
  the system this format comes from — are errors that show the `${{ }}` form to write
  (`origin_references` lists them with that form). Other `{{ … }}` text is left alone.
- `render` replaces each reference by its value's text (`expressions.to_text`) inside the
  string, so an argument stays one argument: nothing is split or parsed again.

`if:` may be written with or without `${{ }}`: `parse_condition` accepts `success() && x`,
`${{ success() && x }}`, and refuses a mix such as `${{ a }} && b` (GitHub would read that as a
non-empty string, always true).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from wfrun.expressions import (
    Expr,
    ExpressionError,
    FunctionCall,
    Reference,
    StatusFunctions,
    Value,
    calls,
    evaluate,
    parse,
    references,
    to_text,
    truthy,
)

OPEN = "${{"
CLOSE = "}}"
ESCAPED_OPEN = "$${{"


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One `${{ EXPR }}` in a string: `start` is the offset of its `$`, `end` the offset just past
    its `}}`; `source` is EXPR as written and `source_offset` where it starts in the string."""

    start: int
    end: int
    source: str
    source_offset: int
    expression: Expr

    def references(self) -> tuple[Reference, ...]:
        """The context paths it reads, offsets in the enclosing string."""
        return tuple(r.shifted(self.source_offset) for r in references(self.expression))

    def calls(self) -> tuple[FunctionCall, ...]:
        """The functions it calls, offsets in the enclosing string."""
        return tuple(
            FunctionCall(c.function, c.offset + self.source_offset) for c in calls(self.expression)
        )

    def render(self, contexts: Mapping[str, Value], status: StatusFunctions | None = None) -> str:
        """The value's text; an ExpressionError has its offset in the enclosing string."""
        try:
            value = evaluate(self.expression, contexts, status)
        except ExpressionError as error:
            raise error.shifted(self.source_offset) from None
        try:
            return to_text(value)
        except ExpressionError as error:
            raise error.shifted(self.start) from None


@dataclass(frozen=True, slots=True)
class Template:
    """A string split into literal text (`$${{` already written as `${{`) and placeholders."""

    text: str
    parts: tuple[str | Placeholder, ...]

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """The `${{ }}` references, in order."""
        return tuple(p for p in self.parts if isinstance(p, Placeholder))

    @property
    def is_literal(self) -> bool:
        """True when the string has no reference (its value is `render({})`)."""
        return not self.placeholders

    def references(self) -> tuple[Reference, ...]:
        """Every context path read by any placeholder, offsets in the string."""
        return tuple(r for p in self.placeholders for r in p.references())

    def calls(self) -> tuple[FunctionCall, ...]:
        """Every function called by any placeholder, offsets in the string."""
        return tuple(c for p in self.placeholders for c in p.calls())

    def render(self, contexts: Mapping[str, Value], status: StatusFunctions | None = None) -> str:
        """The string with each reference replaced by its value's text."""
        return "".join(
            part if isinstance(part, str) else part.render(contexts, status) for part in self.parts
        )


@dataclass(frozen=True, slots=True)
class OriginReference:
    """A `{{ … }}` reference in the origin system's syntax, and the `${{ }}` form to write."""

    start: int
    end: int
    written: str
    replacement: str

    def problem(self) -> ExpressionError:
        """The validation error for it, at its `{{`."""
        return ExpressionError(
            f"{self.written!r} is the origin system's syntax and is not substituted; "
            f"write {self.replacement!r}",
            self.start,
        )


# `{{ name.name... }}`: a dotted path and nothing else, so `{{0}}` or `{{ x | y }}` is left alone.
_ORIGIN = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)+)\s*\}\}")
_ORIGIN_CONTEXTS = {
    "steps": "steps",
    "env": "env",
    "secrets": "env",
    "variables": "vars",
    "parameters": "vars",
    "params": "vars",
    "vars": "vars",
    "matrix": "matrix",
    "run": "run",
    "workflow": "workflow",
}


def _origin_replacement(path: list[str]) -> str:
    context = _ORIGIN_CONTEXTS[path[0].casefold()]
    rest = path[1:]
    if context == "steps" and len(rest) >= 2 and rest[1] in ("output", "outputs", "result"):
        # The origin's `steps.x.output` is the step's reply: wfrun's output `result`.
        name = rest[2:] or ["result"]
        rest = [rest[0], "outputs", *name]
    return OPEN + " " + ".".join([context, *rest]) + " " + CLOSE


def _origins_in(text: str, start: int, end: int) -> list[OriginReference]:
    found = []
    for match in _ORIGIN.finditer(text, start, end):
        path = match.group(1).split(".")
        if path[0].casefold() in _ORIGIN_CONTEXTS:
            found.append(
                OriginReference(
                    match.start(), match.end(), match.group(), _origin_replacement(path)
                )
            )
    return found


@dataclass(frozen=True, slots=True)
class _Scan:
    parts: tuple[str | Placeholder, ...]
    problems: tuple[ExpressionError, ...]
    origins: tuple[OriginReference, ...]


def _closing(text: str, start: int) -> tuple[int, ExpressionError | None]:
    """Offset of the `}}` closing the `${{` at `start`, skipping string literals; or a problem."""
    pos = start + len(OPEN)
    while pos < len(text):
        char = text[pos]
        if char == "'":
            quote = pos
            pos += 1
            while True:
                pos = text.find("'", pos)
                if pos < 0:
                    return -1, ExpressionError(
                        f"unclosed string literal in '{OPEN} … {CLOSE}' (a ' is missing)", quote
                    )
                if not text.startswith("''", pos):
                    break
                pos += 2
        elif text.startswith(CLOSE, pos):
            return pos, None
        pos += 1
    return -1, ExpressionError(f"'{OPEN}' is never closed (add '{CLOSE}')", start)


def _scan(text: str) -> _Scan:
    parts: list[str | Placeholder] = []
    problems: list[ExpressionError] = []
    origins: list[OriginReference] = []
    literal: list[str] = []
    pos = 0
    while True:
        found = text.find(OPEN, pos)
        if found < 0:
            origins += _origins_in(text, pos, len(text))
            literal.append(text[pos:])
            break
        if found > pos and text[found - 1] == "$":
            origins += _origins_in(text, pos, found - 1)
            literal.append(text[pos : found - 1] + OPEN)
            pos = found + len(OPEN)
            continue
        origins += _origins_in(text, pos, found)
        literal.append(text[pos:found])
        close, problem = _closing(text, found)
        if problem is not None:
            problems.append(problem)
            literal.append(text[found:])
            break
        source_offset = found + len(OPEN)
        source = text[source_offset:close]
        try:
            expression = parse(source)
        except ExpressionError as error:
            problems.append(error.shifted(source_offset))
            literal.append(text[found : close + len(CLOSE)])
        else:
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Placeholder(found, close + len(CLOSE), source, source_offset, expression))
        pos = close + len(CLOSE)
    tail = "".join(literal)
    if tail or not parts:
        parts.append(tail)
    problems += (origin.problem() for origin in origins)
    problems.sort(key=lambda p: p.offset)
    return _Scan(tuple(parts), tuple(problems), tuple(origins))


def parse_template(text: str) -> Template:
    """The template of a string; ExpressionError (offset in `text`) for its first problem."""
    scan = _scan(text)
    if scan.problems:
        raise scan.problems[0]
    return Template(text, scan.parts)


def template_problems(text: str) -> tuple[ExpressionError, ...]:
    """Every problem of a string's references, in order (empty when the string is fine)."""
    return _scan(text).problems


def origin_references(text: str) -> tuple[OriginReference, ...]:
    """The origin system's `{{ … }}` references in a string, each with the form to write."""
    return _scan(text).origins


def substitute(
    text: str, contexts: Mapping[str, Value], status: StatusFunctions | None = None
) -> str:
    """`text` with every `${{ }}` replaced by its value's text (`parse_template(text).render`)."""
    return parse_template(text).render(contexts, status)


# ---- conditions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """An `if:` expression, with or without `${{ }}`: `offset` is where `source` starts in it."""

    source: str
    offset: int
    expression: Expr

    def references(self) -> tuple[Reference, ...]:
        """The context paths it reads, offsets in the `if` text."""
        return tuple(r.shifted(self.offset) for r in references(self.expression))

    def calls(self) -> tuple[FunctionCall, ...]:
        """The functions it calls, offsets in the `if` text."""
        return tuple(
            FunctionCall(c.function, c.offset + self.offset) for c in calls(self.expression)
        )

    def holds(self, contexts: Mapping[str, Value], status: StatusFunctions) -> bool:
        """Whether the step may run; an ExpressionError has its offset in the `if` text."""
        try:
            return truthy(evaluate(self.expression, contexts, status))
        except ExpressionError as error:
            raise error.shifted(self.offset) from None


def parse_condition(text: str) -> Condition:
    """The expression of an `if:` value: all of it, or the inside of one `${{ }}` around it all."""
    if OPEN not in text:
        origins = _origins_in(text, 0, len(text))
        if origins:
            raise origins[0].problem()
        return Condition(text, 0, parse(text))
    template = parse_template(text)
    placeholders = template.placeholders
    around = [part for part in template.parts if isinstance(part, str)]
    if len(placeholders) != 1 or any(part.strip() for part in around):
        first = placeholders[0].start if placeholders else text.find(OPEN)
        raise ExpressionError(
            f"write the whole condition inside one '{OPEN} … {CLOSE}', "
            f"or leave '{OPEN} {CLOSE}' out",
            max(first, 0),
        )
    only = placeholders[0]
    return Condition(only.source, only.source_offset, only.expression)
