"""`${{ }}` references inside strings, the origin system's `{{ }}` forms, and `if:` conditions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfrun.expressions import (
    ContextName,
    ExpressionError,
    Function,
    FunctionCall,
    Property,
    Reference,
    StepStatus,
    Value,
)
from wfrun.templates import (
    OriginReference,
    Placeholder,
    origin_references,
    parse_condition,
    parse_template,
    substitute,
    template_problems,
)

CONTEXTS: dict[str, Value] = {
    "steps": {
        "build": {"outputs": {"version": "1.2.3", "notes": "a b\n'c' \"d\" $HOME ; rm -rf /"}}
    },
    "vars": {"region": "eu-west", "replicas": 3},
    "env": {"HOME": "/home/u"},
}


def problems(text: str) -> list[tuple[int, str]]:
    return [(p.offset, p.message) for p in template_problems(text)]


# ---- scanning ---------------------------------------------------------------------------------


def test_each_reference_with_its_offsets() -> None:
    text = "--tag=${{ steps.build.outputs.version }}-${{vars.region}}"
    template = parse_template(text)
    first, second = template.placeholders
    assert (first.start, first.end, first.source, first.source_offset) == (
        6,
        40,
        " steps.build.outputs.version ",
        9,
    )
    assert text[first.start : first.end] == "${{ steps.build.outputs.version }}"
    assert (second.start, second.end, second.source) == (41, 57, "vars.region")
    assert template.parts == ("--tag=", first, "-", second)
    assert not template.is_literal


def test_a_closing_brace_pair_inside_a_string_literal_does_not_end_the_reference() -> None:
    text = "${{ format('{{0}} }}', 'x') }}!"
    (placeholder,) = parse_template(text).placeholders
    assert placeholder.end == len(text) - 1
    assert substitute(text, {}) == "{0} }!"


def test_a_quote_escaped_by_doubling_does_not_end_the_string_literal() -> None:
    assert substitute("${{ 'it''s }}' }}", {}) == "it's }}"


def test_double_dollar_writes_a_literal_reference_opening() -> None:
    text = "echo $${{ not.a.reference }} ${{ vars.region }}"
    template = parse_template(text)
    assert len(template.placeholders) == 1
    assert template.render(CONTEXTS) == "echo ${{ not.a.reference }} eu-west"


def test_other_dollars_are_left_alone() -> None:
    text = "echo $$ $HOME ${HOME} $ {{x}} $$$"
    assert parse_template(text).is_literal
    assert substitute(text, CONTEXTS) == text


def test_a_string_without_references_is_one_literal_part() -> None:
    assert parse_template("plain").parts == ("plain",)
    assert parse_template("").parts == ("",)


def test_an_unclosed_reference_is_an_error_at_its_opening() -> None:
    assert problems("echo ${{ steps.build.outputs.version") == [
        (5, "'${{' is never closed (add '}}')")
    ]
    assert problems("a ${{ b }} c ${{ d } }") == [(13, "'${{' is never closed (add '}}')")]


def test_an_unclosed_string_literal_inside_a_reference_is_an_error_at_its_quote() -> None:
    assert problems("x ${{ 'abc }} y") == [
        (6, "unclosed string literal in '${{ … }}' (a ' is missing)")
    ]


def test_syntax_errors_point_into_the_string_and_every_one_is_reported() -> None:
    text = "${{ a == }} and ${{ contain(x, 'y') }} and ${{ }}"
    assert problems(text) == [
        (9, "expected a value, a name or '(', found the end of the expression"),
        (20, "unknown function 'contain' (did you mean 'contains'?)"),
        (47, "empty expression"),
    ]
    assert text[20:27] == "contain"
    with pytest.raises(ExpressionError) as caught:
        parse_template(text)
    assert caught.value.offset == 9


def test_references_and_calls_have_offsets_in_the_string() -> None:
    text = "v=${{ steps.build.outputs.version }} ${{ format('{0}', vars.region) }}"
    template = parse_template(text)
    assert template.references() == (
        Reference("steps", ("build", "outputs", "version"), 6, (12, 18, 26)),
        Reference("vars", ("region",), 55, (60,)),
    )
    assert text[6:11] == "steps" and text[26:33] == "version" and text[55:59] == "vars"
    assert template.calls() == (FunctionCall(Function.FORMAT, 41),)


# ---- the origin system's forms ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "replacement"),
    [
        ("{{steps.research.output}}", "${{ steps.research.outputs.result }}"),
        ("{{ steps.build.outputs.version }}", "${{ steps.build.outputs.version }}"),
        ("{{steps.build.output.version}}", "${{ steps.build.outputs.version }}"),
        ("{{env.API_TOKEN}}", "${{ env.API_TOKEN }}"),
        ("{{secrets.API_TOKEN}}", "${{ env.API_TOKEN }}"),
        ("{{variables.region}}", "${{ vars.region }}"),
        ("{{parameters.region}}", "${{ vars.region }}"),
        ("{{ vars.region }}", "${{ vars.region }}"),
        ("{{matrix.os}}", "${{ matrix.os }}"),
    ],
)
def test_origin_references_are_errors_that_show_the_form_to_write(
    written: str, replacement: str
) -> None:
    text = f"Bearer {written}"
    assert origin_references(text) == (OriginReference(7, 7 + len(written), written, replacement),)
    assert problems(text) == [
        (
            7,
            f"{written!r} is the origin system's syntax and is not substituted; "
            f"write {replacement!r}",
        )
    ]


@pytest.mark.parametrize(
    "text",
    [
        "format uses {{0}} and {0}",
        "a Jinja {{ name }} or {{ x | upper }} or {{ user.name }}",
        'json {{"a": 1}}',
        "escaped $${{ steps.x.output }}",
        "${{ format('{{steps.x.output}}') }}",
    ],
)
def test_other_double_braces_are_left_alone(text: str) -> None:
    assert origin_references(text) == ()
    assert template_problems(text) == ()


def test_origin_references_and_syntax_errors_are_reported_together_in_order() -> None:
    text = "{{env.A}} ${{ a = b }} {{variables.B}}"
    assert [offset for offset, _ in problems(text)] == [0, 16, 23]


# ---- substitution -----------------------------------------------------------------------------


def test_a_value_replaces_its_reference_inside_the_string_and_stays_one_argument() -> None:
    notes = "a b\n'c' \"d\" $HOME ; rm -rf /"
    assert substitute("--notes=${{ steps.build.outputs.notes }}", CONTEXTS) == f"--notes={notes}"
    argv = [substitute(arg, CONTEXTS) for arg in ["echo", "${{ steps.build.outputs.notes }}"]]
    assert argv == ["echo", notes]


def test_values_are_written_as_text_the_github_way() -> None:
    text = "${{ vars.replicas }}|${{ null }}|${{ true }}|${{ 1.50 }}|${{ fromJSON('[1]') }}"
    assert substitute(text, CONTEXTS) == "3||true|1.5|[\n  1\n]"


def test_a_value_is_never_scanned_again() -> None:
    contexts: dict[str, Value] = {"vars": {"x": "${{ vars.y }} {{env.Z}} $${{"}}
    assert substitute("${{ vars.x }}", contexts) == "${{ vars.y }} {{env.Z}} $${{"


def test_an_evaluation_error_points_into_the_string() -> None:
    text = "x=${{ fromJSON(vars.region) }}"
    with pytest.raises(ExpressionError) as caught:
        substitute(text, CONTEXTS)
    assert caught.value.offset == 6
    assert caught.value.message.startswith("fromJSON(): invalid JSON 'eu-west'")


def test_status_functions_outside_conditions_are_refused_where_they_are() -> None:
    with pytest.raises(ExpressionError) as caught:
        substitute("ok: ${{ success() }}", CONTEXTS)
    assert (caught.value.offset, caught.value.message) == (
        8,
        "success() can only be used in a step's 'if'",
    )


def test_a_placeholder_renders_on_its_own() -> None:
    (placeholder,) = parse_template("${{ vars.region }}").placeholders
    assert isinstance(placeholder, Placeholder)
    assert placeholder.render(CONTEXTS) == "eu-west"


# ---- conditions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("vars.region == 'EU-WEST'", 0),
        ("${{ vars.region == 'EU-WEST' }}", 3),
        ("  ${{vars.region == 'EU-WEST'}}  ", 5),
    ],
)
def test_a_condition_with_or_without_the_reference_braces(text: str, offset: int) -> None:
    condition = parse_condition(text)
    assert condition.offset == offset
    assert text[offset : offset + len(condition.source)] == condition.source
    assert condition.references() == (
        Reference("vars", ("region",), text.index("vars"), (text.index("region"),)),
    )
    assert condition.holds(CONTEXTS, StepStatus(succeeded=True, failed=False)) is True


def test_a_condition_is_decided_by_the_status_the_caller_gives() -> None:
    condition = parse_condition("failure() || always() && vars.replicas > 5")
    assert condition.calls() == (
        FunctionCall(Function.FAILURE, 0),
        FunctionCall(Function.ALWAYS, 13),
    )
    assert condition.holds(CONTEXTS, StepStatus(succeeded=False, failed=True))
    assert not condition.holds(CONTEXTS, StepStatus(succeeded=True, failed=False))


def test_a_condition_value_is_read_by_truthiness() -> None:
    status = StepStatus(succeeded=True, failed=False)
    assert not parse_condition("''").holds(CONTEXTS, status)
    assert parse_condition("'false'").holds(CONTEXTS, status)  # a non-empty string
    assert not parse_condition("steps.build.outputs.missing").holds(CONTEXTS, status)


def test_a_condition_mixing_braces_and_bare_text_is_refused() -> None:
    for text in ["${{ success() }} && vars.x", "x ${{ a }}", "${{ a }}${{ b }}"]:
        with pytest.raises(ExpressionError) as caught:
            parse_condition(text)
        assert caught.value.message == (
            "write the whole condition inside one '${{ … }}', or leave '${{ }}' out"
        )
        assert caught.value.offset == text.index("${{")


def test_condition_errors_point_into_the_if_text() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_condition("${{ success() && }}")
    assert caught.value.offset == 17
    with pytest.raises(ExpressionError) as caught:
        parse_condition("steps.x.outputs.y = 'a'")
    assert (caught.value.offset, caught.value.message) == (
        18,
        "'=' is not an operator (did you mean '=='?)",
    )
    with pytest.raises(ExpressionError) as caught:
        parse_condition("${{ steps.a.status == 'failed'")
    assert caught.value.offset == 0


def test_a_condition_in_the_origin_syntax_shows_the_form_to_write() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_condition("{{steps.check.output}} == 'ok'")
    assert caught.value.offset == 0
    assert "write '${{ steps.check.outputs.result }}'" in caught.value.message


def test_a_condition_evaluation_error_points_into_the_if_text() -> None:
    condition = parse_condition("${{ fromJSON('{') }}")
    with pytest.raises(ExpressionError) as caught:
        condition.holds(CONTEXTS, StepStatus(succeeded=True, failed=False))
    assert caught.value.offset == 4


def test_a_parsed_condition_keeps_its_tree() -> None:
    assert parse_condition("${{ a.b }}").expression == Property(ContextName("a"), "b")


# ---- properties -------------------------------------------------------------------------------

PIECES = ["${{", "$${{", "}}", "{{", "'", "''", "$", "{", "}", " ", "a", "vars.region", "==",
          "env.X", "steps.x.output", "(", ")", "format(", "\n", "é", "success()"]  # fmt: skip
texts = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(PIECES), max_size=30).map("".join))


@settings(max_examples=300)
@given(texts)
def test_scanning_raises_nothing_but_expression_error(text: str) -> None:
    found = template_problems(text)
    assert all(0 <= p.offset <= len(text) for p in found)
    try:
        template = parse_template(text)
    except ExpressionError as error:
        assert found and error.offset == found[0].offset
        return
    assert not found
    for placeholder in template.placeholders:
        assert text[placeholder.start : placeholder.end] == "${{" + placeholder.source + "}}"
    try:
        template.render(CONTEXTS, StepStatus(succeeded=True, failed=False))
    except ExpressionError as error:
        assert 0 <= error.offset <= len(text)


@settings(max_examples=300)
@given(texts)
def test_conditions_raise_nothing_but_expression_error(text: str) -> None:
    try:
        condition = parse_condition(text)
    except ExpressionError as error:
        assert 0 <= error.offset <= len(text)
        return
    assert text[condition.offset : condition.offset + len(condition.source)] == condition.source


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=40))
def test_text_without_a_dollar_or_origin_reference_is_its_own_value(text: str) -> None:
    if origin_references(text):
        return
    assert substitute(text, {}) == text


@given(st.text(max_size=40), st.text(max_size=10), st.text(max_size=10))
def test_any_value_is_substituted_exactly_once_between_any_literal_text(
    value: str, before: str, after: str
) -> None:
    before, after = before.replace("$", ""), after.replace("$", "").lstrip("{")
    text = before + "${{ vars.v }}" + after
    if template_problems(text):
        return  # the literal text around it happened to hold an origin reference
    assert substitute(text, {"vars": {"v": value}}) == before + value + after


@given(st.text(max_size=40))
def test_a_string_literal_with_any_content_survives_a_reference(value: str) -> None:
    literal = "'" + value.replace("'", "''") + "'"
    assert substitute("<${{ " + literal + " }}>", {}) == f"<{value}>"
