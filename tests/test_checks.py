"""Semantic checks and suggestions, below the loader: graphs, naming, soundness, did-you-mean."""

from __future__ import annotations

from typing import Any

import pytest

from wfrun.checks import (
    JsonPath,
    Source,
    check_workflow,
    dotted,
    requested_units,
    shortest_cycle,
    strongly_connected,
    value_name,
)
from wfrun.model import Position
from wfrun.suggest import closest, did_you_mean


def source(data: Any, broken: list[JsonPath] | None = None) -> Source:
    return Source.validated("wf.yaml", data, lambda path: Position(1, 1), broken or [])


def steps(*specs: tuple[str, list[str]]) -> dict[str, Any]:
    return {
        "steps": [{"id": i, "dependsOn": deps, "config": {"command": "x"}} for i, deps in specs]
    }


def messages(data: dict[str, Any], broken: list[JsonPath] | None = None) -> list[str]:
    return [d.message for d in check_workflow(source(data, broken), {})]


# ---- graphs ----------------------------------------------------------------------------------


def test_components_of_a_graph_with_two_cycles_and_a_tail() -> None:
    graph = {0: [1], 1: [0, 2], 2: [3], 3: [2], 4: [0]}
    components = sorted(sorted(c) for c in strongly_connected(graph))
    assert components == [[0, 1], [2, 3], [4]]


def test_a_long_chain_does_not_overflow_the_stack() -> None:
    graph = {i: [i - 1] if i else [] for i in range(50_000)}
    assert len(strongly_connected(graph)) == 50_000


def test_theshortest_cycle_through_the_first_step_is_reported() -> None:
    graph = {0: [1, 3], 1: [2], 2: [0], 3: [0]}
    assert shortest_cycle(0, graph, {0, 1, 2, 3}) == [0, 3, 0]


def test_each_cycle_is_reported_once_from_its_first_step_in_file_order() -> None:
    data = steps(("a", ["c"]), ("b", ["a"]), ("c", ["b"]), ("d", []))
    assert messages(data) == ["dependency cycle: a -> c -> b -> a"]


def test_steps_with_broken_dependencies_are_left_to_the_schema() -> None:
    data = steps(("a", ["b"]), ("b", ["a"]))
    assert messages(data, broken=[("steps", 1, "dependsOn", 0)]) == []


def test_a_second_step_with_a_taken_id_does_not_join_the_graph() -> None:
    data = steps(("a", []), ("b", ["a"]), ("a", ["b"]))
    assert messages(data) == ["duplicate step id 'a' (first at line 1)"]


# ---- pools -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "units"),
    [("cpu", {"cpu": 1}), (["cpu", "io"], {"cpu": 1, "io": 1}), ({"cpu": 2}, {"cpu": 2})],
)
def test_requested_units(resource: Any, units: dict[str, int]) -> None:
    assert requested_units(resource) == units


def test_a_pool_with_a_broken_capacity_is_still_declared() -> None:
    data = {
        "parallel": {"resources": {"cpu": 0}},
        "steps": [{"id": "a", "config": {"command": "x"}, "parallel": {"resource": {"cpu": 5}}}],
    }
    assert messages(data, broken=[("parallel", "resources", "cpu")]) == []


# ---- naming ----------------------------------------------------------------------------------


def test_value_names() -> None:
    data = {"steps": [{"id": "build"}, {"name": "no id"}]}
    assert value_name((), data) == "the workflow"
    assert value_name(("env", "PORT"), data) == "'env.PORT'"
    assert value_name(("steps", 0), data) == "step 'build'"
    assert value_name(("steps", 1, "config", "args", 0), data) == "'config.args[0]' of step 2"
    assert value_name(("agents", "rev", "command"), data) == "'command' of agent 'rev'"
    assert dotted(("a", 0, "b")) == "a[0].b"


def test_soundness_looks_above_at_and_below_a_path() -> None:
    checked = source({}, broken=[("steps", 1, "config")])
    assert not checked.ok(("steps", 1, "config", "command"))  # above
    assert not checked.ok(("steps", 1, "config"))  # at
    assert not checked.ok(("steps", 1))  # below
    assert checked.ok(("steps", 0, "config"))
    assert checked.ok(("steps", 1, "id"))


# ---- suggestions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("dependson", "dependsOn"),
        ("DEPENDSON", "dependsOn"),
        ("biuld", "build"),
        ("comand", "command"),
        ("gpu", None),  # one letter off a three-letter name is another name, not a typo
        ("zzz", None),
    ],
)
def test_closest(word: str, expected: str | None) -> None:
    candidates = ["dependsOn", "build", "command", "cpu", "config"]
    assert closest(word, candidates) == expected


def test_did_you_mean() -> None:
    assert did_you_mean("stpes", ["steps", "name"]) == " (did you mean 'steps'?)"
    assert did_you_mean("steps", ["steps"]) == ""
    assert did_you_mean("x", []) == ""
