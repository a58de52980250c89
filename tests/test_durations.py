"""Durations always carry a unit; a bare number is refused with a suggestion."""

from __future__ import annotations

import pytest

from wfrun.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1.5s", 1.5)],
)
def test_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "900",
            "duration 900 has no unit: write 900s, 15m or 900000ms (a bare number is ambiguous)",
        ),
        (
            "3600",
            "duration 3600 has no unit: write 3600s, 60m or 3600000ms (a bare number is ambiguous)",
        ),
        ("1.5", "duration 1.5 has no unit: write 1.5s or 1500ms (a bare number is ambiguous)"),
        (
            "10 minutes",
            "invalid duration '10 minutes': write a number with a unit, e.g. 500ms, 30s, 5m, 1h30m",
        ),
        ("0s", "invalid duration '0s': it must be longer than zero"),
    ],
)
def test_refusals_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert str(err.value) == message


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.85, 12.34, 245, 3720)] == [
        "850ms",
        "12.3s",
        "4m05s",
        "1h02m",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "300000",
            "duration 300000 has no unit: write 300000ms (= 5m) or 300000s (= 83h20m) "
            "(a bare number is ambiguous; this one reads like milliseconds)",
        ),
        (
            "2000000",
            "duration 2000000 has no unit: write 2000000ms (= 33m20s) "
            "(a bare number is ambiguous; this one reads like milliseconds)",
        ),
        (
            "900000000",
            "duration 900000000 has no unit and is out of range: write a number with a unit, "
            "e.g. 500ms, 30s, 5m, 1h30m (at most 168h)",
        ),
    ],
)
def test_a_bare_number_that_reads_like_milliseconds_says_so_first(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert str(err.value) == message


@pytest.mark.parametrize("text", ["169h", "3000000h", "604801s", "9" * 500 + "s"])
def test_durations_longer_than_a_week_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"is too long: at most 168h \(a week\)"):
        parse_duration(text)


def test_a_week_is_the_longest_duration() -> None:
    assert parse_duration("168h") == parse_duration("604800s") == 7 * 24 * 3600


def test_format_duration_rounds_before_choosing_the_unit() -> None:
    from wfrun.durations import format_duration

    assert [format_duration(s) for s in (0.4, 0.9996, 1.0, 59.97, 61)] == [
        "400ms",
        "1.0s",
        "1.0s",
        "1m00s",
        "1m01s",
    ]
