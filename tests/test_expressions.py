"""The expression language of SPEC §10.4: syntax, GitHub's semantics, errors, analysis, bounds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfrun.expressions import (
    ARITY,
    MAX_DEPTH,
    MAX_LENGTH,
    PRECEDENCE,
    Binary,
    BinaryOp,
    Boolean,
    Call,
    ContextName,
    Expr,
    ExpressionError,
    Function,
    FunctionCall,
    Index,
    Not,
    Null,
    Number,
    Property,
    Reference,
    StepStatus,
    String,
    Value,
    calls,
    evaluate,
    loose_equal,
    parse,
    reference_is_set,
    references,
    to_number,
    to_string,
    to_text,
    truthy,
    unparse,
    unparse_grouped,
    uses_status_function,
)

CONTEXTS: dict[str, Value] = {
    "steps": {"build": {"outputs": {"version": "1.2.3", "count": "3"}, "status": "succeeded"}},
    "vars": {"Region": "eu-west", "list": ["a", "b", "c"], "empty": ""},
    "env": {"HOME": "/home/u", "DASHED-NAME": "d"},
    "matrix": {"os": "linux", "n": 2},
}


def ev(text: str, contexts: dict[str, Value] | None = None, status: Any = None) -> Value:
    return evaluate(parse(text), CONTEXTS if contexts is None else contexts, status)


def error_of(text: str) -> tuple[int, str]:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    return caught.value.offset, caught.value.message


def eval_error_of(text: str, status: Any = None) -> tuple[int, str]:
    with pytest.raises(ExpressionError) as caught:
        ev(text, status=status)
    return caught.value.offset, caught.value.message


# ---- literals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("null", None),
        ("true", True),
        ("false", False),
        ("711", 711.0),
        ("-9.2", -9.2),
        ("+1.5", 1.5),
        (".5", 0.5),
        ("-.5", -0.5),
        ("0xff", 255.0),
        ("0XFF", 255.0),
        ("0o10", 8.0),
        ("-2.99e-2", -0.0299),
        ("1.2E+2", 120.0),
        ("'Mona the Octocat'", "Mona the Octocat"),
        ("'It''s open source!'", "It's open source!"),
        ("''", ""),
        ("'}} and {{'", "}} and {{"),
    ],
)
def test_literals(text: str, value: Value) -> None:
    assert ev(text) == value


def test_numbers_are_floats_and_a_literal_is_never_infinite() -> None:
    assert parse("3") == Number(3.0)
    assert error_of("1e999") == (0, "number '1e999' is too large")
    assert error_of("0x" + "f" * 300) == (0, f"number '0x{'f' * 300}' is too large")
    assert to_number("-0x" + "f" * 300) == -math.inf
    assert to_number(10**400) == math.inf


# ---- paths ------------------------------------------------------------------------------------


def test_property_and_index_paths() -> None:
    assert ev("steps.build.outputs.version") == "1.2.3"
    assert ev("steps['build'].outputs['version']") == "1.2.3"
    assert ev("env['DASHED-NAME']") == "d"
    assert ev("env.DASHED-NAME") == "d"  # `-` belongs to names, as in GitHub
    assert ev("vars.list[1]") == "b"
    assert ev("vars.list['1']") == "b"  # an index into an array is coerced to a number


def test_names_match_keys_case_insensitively() -> None:
    assert ev("VARS.region") == "eu-west"
    assert ev("Steps.BUILD.Outputs.Version") == "1.2.3"


def test_a_missing_property_or_index_reads_as_null() -> None:
    assert ev("steps.nothing.outputs.x") is None
    assert ev("vars.list[3]") is None
    assert ev("vars.list[-1]") is None
    assert ev("vars.Region.length") is None  # a string has no properties
    assert ev("vars.list.x") is None
    assert ev("matrix[0]") is None  # an object is indexed by strings only


def test_an_unknown_context_name_is_an_evaluation_error_with_a_suggestion() -> None:
    assert eval_error_of("1 == 1 && step.build") == (
        10,
        "unknown context 'step' (did you mean 'steps'?)",
    )


def test_properties_named_like_keywords_and_functions() -> None:
    contexts: dict[str, Value] = {"x": {"true": 1, "null": 2, "format": 3}}
    assert ev("x.true", contexts) == 1
    assert ev("x.null", contexts) == 2
    assert ev("x.format", contexts) == 3


# ---- operators --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # strings compare ignoring case, also outside ASCII (GitHub's test data)
        ("'abc' == 'ABC'", True),
        ("'abc' != 'ABC'", False),
        ("'ü' == 'Ü'", True),
        ("'ς' == 'Σ'", True),
        ("'i' == 'İ'", False),
        ("'ı' == 'I'", False),
        ("'a' < '['", True),
        ("'abc' < 'ABD'", True),
        ("'b' <= 'B'", True),
        # different types compare as numbers
        ("null == 0", True),
        ("null == false", True),
        ("'' == 0", True),
        ("'' == false", True),
        ("true == 1", True),
        ("'1' == 1", True),
        ("' 1.5 ' == 1.5", True),
        ("'0x10' == 16", True),
        ("'abc' == 0", False),
        ("'true' == true", False),  # 'true' is NaN as a number
        ("false < true", True),
        ("'2' > 10", False),
        ("'10' > 2", True),
        ("null < 1", True),
        # NaN compares false with everything, itself included
        ("'abc' < 1", False),
        ("'abc' >= 1", False),
        ("fromJSON('[1]') > 0", False),
        # arrays and objects are equal only to themselves
        ("fromJSON('[]') == fromJSON('[]')", False),
        ("vars.list == vars.list", True),
        ("vars.list != vars.list", False),
        ("vars.list < vars.list", False),
        ("vars.list <= vars.list", False),
        ("null == null", True),
        ("null <= null", True),
        # numbers
        ("1 < 2", True),
        ("1.001 < 1.002", True),
        ("0xff == 255", True),
        ("-0 == 0", True),
        ("2 >= 2", True),
        ("2 > 2", False),
    ],
)
def test_comparisons(text: str, value: bool) -> None:
    assert ev(text) is value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 == 1 && 2", 2.0),
        ("'a' == 'a' && 'b'", "b"),
        ("false && 0 || null", None),
        ("false && (0 || null)", False),
        ("1 || 2 && 3", 1.0),
        ("(1 || 2) && 3", 3.0),
        ("'' || 'default'", "default"),
        ("vars.empty || 'fallback'", "fallback"),
        ("0 && 'never'", 0.0),
        ("!0", True),
        ("!''", True),
        ("!'x'", False),
        ("!null", True),
        ("!vars.list", False),
        ("!!'x'", True),
        ("!fromJSON('{}')", False),
    ],
)
def test_logic_returns_operands_and_uses_truthiness(text: str, value: Value) -> None:
    assert ev(text) == value
    assert type(ev(text)) is type(value)


def test_and_or_short_circuit_the_right_operand() -> None:
    assert ev("true || nosuch.x") is True
    assert ev("false && nosuch.x") is False
    assert ev("true || fromJSON('{')") is True


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # GitHub's precedence test data
        ("!2 < 3", True),
        ("!(2 < 3)", False),
        ("3 < 2 < 1", True),
        ("3 < (2 < 1)", False),
        ("2 > 2 > 0", False),
        ("2 > (2 > 0)", True),
        ("2 <= 3 == true", True),
        ("2 <= (3 == true)", False),
        ("2 == 2 == 1", True),
        ("2 == (2 == 1)", False),
        ("2 == 2 != 0", True),
        ("1 == (1 && 2)", False),
    ],
)
def test_precedence_and_associativity(text: str, value: Value) -> None:
    assert ev(text) == value


def test_not_binds_looser_than_paths_and_tighter_than_comparisons() -> None:
    contexts: dict[str, Value] = {"foo": {"bar": True}}
    assert ev("!foo.bar", contexts) is False
    assert ev("(!foo).bar", contexts) is None
    assert parse("!a.b == c") == Binary(
        BinaryOp.EQ, Not(Property(ContextName("a"), "b")), ContextName("c")
    )


def test_truthiness() -> None:
    for falsy in (None, False, 0, 0.0, -0.0, math.nan, ""):
        assert not truthy(falsy)
    for true in (True, 1, -1.5, "0", "false", " ", [], {}):
        assert truthy(true)


def test_number_coercion() -> None:
    assert to_number(None) == 0
    assert to_number(True) == 1
    assert to_number("") == 0
    assert to_number("  ") == 0
    assert to_number("-1e3") == -1000
    assert to_number("0o17") == 15
    assert math.isnan(to_number("1,000"))
    assert math.isnan(to_number([]))
    assert math.isnan(to_number({}))


def test_loose_equality_of_an_integer_context_value_and_a_literal() -> None:
    assert loose_equal(2, 2.0)
    assert ev("matrix.n == 2") is True
    assert ev("matrix.n == '2'") is True


# ---- functions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("contains('abcdef', 'cde')", True),
        ("contains('abCdEf', 'cDe')", True),
        ("contains('abcdef', '')", True),
        ("contains('1234', 23)", True),
        ("contains('true', true)", True),
        ("contains('asdf', null)", True),
        ("contains('true', false)", False),
        ("contains(vars.list, 'B')", True),
        ("contains(vars.list, 'd')", False),
        ("contains(fromJSON('[1, 2]'), '2')", True),  # elements compare loosely
        ("contains(fromJSON('{\"a\": 1}'), 'a')", False),
        ("contains('Array', vars.list)", False),
        ("startsWith('Hello world', 'he')", True),
        ("startsWith('Hello world', 'world')", False),
        ("startsWith(12345, 12)", True),
        ("startsWith(vars.list, 'a')", False),
        ("endsWith('Hello world', 'LD')", True),
        ("endsWith('Hello world', 'Hello')", False),
        ("endsWith(true, 'ue')", True),
    ],
)
def test_search_functions(text: str, value: bool) -> None:
    assert ev(text) is value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat"),
        ("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')", "{Hello Mona the Octocat!}"),
        ("format('123{0}456{0}789', 'abc')", "123abc456abc789"),
        ("format('{{0}}', 'abc')", "{0}"),
        ("format('{{{{0}}}}', 'abc')", "{{0}}"),
        ("format('}}{{}}', 'abc')", "}{}"),
        ("format(null)", ""),
        (
            "format('{0}|{1}|{2}|{3}|{4}', null, true, 2.50, vars.list, matrix)",
            "|true|2.5|Array|Object",
        ),
        ("format('{0}', 0.84551240822557006)", "0.84551240822557"),
        ("format('{0}', -0)", "0"),
        ("format('{0}', 1.2e-2)", "0.012"),
        ("format('{0}', 123456.789)", "123456.789"),
    ],
)
def test_format(text: str, value: str) -> None:
    assert ev(text) == value


@pytest.mark.parametrize("template", ["{0", "{0}}", "0}", "{{0}", "}0{", "}{0}", "{0}{", "{x}"])
def test_format_refuses_a_malformed_format_string(template: str) -> None:
    offset, message = eval_error_of(f"1 == 1 && format('{template}', 'v')")
    assert offset == 10
    assert message.startswith("format(): invalid format string")
    assert "write '{{' or '}}' for a literal brace" in message


def test_format_refuses_an_index_without_a_value() -> None:
    assert eval_error_of("format('{0}{1}', 'abc')") == (
        0,
        "format(): the format string uses {1} but only 1 value follow it",
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("join(vars.list)", "a,b,c"),
        ("join(vars.list, ', ')", "a, b, c"),
        ("join(vars.list, null)", "abc"),
        ("join(vars.list, true)", "atruebtruec"),
        ("join(vars.list, vars.list)", "a,b,c"),  # a separator that is not a primitive: the default
        ("join(fromJSON('[null, true, 1.5, \"x\", [], {}]'))", ",true,1.5,x,Array,Object"),
        ("join('abc')", "abc"),
        ("join(null)", ""),
        ("join(123.456)", "123.456"),
        ("join(matrix)", ""),
    ],
)
def test_join(text: str, value: str) -> None:
    assert ev(text) == value


def test_to_json_is_indented_and_writes_integral_numbers_as_integers() -> None:
    assert ev("toJSON(vars.list)") == '[\n  "a",\n  "b",\n  "c"\n]'
    assert ev("toJSON(matrix)") == '{\n  "os": "linux",\n  "n": 2\n}'
    assert ev("toJSON('abc''def')") == '"abc\'def"'
    assert ev("toJSON(2.0)") == "2"
    assert ev("toJSON(null)") == "null"
    assert ev("toJSON('ü')") == '"ü"'


def test_from_json() -> None:
    assert ev("fromJSON('{\"a\": [1, true, null]}')") == {"a": [1, True, None]}
    assert ev("fromJSON('\"x\"')") == "x"
    assert ev("fromJSON(steps.build.outputs.count) > 2") is True
    assert ev('fromJSON(\'{"deploy": "yes"}\').deploy') == "yes"


def test_from_json_refuses_text_that_is_not_json_at_its_call() -> None:
    offset, message = eval_error_of("'x' == fromJSON('{oops')")
    assert offset == 7
    assert message.startswith("fromJSON(): invalid JSON '{oops':")


def test_from_json_of_deeply_nested_text_is_an_error_not_a_crash() -> None:
    contexts: dict[str, Value] = {"vars": {"deep": "[" * 100_000 + "]" * 100_000}}
    with pytest.raises(ExpressionError) as caught:
        ev("fromJSON(vars.deep)", contexts)
    assert (caught.value.offset, caught.value.message) == (
        0,
        "fromJSON(): the JSON is nested too deeply",
    )


def test_function_names_are_case_insensitive_and_print_canonically() -> None:
    assert ev("CONTAINS('abc', 'B')") is True
    assert unparse(parse("fromjson('1')")) == "fromJSON('1')"


def test_status_functions_are_answered_by_the_caller() -> None:
    after_success = StepStatus(succeeded=True, failed=False)
    after_failure = StepStatus(succeeded=False, failed=True)
    assert ev("success()", status=after_success) is True
    assert ev("failure()", status=after_success) is False
    assert ev("failure() && steps.build.status == 'succeeded'", status=after_failure) is True
    assert ev("always()", status=after_failure) is True
    assert ev("success() || always()", status=after_failure) is True


def test_status_functions_are_an_error_where_no_status_is_given() -> None:
    assert eval_error_of("'x' == 'x' && failure()") == (
        14,
        "failure() can only be used in a step's 'if'",
    )


# ---- text of values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (3.0, "3"),
        (-2.0, "-2"),
        (2.5, "2.5"),
        (-0.0, "0"),
        (7, "7"),
        (1e20, "1e+20"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        ("as is", "as is"),
        (["a", 1.0], '[\n  "a",\n  1\n]'),
        ({"k": None}, '{\n  "k": null\n}'),
    ],
)
def test_text_of_a_value_inside_a_string(value: Value, text: str) -> None:
    assert to_text(value) == text


def test_functions_write_arrays_and_objects_as_their_kind() -> None:
    assert to_string([1]) == "Array"
    assert to_string({}) == "Object"


def test_text_of_a_value_too_deep_for_json_is_an_error() -> None:
    deep: Any = []
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(ExpressionError, match="nested too deeply"):
        to_text(deep)


# ---- syntax errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("", 0, "empty expression"),
        ("   ", 3, "empty expression"),
        ("a ==", 4, "expected a value, a name or '(', found the end of the expression"),
        ("a == == b", 5, "expected a value, a name or '(', found '=='"),
        ("a b", 2, "expected an operator or the end of the expression, found 'b'"),
        ("(a", 0, "'(' is never closed"),
        ("((a) && (b)", 0, "'(' is never closed"),
        ("a)", 1, "expected an operator or the end of the expression, found ')'"),
        ("a[0", 1, "'[' is never closed"),
        ("contains('a', 'b'", 8, "'(' is never closed"),
        ("'abc", 0, "unclosed string literal (a ' is missing)"),
        ("x == 'it''s", 5, "unclosed string literal (a ' is missing)"),
        ('"abc"', 0, "strings are written in single quotes ('text'), not double quotes"),
        ("a = b", 2, "'=' is not an operator (did you mean '=='?)"),
        ("a & b", 2, "'&' is not an operator (did you mean '&&'?)"),
        ("a | b", 2, "'|' is not an operator (did you mean '||'?)"),
        ("a -1", 2, "'-' only starts a negative number; expressions have no arithmetic"),
        ("-a", 0, "'-' only starts a negative number; expressions have no arithmetic"),
        ("a.*", 2, "'*' is not supported in expressions"),
        ("a ~ b", 2, "unexpected character '~'"),
        ("1abc", 0, "invalid number '1abc'"),
        ("1.5.2", 0, "invalid number '1.5.2'"),
        ("foo.1", 4, "expected a property name after '.', found '1'"),
        ("foo[1].2", 7, "expected a property name after '.', found '2'"),
        ("a.", 2, "expected a property name after '.', found the end of the expression"),
        ("contain('abc', 'b')", 0, "unknown function 'contain' (did you mean 'contains'?)"),
        (
            "1 && startwith('a', 'b')",
            5,
            "unknown function 'startwith' (did you mean 'startsWith'?)",
        ),
        ("tojsn(1)", 0, "unknown function 'tojsn' (did you mean 'toJSON'?)"),
        ("success(1)", 0, "success() takes 0 arguments, got 1"),
        ("contains('a')", 0, "contains() takes 2 arguments, got 1"),
        ("join()", 0, "join() takes 1 or 2 arguments, got 0"),
        ("join(1, 2, 3)", 0, "join() takes 1 or 2 arguments, got 3"),
        ("format()", 0, "format() takes at least 1 argument, got 0"),
        ("fromJSON(1, 2)", 0, "fromJSON() takes 1 argument, got 2"),
        (
            "f(a,)",
            0,
            "unknown function 'f'; known: success, failure, always, contains, "
            "startsWith, endsWith, format, join, toJSON, fromJSON",
        ),
        ("join(a,)", 7, "expected a value, a name or '(', found ')'"),
    ],
)
def test_syntax_errors_say_what_and_where(text: str, offset: int, message: str) -> None:
    assert error_of(text) == (offset, message)


def test_nesting_deeper_than_the_limit_is_a_clear_error() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)
    assert error_of(deep) == (MAX_DEPTH, f"expression is nested more than {MAX_DEPTH} levels deep")
    fine = "(" * (MAX_DEPTH - 1) + "a" + ")" * (MAX_DEPTH - 1)
    assert parse(fine) == ContextName("a")


@pytest.mark.parametrize(
    "text",
    [
        "(" * 10_000,
        "!" * 10_000 + "a",
        "a" + ".b" * 5_000,
        "a" + "[0]" * 5_000,
        " || ".join(["a"] * 5_000),
        "f(" * 5_000,
        "contains(" * 5_000,
        "a[" * 5_000,
    ],
    ids=["parens", "nots", "properties", "indexes", "ors", "unknown-calls", "calls", "brackets"],
)
def test_deep_or_long_input_never_overflows_the_stack(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


def test_a_long_chain_within_the_depth_limit_is_fine() -> None:
    text = " || ".join(f"vars.x{i}" for i in range(MAX_DEPTH - 1))
    assert ev(text) is None


def test_expression_length_is_bounded() -> None:
    text = "'" + "x" * MAX_LENGTH + "'"
    assert error_of(text) == (MAX_LENGTH, f"expression is longer than {MAX_LENGTH} characters")
    assert ev("'" + "x" * (MAX_LENGTH - 2) + "'") == "x" * (MAX_LENGTH - 2)


def test_offsets_in_errors_shift_into_an_enclosing_string() -> None:
    error = ExpressionError("bad", 3).shifted(10)
    assert (error.offset, error.message, str(error)) == (13, "bad", "bad")


# ---- analysis ---------------------------------------------------------------------------------


def test_references_with_their_paths_and_offsets() -> None:
    text = "steps.build.outputs['v-1'] == vars.region && contains(matrix.os, env.HOME)"
    refs = references(parse(text))
    assert refs == (
        Reference("steps", ("build", "outputs", "v-1"), 0, (6, 12, 20)),
        Reference("vars", ("region",), 30, (35,)),
        Reference("matrix", ("os",), 54, (61,)),
        Reference("env", ("HOME",), 65, (69,)),
    )
    assert [text[r.offset : r.offset + len(r.context)] for r in refs] == [
        "steps",
        "vars",
        "matrix",
        "env",
    ]
    assert refs[0].dotted == "steps.build.outputs.v-1"


def test_a_reference_path_stops_at_a_computed_index_and_the_index_is_a_reference_too() -> None:
    refs = references(parse("steps[vars.step].outputs.x[0]"))
    assert refs == (Reference("steps", (), 0, ()), Reference("vars", ("step",), 6, (11,)))


def test_a_literal_number_index_is_part_of_the_path() -> None:
    (ref,) = references(parse("vars.list[1]"))
    assert ref.path == ("list", 1)
    assert ref.dotted == "vars.list[1]"


def test_paths_on_function_results_are_not_context_references() -> None:
    assert references(parse("fromJSON(vars.x).a.b")) == (Reference("vars", ("x",), 9, (14,)),)


def test_calls_and_status_functions() -> None:
    expr = parse("format('{0}', x) != '' && (failure() || contains(y, 'z'))")
    assert calls(expr) == (
        FunctionCall(Function.FORMAT, 0),
        FunctionCall(Function.FAILURE, 27),
        FunctionCall(Function.CONTAINS, 40),
    )
    assert uses_status_function(expr)
    assert not uses_status_function(parse("steps.a.status == 'failed'"))


def test_reference_is_set_tells_a_missing_output_from_an_empty_one() -> None:
    contexts: dict[str, Value] = {"steps": {"build": {"outputs": {"empty": "", "nil": None}}}}

    def is_set(text: str) -> bool:
        (ref,) = references(parse(text))
        return reference_is_set(contexts, ref)

    assert is_set("steps.build.outputs.empty")
    assert is_set("steps.build.outputs.nil")
    assert is_set("steps.BUILD.outputs")
    assert not is_set("steps.build.outputs.version")
    assert not is_set("steps.test.outputs.version")
    assert not is_set("vars.x")


# ---- printing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "printed", "grouped"),
    [
        ("a  ==b", "a == b", "a == b"),
        ("(a == b)", "a == b", "a == b"),
        ("a || b && c", "a || b && c", "a || (b && c)"),
        ("(a || b) && c", "(a || b) && c", "(a || b) && c"),
        ("a == (b == c)", "a == (b == c)", "a == (b == c)"),
        ("!(a)", "!a", "!a"),
        ("!(a.b)", "!a.b", "!a.b"),
        ("!(a < b)", "!(a < b)", "!(a < b)"),
        ("(!a).b", "(!a).b", "(!a).b"),
        ("(1).x", "(1).x", "(1).x"),
        ("'x'.y", "'x'.y", "'x'.y"),
        ("a['b c']['it''s']", "a['b c']['it''s']", "a['b c']['it''s']"),
        ("1.50", "1.5", "1.5"),
        ("0x10", "16", "16"),
        ("-0.5e1", "-5", "-5"),
    ],
)
def test_unparse(text: str, printed: str, grouped: str) -> None:
    assert unparse(parse(text)) == printed
    assert unparse_grouped(parse(text)) == grouped


# ---- properties -------------------------------------------------------------------------------

KEYWORDS = {"true", "false", "null"}
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,6}", fullmatch=True).filter(
    lambda name: name not in KEYWORDS
)
numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(float),
    st.floats(allow_nan=False, allow_infinity=False),
)
leaves: st.SearchStrategy[Expr] = st.one_of(
    st.just(Null()),
    st.booleans().map(Boolean),
    numbers.map(Number),
    st.text(max_size=8).map(String),
    identifiers.map(ContextName),
)


def _calls(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    def with_args(function: Function) -> st.SearchStrategy[Expr]:
        fewest, most = ARITY[function]
        args = st.lists(children, min_size=fewest, max_size=fewest + 2 if most is None else most)
        return args.map(lambda found: Call(function, tuple(found)))

    return st.sampled_from(list(Function)).flatmap(with_args)


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(Property, children, identifiers),
        st.builds(Index, children, children),
        st.builds(Not, children),
        st.builds(Binary, st.sampled_from(list(BinaryOp)), children, children),
        _calls(children),
    )


trees = st.recursive(leaves, _extend, max_leaves=12)


@given(trees)
def test_printed_trees_parse_back_to_themselves(tree: Expr) -> None:
    assert parse(unparse(tree)) == tree
    assert parse(unparse_grouped(tree)) == tree


def _literal_only(tree: Expr) -> Expr:
    """The tree with every context name replaced by a literal, so it evaluates without contexts."""
    match tree:
        case ContextName(name=name):
            return String(name)
        case Property(target=target, name=name):
            return Property(_literal_only(target), name)
        case Index(target=target, index=index):
            return Index(_literal_only(target), _literal_only(index))
        case Not(operand=operand):
            return Not(_literal_only(operand))
        case Binary(op=op, left=left, right=right):
            return Binary(op, _literal_only(left), _literal_only(right))
        case Call(function=function, args=args):
            return Call(function, tuple(_literal_only(a) for a in args))
    return tree


def _outcome(tree: Expr) -> tuple[str, Any]:
    try:
        value = evaluate(tree, {}, StepStatus(succeeded=True, failed=False))
    except ExpressionError as error:
        return "error", (error.message, error.offset)
    return "value", to_text(value)


@given(trees.map(_literal_only))
def test_a_printed_tree_evaluates_like_the_tree(tree: Expr) -> None:
    # Offsets differ (the tree has none), so compare the error messages only.
    direct, printed = _outcome(tree), _outcome(parse(unparse(tree)))
    assert direct[0] == printed[0]
    if direct[0] == "value":
        assert direct == printed
    else:
        assert direct[1][0] == printed[1][0]


BINARY_OPS = [op.value for op in BinaryOp]


def _reference_parse(operands: list[Expr], ops: list[str]) -> Expr:
    """Shunting-yard over GitHub's table (all left-associative): the grouping `parse` must find."""
    output: list[Expr] = [operands[0]]
    stack: list[BinaryOp] = []

    def reduce() -> None:
        op = stack.pop()
        right, left = output.pop(), output.pop()
        output.append(Binary(op, left, right))

    for text, operand in zip(ops, operands[1:], strict=True):
        op = BinaryOp(text)
        while stack and PRECEDENCE[stack[-1]] >= PRECEDENCE[op]:
            reduce()
        stack.append(op)
        output.append(operand)
    while stack:
        reduce()
    return output[0]


operands = st.one_of(
    identifiers.map(ContextName),
    st.integers(0, 99).map(lambda n: Number(float(n))),
    identifiers.map(lambda name: Not(ContextName(name))),
    identifiers.map(lambda name: Property(ContextName("a"), name)),
)


@given(st.lists(st.tuples(st.sampled_from(BINARY_OPS), operands), max_size=10), operands)
def test_operator_precedence_matches_a_reference_parser(
    tail: list[tuple[str, Expr]], first: Expr
) -> None:
    ops = [op for op, _ in tail]
    items = [first, *(operand for _, operand in tail)]
    text = unparse(items[0]) + "".join(f" {op} {unparse(e)}" for op, e in tail)
    assert parse(text) == _reference_parse(items, ops)


TOKENS = [
    "a", "b.c", "steps", "[", "]", "(", ")", ".", ",", "!", "<", "<=", ">", ">=", "==", "!=",
    "&&", "||", "'x'", "'", "''", "1", "-", "0x", "1e", ".5", "true", "null", "format(",
    "contains(", "join(", "fromJSON(", "success()", "{", "}", "\"", " ", "\n", "é", "*", "=",
]  # fmt: skip


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=40), st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)))
def test_parse_raises_nothing_but_expression_error(text: str) -> None:
    try:
        tree = parse(text)
    except ExpressionError as error:
        assert 0 <= error.offset <= len(text)
        assert error.message
        return
    assert parse(unparse(tree)) == tree


@settings(max_examples=200)
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map("".join))
def test_evaluating_any_parsed_text_raises_nothing_but_expression_error(text: str) -> None:
    try:
        tree = parse(text)
    except ExpressionError:
        return
    contexts: dict[str, Value] = {"a": {"x": [1, "2"]}, "b": {"c": None}, "steps": {}}
    try:
        to_text(evaluate(tree, contexts, StepStatus(succeeded=False, failed=True)))
    except ExpressionError as error:
        assert error.message


@given(st.text())
def test_any_string_survives_a_literal_round_trip(value: str) -> None:
    assert ev("'" + value.replace("'", "''") + "'") == value
