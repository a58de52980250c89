"""A step's `matrix:` (SPEC §10.5): its combinations, in order, and the ids of its instances.

Pure functions over the plain data of the file, shared by the checks (which report clashes and
sizes with positions) and the loader (which builds one step per combination).
"""

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from wfrun.model import MatrixValue

MAX_INSTANCES = 1000
# Combinations looked at before giving up: `exclude` may drop many, but never this many.
MAX_EXAMINED = 100_000
EXCLUDE = "exclude"
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")


class Expansion(NamedTuple):
    """The instances of one matrix step, or why there are none."""

    combinations: tuple[Mapping[str, MatrixValue], ...] = ()
    too_many: bool = False  # more than MAX_INSTANCES (or more examined than MAX_EXAMINED)


def matrix_keys(matrix: Mapping[str, Any]) -> list[str]:
    return [key for key in matrix if key != EXCLUDE]


def value_text(value: MatrixValue) -> str:
    """How a value reads in an id, a name and `${{ matrix.NAME }}`: as the expression text of
    it (`true`, `3`, `3.10` stays `3.1`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def instance_id(base: str, combination: Mapping[str, MatrixValue]) -> str:
    """`ID-v1-v2…`, with characters outside `[A-Za-z0-9_-]` written as `_`."""
    parts = [_NOT_ID.sub("_", value_text(v)) for v in combination.values()]
    return "-".join([base, *parts])


def instance_name(name: str, combination: Mapping[str, MatrixValue]) -> str:
    """`test (linux, 3.12)`, as GitHub Actions names the jobs of a matrix."""
    return f"{name} ({', '.join(value_text(v) for v in combination.values())})"


def same_value(left: Any, right: Any) -> bool:
    # `true` is not `1` here, although Python thinks so.
    return (type(left) is type(right) and left == right) or (
        not isinstance(left, bool)
        and not isinstance(right, bool)
        and isinstance(left, int | float)
        and isinstance(right, int | float)
        and left == right
    )


def _excluded(combination: Mapping[str, Any], excludes: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        all(key in combination and same_value(combination[key], v) for key, v in rule.items())
        for rule in excludes
    )


def expand(matrix: Mapping[str, Any]) -> Expansion:
    """Every combination of the matrix's values, in order, less the excluded ones."""
    keys = matrix_keys(matrix)
    excludes = [rule for rule in matrix.get(EXCLUDE) or () if isinstance(rule, dict)]
    kept: list[Mapping[str, MatrixValue]] = []
    for examined, values in enumerate(itertools.product(*(matrix[k] for k in keys))):
        if examined >= MAX_EXAMINED:
            return Expansion(too_many=True)
        combination = dict(zip(keys, values, strict=True))
        if _excluded(combination, excludes):
            continue
        kept.append(combination)
        if len(kept) > MAX_INSTANCES:
            return Expansion(too_many=True)
    return Expansion(tuple(kept))


def raw_count(matrix: Mapping[str, Any]) -> int:
    """The number of combinations before `exclude`."""
    count = 1
    for key in matrix_keys(matrix):
        count *= len(matrix[key])
    return count


def instances(base: str, matrix: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(instance id, combination) of each instance, in order."""
    for combination in expand(matrix).combinations:
        yield instance_id(base, combination), combination
