"""GitHub Actions expressions (SPEC §10.4): parse to a typed tree, analyse, evaluate. Pure: no I/O.

The language is GitHub's: literals (`'it''s'`, `711`, `-9.2`, `0xff`, `-2.99e-2`, `true`, `false`,
`null`), context paths (`steps.build.outputs.version`, `matrix['os-name']`, `vars.list[0]`), `!`,
`<`, `<=`, `>`, `>=`, `==`, `!=`, `&&`, `||`, parentheses and the functions `success()`,
`failure()`, `always()`, `contains()`, `startsWith()`, `endsWith()`, `format()`, `join()`,
`toJSON()` and `fromJSON()`. Names of functions, contexts and properties are case-insensitive;
so are string comparisons. Never Python `eval`.

How the rest of wfrun uses it::

    expr = parse("steps.build.outputs.version == '1.2' && success()")   # ExpressionError if bad
    for ref in references(expr):       # what the loader checks: unknown contexts, non-dependencies
        ref.context, ref.path, ref.offset          # 'steps', ('build', 'outputs', 'version'), 0
    uses_status_function(expr)         # True: a condition that decides when it may run
    value = evaluate(expr, {"steps": {...}}, status=StepStatus(succeeded=True, failed=False))
    truthy(value)                      # how `if:` reads the result
    to_text(value)                     # how `${{ }}` inside a string writes it (see templates.py)

Every problem, at parse or at evaluation, is one `ExpressionError` carrying the message and the
0-based offset inside the expression text (`shifted()` moves it into the enclosing string), so
callers turn it into `file:line:col` themselves. Parsing is bounded: at most `MAX_LENGTH`
characters and a tree `MAX_DEPTH` levels deep (GitHub's own limits), so every recursive walk of a
tree is safe and no input ends in `RecursionError`.

Values are JSON's: `None`, `bool`, numbers (`int` or `float`; literals are floats), `str`,
sequences and string-keyed mappings. Comparisons follow GitHub's loose rules: values of different
types are compared as numbers (null 0, false 0, true 1, a string parsed as a JSON number, '' 0,
anything else NaN, and NaN compares false with everything); arrays and objects are equal only to
themselves. `&&` and `||` return one of their operands, as in JavaScript.

Left to the caller, who knows the workflow: which context names and steps exist (the parser
accepts any name; `references()` lists them for `validate`, and evaluating a name missing from
`contexts` is an error with a suggestion); whether status functions are allowed (pass
`status=None` outside `if:` and calling one is an error); whether an output was set before a step
starts (`reference_is_set`, since a missing path otherwise reads as null).
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeAlias

from wfrun.errors import WfrunError
from wfrun.suggest import did_you_mean

# GitHub's own limits ("Exceeded max expression length 21000", "... depth 50").
MAX_LENGTH = 21_000
MAX_DEPTH = 50

Value: TypeAlias = "bool | int | float | str | Sequence[Value] | Mapping[str, Value] | None"


class ExpressionError(WfrunError):
    """A problem in an expression: what is wrong, and where (0-based offset in its text)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset

    def shifted(self, by: int) -> ExpressionError:
        """The same problem with its offset moved `by` characters (into an enclosing string)."""
        return ExpressionError(self.message, self.offset + by)

    def __repr__(self) -> str:
        return f"ExpressionError({self.message!r}, {self.offset})"


# ---- the tree ---------------------------------------------------------------------------------
# `offset` is where a node's text starts; it is left out of equality so a tree printed and parsed
# again compares equal to the original.


@dataclass(frozen=True, slots=True)
class Null:
    """`null`."""

    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Boolean:
    """`true` or `false`."""

    value: bool
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Number:
    """A number literal; always finite (a literal too large for a double is a syntax error)."""

    value: float
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class String:
    """A single-quoted string literal, unescaped."""

    value: str
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class ContextName:
    """A bare name at the start of a path: `steps`, `vars`, `env`, `matrix`, `run`, `workflow`."""

    name: str
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Property:
    """`target.name`; `name_offset` is where `name` is written."""

    target: Expr
    name: str
    offset: int = field(default=0, compare=False)
    name_offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Index:
    """`target[index]`."""

    target: Expr
    index: Expr
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    """`!operand`."""

    operand: Expr
    offset: int = field(default=0, compare=False)


class BinaryOp(enum.Enum):
    """The binary operators, by their text."""

    OR = "||"
    AND = "&&"
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


# Binding power: a higher number binds tighter. All binary operators are left-associative.
PRECEDENCE: Mapping[BinaryOp, int] = {
    BinaryOp.OR: 1,
    BinaryOp.AND: 2,
    BinaryOp.EQ: 3,
    BinaryOp.NE: 3,
    BinaryOp.LT: 4,
    BinaryOp.LE: 4,
    BinaryOp.GT: 4,
    BinaryOp.GE: 4,
}
_NOT_PRECEDENCE = 5
_POSTFIX_PRECEDENCE = 6
_ATOM_PRECEDENCE = 7


@dataclass(frozen=True, slots=True)
class Binary:
    """`left OP right`."""

    op: BinaryOp
    left: Expr
    right: Expr
    offset: int = field(default=0, compare=False)


class Function(enum.Enum):
    """The functions an expression may call; the value is the canonical spelling."""

    SUCCESS = "success"
    FAILURE = "failure"
    ALWAYS = "always"
    CONTAINS = "contains"
    STARTS_WITH = "startsWith"
    ENDS_WITH = "endsWith"
    FORMAT = "format"
    JOIN = "join"
    TO_JSON = "toJSON"
    FROM_JSON = "fromJSON"

    @property
    def is_status(self) -> bool:
        """True for success(), failure() and always(): they ask how the dependencies ended."""
        return self in (Function.SUCCESS, Function.FAILURE, Function.ALWAYS)


# (fewest, most) arguments; None: no upper bound.
ARITY: Mapping[Function, tuple[int, int | None]] = {
    Function.SUCCESS: (0, 0),
    Function.FAILURE: (0, 0),
    Function.ALWAYS: (0, 0),
    Function.CONTAINS: (2, 2),
    Function.STARTS_WITH: (2, 2),
    Function.ENDS_WITH: (2, 2),
    Function.FORMAT: (1, None),
    Function.JOIN: (1, 2),
    Function.TO_JSON: (1, 1),
    Function.FROM_JSON: (1, 1),
}
_FUNCTIONS_BY_FOLDED = {f.value.casefold(): f for f in Function}


@dataclass(frozen=True, slots=True)
class Call:
    """`function(args...)`."""

    function: Function
    args: tuple[Expr, ...]
    offset: int = field(default=0, compare=False)


Expr: TypeAlias = (
    Null | Boolean | Number | String | ContextName | Property | Index | Not | Binary | Call
)


# ---- lexing -----------------------------------------------------------------------------------


class _Kind(enum.Enum):
    NUMBER = "a number"
    STRING = "a string"
    IDENT = "a name"
    PUNCT = "an operator"
    END = "the end of the expression"


class _Token(NamedTuple):  # a tuple: tokens are many and short-lived, frozen dataclasses slow
    kind: _Kind
    text: str
    offset: int
    number: float = 0.0
    string: str = ""


_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9A-Fa-f]+|0[oO][0-7]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
)
# What a number-like run of characters extends over, to report `1abc` as one bad number.
_NUMBER_RUN = re.compile(r"[+-]?[.0-9A-Za-z_]+")
_NUMBER_TAIL = re.compile(r"[.0-9A-Za-z_]")
_TOKEN_TAIL = (
    r"|(?P<string>'(?:[^']|'')*+')"  # possessive: `'a''` stays unclosed
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*)"
    r"|(?P<punct>&&|\|\||==|!=|<=|>=|[<>!()\[\].,])"
    r")?"
)
_OPERAND_START = re.compile(r"[ \t\r\n]*(?:(?P<number>[+-]?\.?[0-9])" + _TOKEN_TAIL)
_AFTER_OPERAND = re.compile(r"[ \t\r\n]*(?:(?P<number>[0-9])" + _TOKEN_TAIL)
_OPERAND_KINDS = frozenset({_Kind.NUMBER, _Kind.STRING, _Kind.IDENT})
_MISTYPED = {
    "=": "'=' is not an operator (did you mean '=='?)",
    "&": "'&' is not an operator (did you mean '&&'?)",
    "|": "'|' is not an operator (did you mean '||'?)",
    '"': "strings are written in single quotes ('text'), not double quotes",
    "-": "'-' only starts a negative number; expressions have no arithmetic",
    "+": "'+' only starts a number; expressions have no arithmetic",
    "*": "'*' is not supported in expressions",
}


def _number_value(text: str) -> float:
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if body[:2] in ("0x", "0X"):
        return _as_float(sign * int(body[2:], 16))
    if body[:2] in ("0o", "0O"):
        return _as_float(sign * int(body[2:], 8))
    return float(text)


def _as_float(number: int) -> float:
    try:
        return float(number)
    except OverflowError:  # beyond a double: infinite, as a long decimal literal would be
        return math.inf if number > 0 else -math.inf


class _Lexer:
    """Tokens on demand: whether `.` or `-` starts a number depends on the token before it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.after_operand = False

    def next(self) -> _Token:
        # One regex match per token; where an operand may start, `-2`, `+2` and `.5` are numbers.
        text = self.text
        pattern = _AFTER_OPERAND if self.after_operand else _OPERAND_START
        match = pattern.match(text, self.pos)
        assert match is not None  # every alternative but the last may match nothing
        pos = match.start(match.lastgroup) if match.lastgroup else match.end()
        kind = match.lastgroup
        if kind is None:
            if pos < len(text):
                self._refuse(pos)
            self.pos = pos
            return _Token(_Kind.END, "", pos)
        word = match.group(kind)
        if kind == "number":
            token = self._number(pos)
        elif kind == "string":
            token = _Token(_Kind.STRING, word, pos, string=word[1:-1].replace("''", "'"))
        else:
            token = _Token(_Kind.IDENT if kind == "name" else _Kind.PUNCT, word, pos)
        self.pos = pos + len(token.text)
        self.after_operand = token.kind in _OPERAND_KINDS or word in (")", "]")
        return token

    def _refuse(self, pos: int) -> None:
        char = self.text[pos]
        if char == "'":
            raise ExpressionError("unclosed string literal (a ' is missing)", pos)
        raise ExpressionError(_MISTYPED.get(char, f"unexpected character {char!r}"), pos)

    def _number(self, start: int) -> _Token:
        match = _NUMBER.match(self.text, start)
        if match is None or _NUMBER_TAIL.match(self.text, match.end()):
            run = _NUMBER_RUN.match(self.text, start)
            assert run is not None
            raise ExpressionError(f"invalid number {run.group()!r}", start)
        value = _number_value(match.group())
        if not math.isfinite(value):
            raise ExpressionError(f"number {match.group()!r} is too large", start)
        return _Token(_Kind.NUMBER, match.group(), start, number=value)


# ---- parsing ----------------------------------------------------------------------------------

_BINARY_BY_TEXT = {op.value: op for op in BinaryOp}
_KEYWORDS = {"true", "false", "null"}


# Trees are immutable, and the same text recurs (matrix instances, repeated references).
@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """The tree of one expression (without `${{ }}`); ExpressionError if it is not one."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    return _Parser(text).parse()


class _Parser:
    """A Pratt parser. Each parse method returns a node and the depth of its tree."""

    def __init__(self, text: str) -> None:
        self.lexer = _Lexer(text)
        self.token = self.lexer.next()

    def parse(self) -> Expr:
        if self.at_end():
            raise ExpressionError("empty expression", self.token.offset)
        node, _ = self.expression(0, 1)
        if not self.at_end():
            raise self.unexpected("an operator or the end of the expression")
        return node

    def at_end(self) -> bool:
        return self.token.kind is _Kind.END

    def advance(self) -> _Token:
        token = self.token
        self.token = self.lexer.next()
        return token

    def unexpected(self, wanted: str) -> ExpressionError:
        token = self.token
        if token.kind is _Kind.END:
            return ExpressionError(
                f"expected {wanted}, found the end of the expression", token.offset
            )
        return ExpressionError(f"expected {wanted}, found {token.text!r}", token.offset)

    def expect(self, punct: str, opened: _Token | None = None) -> None:
        if self.token.kind is _Kind.PUNCT and self.token.text == punct:
            self.advance()
            return
        if opened is not None and self.token.kind is _Kind.END:
            raise ExpressionError(f"{opened.text!r} is never closed", opened.offset)
        raise self.unexpected(repr(punct))

    @staticmethod
    def bounded(depth: int, offset: int) -> int:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested more than {MAX_DEPTH} levels deep", offset)
        return depth

    def expression(self, min_power: int, depth: int) -> tuple[Expr, int]:
        self.bounded(depth, self.token.offset)
        left, left_depth = self.prefix(depth)
        while self.token.kind is _Kind.PUNCT and self.token.text in _BINARY_BY_TEXT:
            op = _BINARY_BY_TEXT[self.token.text]
            if PRECEDENCE[op] <= min_power:
                break
            op_token = self.advance()
            right, right_depth = self.expression(PRECEDENCE[op], depth + 1)
            tree_depth = self.bounded(max(left_depth, right_depth) + 1, op_token.offset)
            left, left_depth = Binary(op, left, right, offset=_start(left)), tree_depth
        return left, left_depth

    def prefix(self, depth: int) -> tuple[Expr, int]:
        token = self.token
        if token.kind is _Kind.PUNCT and token.text == "!":
            self.advance()
            self.bounded(depth + 1, self.token.offset)
            operand, operand_depth = self.prefix(depth + 1)
            return Not(operand, offset=token.offset), self.bounded(operand_depth + 1, token.offset)
        node, node_depth = self.primary(depth)
        return self.postfix(node, node_depth, depth)

    def primary(self, depth: int) -> tuple[Expr, int]:
        token = self.token
        if token.kind is _Kind.NUMBER:
            self.advance()
            return Number(token.number, offset=token.offset), 1
        if token.kind is _Kind.STRING:
            self.advance()
            return String(token.string, offset=token.offset), 1
        if token.kind is _Kind.IDENT:
            self.advance()
            if self.token.kind is _Kind.PUNCT and self.token.text == "(":
                return self.call(token, depth)
            return _name_node(token), 1
        if token.kind is _Kind.PUNCT and token.text == "(":
            self.advance()
            inner, inner_depth = self.expression(0, depth + 1)
            self.expect(")", token)
            return inner, inner_depth
        raise self.unexpected("a value, a name or '('")

    def call(self, name: _Token, depth: int) -> tuple[Expr, int]:
        function = _FUNCTIONS_BY_FOLDED.get(name.text.casefold())
        if function is None:
            hint = did_you_mean(name.text, [f.value for f in Function])
            known = ", ".join(f.value for f in Function)
            message = f"unknown function {name.text!r}{hint}"
            raise ExpressionError(message if hint else f"{message}; known: {known}", name.offset)
        opened = self.advance()
        args: list[Expr] = []
        deepest = 0
        if not (self.token.kind is _Kind.PUNCT and self.token.text == ")"):
            while True:
                arg, arg_depth = self.expression(0, depth + 1)
                args.append(arg)
                deepest = max(deepest, arg_depth)
                if not (self.token.kind is _Kind.PUNCT and self.token.text == ","):
                    break
                self.advance()
        self.expect(")", opened)
        _check_arity(function, len(args), name.offset)
        return Call(function, tuple(args), offset=name.offset), self.bounded(
            deepest + 1, name.offset
        )

    def postfix(self, node: Expr, node_depth: int, depth: int) -> tuple[Expr, int]:
        while self.token.kind is _Kind.PUNCT and self.token.text in (".", "["):
            opened = self.advance()
            if opened.text == ".":
                name = self.token
                if name.kind is not _Kind.IDENT:
                    raise self.unexpected("a property name after '.'")
                self.advance()
                node = Property(node, name.text, offset=_start(node), name_offset=name.offset)
                node_depth = self.bounded(node_depth + 1, opened.offset)
            else:
                index, index_depth = self.expression(0, depth + 1)
                self.expect("]", opened)
                node = Index(node, index, offset=_start(node))
                node_depth = self.bounded(max(node_depth, index_depth) + 1, opened.offset)
        return node, node_depth


def _name_node(token: _Token) -> Expr:
    if token.text == "true":
        return Boolean(True, offset=token.offset)
    if token.text == "false":
        return Boolean(False, offset=token.offset)
    if token.text == "null":
        return Null(offset=token.offset)
    return ContextName(token.text, offset=token.offset)


def _check_arity(function: Function, count: int, offset: int) -> None:
    fewest, most = ARITY[function]
    if fewest <= count and (most is None or count <= most):
        return
    if most is None:
        wanted = f"at least {fewest} argument{'s' if fewest != 1 else ''}"
    elif fewest == most:
        wanted = f"{fewest} argument{'s' if fewest != 1 else ''}"
    else:
        wanted = (
            f"{fewest} or {most} arguments"
            if most == fewest + 1
            else f"{fewest} to {most} arguments"
        )
    raise ExpressionError(f"{function.value}() takes {wanted}, got {count}", offset)


def _start(node: Expr) -> int:
    return node.offset


# ---- printing ---------------------------------------------------------------------------------


def unparse(node: Expr) -> str:
    """Canonical text of a tree, with only the parentheses its precedence needs."""
    return _print(node, minimal=True)


def unparse_grouped(node: Expr) -> str:
    """Text of a tree with every binary and `!` operation in parentheses (shows how it groups)."""
    return _print(node, minimal=False)


def _precedence(node: Expr) -> int:
    if isinstance(node, Binary):
        return PRECEDENCE[node.op]
    if isinstance(node, Not):
        return _NOT_PRECEDENCE
    if isinstance(node, Property | Index):
        return _POSTFIX_PRECEDENCE
    return _ATOM_PRECEDENCE


def _print(node: Expr, *, minimal: bool) -> str:
    def sub(child: Expr, needs_parens: bool) -> str:
        text = _print(child, minimal=minimal)
        return f"({text})" if needs_parens else text

    match node:
        case Null():
            return "null"
        case Boolean(value=value):
            return "true" if value else "false"
        case Number(value=value):
            return _number_literal(value)
        case String(value=value):
            return "'" + value.replace("'", "''") + "'"
        case ContextName(name=name):
            return name
        case Property(target=target, name=name):
            return sub(target, _target_needs_parens(target)) + "." + name
        case Index(target=target, index=index):
            return sub(target, _target_needs_parens(target)) + "[" + sub(index, False) + "]"
        case Not(operand=operand):
            grouped = not minimal and isinstance(operand, Binary | Not)
            return "!" + sub(operand, _precedence(operand) < _NOT_PRECEDENCE or grouped)
        case Binary(op=op, left=left, right=right):
            power = PRECEDENCE[op]
            left_text = sub(left, _precedence(left) < power or (not minimal and _is_op(left)))
            right_text = sub(right, _precedence(right) <= power or (not minimal and _is_op(right)))
            return f"{left_text} {op.value} {right_text}"
        case Call(function=function, args=args):
            return function.value + "(" + ", ".join(sub(a, False) for a in args) + ")"
    raise AssertionError(node)  # pragma: no cover - the match covers every node type


def _is_op(node: Expr) -> bool:
    return isinstance(node, Binary | Not)


def _target_needs_parens(target: Expr) -> bool:
    # `1.x` would lex as a malformed number, so a number target keeps its parentheses.
    return _precedence(target) < _POSTFIX_PRECEDENCE or isinstance(target, Number)


def _number_literal(value: float) -> str:
    if value.is_integer():
        return str(int(value))
    return repr(value)


# ---- analysis ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reference:
    """A context path an expression reads: `steps.build.outputs['v']` is context 'steps' and path
    ('build', 'outputs', 'v'). The path stops at the first part that is not a literal (`a[x]`).
    Offsets are 0-based in the expression text: of the context name, and of each path part."""

    context: str
    path: tuple[str | int, ...]
    offset: int
    part_offsets: tuple[int, ...]

    @property
    def dotted(self) -> str:
        """`steps.build.outputs.version` (index parts as `[0]`)."""
        text = self.context
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text

    def shifted(self, by: int) -> Reference:
        """The same reference with its offsets moved `by` characters (into an enclosing string)."""
        return Reference(
            self.context, self.path, self.offset + by, tuple(o + by for o in self.part_offsets)
        )


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A function an expression calls, and the offset of its name."""

    function: Function
    offset: int


def walk(node: Expr) -> Iterator[Expr]:
    """Every node of the tree, parents before children, left to right."""
    yield node
    match node:
        case Property(target=target):
            yield from walk(target)
        case Index(target=target, index=index):
            yield from walk(target)
            yield from walk(index)
        case Not(operand=operand):
            yield from walk(operand)
        case Binary(left=left, right=right):
            yield from walk(left)
            yield from walk(right)
        case Call(args=args):
            for arg in args:
                yield from walk(arg)


def references(node: Expr) -> tuple[Reference, ...]:
    """Every context path the expression reads, longest static path each, in text order."""
    found: list[Reference] = []
    _collect_references(node, found)
    return tuple(sorted(found, key=lambda r: r.offset))


def _collect_references(node: Expr, found: list[Reference]) -> None:
    chain = _static_path(node)
    if chain is not None:
        found.append(chain[0])
        for dynamic in chain[1]:
            _collect_references(dynamic, found)
        return
    match node:
        case Property(target=target):
            _collect_references(target, found)
        case Index(target=target, index=index):
            _collect_references(target, found)
            _collect_references(index, found)
        case Not(operand=operand):
            _collect_references(operand, found)
        case Binary(left=left, right=right):
            _collect_references(left, found)
            _collect_references(right, found)
        case Call(args=args):
            for arg in args:
                _collect_references(arg, found)


def _static_path(node: Expr) -> tuple[Reference, list[Expr]] | None:
    """The reference a path node starts with, plus the index expressions past its static part."""
    accessors: list[Property | Index] = []
    while isinstance(node, Property | Index):
        accessors.append(node)
        node = node.target
    if not isinstance(node, ContextName):
        return None
    path: list[str | int] = []
    offsets: list[int] = []
    rest: list[Expr] = []
    static = True
    for accessor in reversed(accessors):
        part = _static_part(accessor) if static else None
        if part is None:
            static = False
            if isinstance(accessor, Index):
                rest.append(accessor.index)
            continue
        path.append(part[0])
        offsets.append(part[1])
    return Reference(node.name, tuple(path), node.offset, tuple(offsets)), rest


def _static_part(accessor: Property | Index) -> tuple[str | int, int] | None:
    if isinstance(accessor, Property):
        return accessor.name, accessor.name_offset
    index = accessor.index
    if isinstance(index, String):
        return index.value, index.offset
    if isinstance(index, Number) and index.value.is_integer() and index.value >= 0:
        return int(index.value), index.offset
    return None


def calls(node: Expr) -> tuple[FunctionCall, ...]:
    """Every function call, in text order."""
    found = [FunctionCall(n.function, n.offset) for n in walk(node) if isinstance(n, Call)]
    return tuple(sorted(found, key=lambda c: c.offset))


def uses_status_function(node: Expr) -> bool:
    """True when the expression calls success(), failure() or always() (SPEC §10.3)."""
    return any(call.function.is_status for call in calls(node))


# ---- evaluation -------------------------------------------------------------------------------


class StatusFunctions(Protocol):
    """Answers success(), failure() and always() for the step whose condition is evaluated."""

    def success(self) -> bool: ...

    def failure(self) -> bool: ...

    def always(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class StepStatus:
    """Status answers fixed in advance: how a step's dependencies ended (SPEC §10.3)."""

    succeeded: bool
    failed: bool

    def success(self) -> bool:
        return self.succeeded

    def failure(self) -> bool:
        return self.failed

    def always(self) -> bool:
        return True


class _Missing:
    """A path that leads nowhere (reads as null, but `reference_is_set` can tell)."""


_MISSING = _Missing()


def evaluate(
    node: Expr, contexts: Mapping[str, Value], status: StatusFunctions | None = None
) -> Value:
    """The value of the expression. `contexts` maps context names to their values; `status` answers
    the status functions and is None where they are not allowed (then calling one is an error).
    A name missing from `contexts` is an error; a missing property or index reads as null."""
    return _Evaluator(contexts, status).value(node)


class _Evaluator:
    def __init__(self, contexts: Mapping[str, Value], status: StatusFunctions | None) -> None:
        self.contexts = contexts
        self.status = status

    def value(self, node: Expr) -> Value:
        match node:
            case Null():
                return None
            case Boolean(value=value) | Number(value=value) | String(value=value):
                return value
            case ContextName(name=name, offset=offset):
                found = _member(self.contexts, name)
                if isinstance(found, _Missing):
                    hint = did_you_mean(name, list(self.contexts))
                    raise ExpressionError(f"unknown context {name!r}{hint}", offset)
                return found
            case Property(target=target, name=name):
                return _or_null(_member(self.value(target), name))
            case Index(target=target, index=index):
                return _or_null(_item(self.value(target), self.value(index)))
            case Not(operand=operand):
                return not truthy(self.value(operand))
            case Binary(op=op, left=left, right=right):
                return self.binary(op, left, right)
            case Call():
                return self.call(node)
        raise AssertionError(node)  # pragma: no cover - the match covers every node type

    def binary(self, op: BinaryOp, left: Expr, right: Expr) -> Value:
        first = self.value(left)
        if op is BinaryOp.AND:
            return self.value(right) if truthy(first) else first
        if op is BinaryOp.OR:
            return first if truthy(first) else self.value(right)
        second = self.value(right)
        if op is BinaryOp.EQ:
            return loose_equal(first, second)
        if op is BinaryOp.NE:
            return not loose_equal(first, second)
        return _COMPARISONS[op](_compare(first, second))

    def call(self, node: Call) -> Value:
        function = node.function
        if function.is_status:
            if self.status is None:
                raise ExpressionError(
                    f"{function.value}() can only be used in a step's 'if'", node.offset
                )
            answer = {
                Function.SUCCESS: self.status.success,
                Function.FAILURE: self.status.failure,
                Function.ALWAYS: self.status.always,
            }[function]
            return answer()
        args = [self.value(arg) for arg in node.args]
        try:
            return _FUNCTIONS[function](args)
        except _FunctionError as error:
            raise ExpressionError(f"{function.value}(): {error}", node.offset) from None


def _member(container: object, name: str) -> Value | _Missing:
    """`container.name`, matching the key case-insensitively as GitHub does."""
    if not isinstance(container, Mapping):
        return _MISSING
    if name in container:
        found: Value = container[name]
        return found
    folded = name.casefold()
    for key, item in container.items():
        if isinstance(key, str) and key.casefold() == folded:
            matched: Value = item
            return matched
    return _MISSING


def _item(container: Value, index: Value) -> Value | _Missing:
    if isinstance(container, Mapping):
        return _member(container, index) if isinstance(index, str) else _MISSING
    if isinstance(container, Sequence) and not isinstance(container, str):
        number = to_number(index)
        if not math.isfinite(number) or number < 0:
            return _MISSING
        position = int(number)
        return container[position] if position < len(container) else _MISSING
    return _MISSING


def _or_null(found: Value | _Missing) -> Value:
    return None if isinstance(found, _Missing) else found


def reference_is_set(contexts: Mapping[str, Value], reference: Reference) -> bool:
    """True when the whole static path of `reference` leads to a value in `contexts` (a value of
    null counts as set). Lets a caller fail a step whose `steps.X.outputs.Y` was never written."""
    found: Value | _Missing = _member(contexts, reference.context)
    for part in reference.path:
        if isinstance(found, _Missing):
            return False
        found = _member(found, part) if isinstance(part, str) else _item(found, part)
    return not isinstance(found, _Missing)


# ---- coercion (GitHub's documented rules) ------------------------------------------------------


def _is_array(value: Value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _is_primitive(value: Value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def truthy(value: Value) -> bool:
    """How a condition reads a value: false, 0, -0, NaN, '' and null are false; all else true."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == value and value != 0  # NaN is the one value unequal to itself
    if isinstance(value, str):
        return value != ""
    return True


_JSON_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def to_number(value: Value) -> float:
    """GitHub's number coercion: null 0, false 0, true 1, a string that is a number its value
    ('' 0, hex 0x.. and octal 0o.. too), any other string, array or object NaN."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        return _as_float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        if _JSON_NUMBER.fullmatch(text) or re.fullmatch(
            r"[+-]?0(?:[xX][0-9A-Fa-f]+|[oO][0-7]+)", text
        ):
            return _number_value(text)
        return math.nan
    return math.nan


def _fold_char(char: str) -> str:
    # A simple one-to-one upper-casing, as .NET's ordinal-ignore-case: 'ß' does not become 'SS'
    # and the dotless 'ı' does not become ASCII 'I' (GitHub's own test data says so).
    upper = char.upper()
    if len(upper) != 1 or (upper.isascii() and not char.isascii()):
        return char
    return upper


def fold_case(text: str) -> str:
    """`text` as GitHub compares strings: case-insensitively, character by character."""
    return text.upper() if text.isascii() else "".join(_fold_char(c) for c in text)


def loose_equal(left: Value, right: Value) -> bool:
    """`==`: same types compare by value (strings ignoring case; arrays and objects only to
    themselves); different types compare as numbers."""
    kind = _kind(left)
    if kind != _kind(right):
        return to_number(left) == to_number(right)
    if kind == "string":
        assert isinstance(left, str) and isinstance(right, str)
        return fold_case(left) == fold_case(right)
    if kind in ("array", "object"):
        return left is right
    if kind == "number":
        return to_number(left) == to_number(right)
    return left == right


def _kind(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if _is_array(value) else "object"


def _compare(left: Value, right: Value) -> int | None:
    """-1, 0 or 1 as `left` sorts against `right`; None when they do not compare (NaN, arrays and
    objects), which makes every relational operator false."""
    kind = _kind(left)
    if kind == _kind(right) == "string":
        assert isinstance(left, str) and isinstance(right, str)
        a, b = fold_case(left), fold_case(right)
        return (a > b) - (a < b)
    if kind == _kind(right) and kind in ("array", "object"):
        return None
    x, y = to_number(left), to_number(right)
    if math.isnan(x) or math.isnan(y):
        return None
    return (x > y) - (x < y)


_COMPARISONS: Mapping[BinaryOp, Callable[[int | None], bool]] = {
    BinaryOp.LT: lambda c: c is not None and c < 0,
    BinaryOp.LE: lambda c: c is not None and c <= 0,
    BinaryOp.GT: lambda c: c is not None and c > 0,
    BinaryOp.GE: lambda c: c is not None and c >= 0,
}


def _number_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"  # also -0
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".15g")


def to_string(value: Value) -> str:
    """GitHub's string coercion, used by the functions: null '', booleans 'true'/'false', numbers
    in decimal without a trailing '.0', arrays 'Array' and objects 'Object'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, str):
        return value
    return "Array" if _is_array(value) else "Object"


def to_text(value: Value) -> str:
    """A value written into a string by `${{ }}`: as `to_string`, but arrays and objects as
    JSON (`toJSON`'s text), so `${{ fromJSON(x) }}` passes data on rather than 'Object'."""
    if _is_primitive(value):
        return to_string(value)
    try:
        return _to_json(value)
    except _FunctionError as error:
        raise ExpressionError(str(error), 0) from None


# ---- functions ----------------------------------------------------------------------------------


class _FunctionError(Exception):
    """A function refused its arguments; the evaluator adds the function name and offset."""


def _contains(args: list[Value]) -> Value:
    search, item = args
    if _is_array(search):
        assert isinstance(search, Sequence)
        return any(loose_equal(element, item) for element in search)
    if _is_primitive(search) and _is_primitive(item):
        return fold_case(to_string(item)) in fold_case(to_string(search))
    return False


def _starts_with(args: list[Value]) -> Value:
    text, prefix = args
    if not (_is_primitive(text) and _is_primitive(prefix)):
        return False
    return fold_case(to_string(text)).startswith(fold_case(to_string(prefix)))


def _ends_with(args: list[Value]) -> Value:
    text, suffix = args
    if not (_is_primitive(text) and _is_primitive(suffix)):
        return False
    return fold_case(to_string(text)).endswith(fold_case(to_string(suffix)))


_FORMAT_PIECE = re.compile(r"\{\{|\}\}|\{([0-9]+)\}|[{}]")


def _format(args: list[Value]) -> Value:
    template = to_string(args[0])
    values = args[1:]
    out: list[str] = []
    pos = 0
    for match in _FORMAT_PIECE.finditer(template):
        out.append(template[pos : match.start()])
        pos = match.end()
        piece = match.group()
        if piece in ("{{", "}}"):
            out.append(piece[0])
        elif match.group(1) is None:
            raise _FunctionError(
                f"invalid format string {template!r}: write '{{{{' or '}}}}' for a literal brace"
            )
        else:
            number = int(match.group(1))
            if number >= len(values):
                raise _FunctionError(
                    f"the format string uses {{{number}}} but only {len(values)} "
                    f"value{'s' if len(values) != 1 else ''} follow it"
                )
            out.append(to_string(values[number]))
    out.append(template[pos:])
    return "".join(out)


def _join(args: list[Value]) -> Value:
    items = args[0]
    separator = ","
    if len(args) == 2 and _is_primitive(args[1]):
        separator = to_string(args[1])
    if _is_array(items):
        assert isinstance(items, Sequence)
        return separator.join(to_string(item) for item in items)
    if isinstance(items, Mapping):
        return ""
    return to_string(items)


def _plain_json(value: Value) -> object:
    """`value` as json.dumps should write it: integral floats as integers, like GitHub."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if _is_array(value):
        assert isinstance(value, Sequence)
        return [_plain_json(v) for v in value]
    return value


def _to_json(value: Value) -> str:
    try:
        return json.dumps(_plain_json(value), indent=2, ensure_ascii=False)
    except RecursionError:
        raise _FunctionError("the value is nested too deeply to write as JSON") from None
    except ValueError as error:  # a circular structure handed in as a context
        raise _FunctionError(str(error)) from None


def _from_json(args: list[Value]) -> Value:
    text = to_string(args[0])
    try:
        parsed: Value = json.loads(text)
    except RecursionError:
        raise _FunctionError("the JSON is nested too deeply") from None
    except ValueError as error:
        raise _FunctionError(f"invalid JSON {_shorten(text)!r}: {error}") from None
    return parsed


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


_FUNCTIONS: Mapping[Function, Callable[[list[Value]], Value]] = {
    Function.CONTAINS: _contains,
    Function.STARTS_WITH: _starts_with,
    Function.ENDS_WITH: _ends_with,
    Function.FORMAT: _format,
    Function.JOIN: _join,
    Function.TO_JSON: lambda args: _to_json(args[0]),
    Function.FROM_JSON: _from_json,
}
