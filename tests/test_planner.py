"""The planner: groups by dependency level, dependents, critical path, mode and cap."""

from __future__ import annotations

import pytest
from builders import plan_of, step, workflow

from wfrun.errors import WorkflowError
from wfrun.planner import make_plan


def test_groups_are_dependency_levels_in_file_order() -> None:
    plan = plan_of(
        step("deploy", ("test", "lint")),
        step("build"),
        step("test", ("build",)),
        step("lint"),
    )
    assert plan.groups == (("build", "lint"), ("test",), ("deploy",))
    assert plan.group_of["deploy"] == 2
    assert plan.dependents["build"] == ("test",)
    assert plan.order.index("build") < plan.order.index("test") < plan.order.index("deploy")


def test_critical_path_by_step_count_then_file_order() -> None:
    plan = plan_of(step("a"), step("b"), step("c", ("b",)), step("d", ("a",)), step("e", ("c",)))
    assert plan.critical_path == ("b", "c", "e")
    assert plan.remaining["b"] == 3 and plan.remaining["a"] == 2


def test_critical_path_by_previous_durations() -> None:
    plan = plan_of(
        step("a"), step("b"), step("c", ("b",)), durations={"a": 10.0, "b": 1.0, "c": 1.0}
    )
    assert plan.critical_path == ("a",) and plan.durations_known


@pytest.mark.parametrize(
    ("file_enabled", "option", "jobs", "expected"),
    [
        (True, None, None, (True, 6)),
        (False, None, None, (False, 1)),
        (False, True, None, (True, 6)),
        (True, False, 8, (False, 1)),
        (True, None, 3, (True, 3)),
    ],
)
def test_mode_and_cap(
    file_enabled: bool, option: bool | None, jobs: int | None, expected: tuple[bool, int]
) -> None:

    wf = workflow(step("a"), cap=6)
    wf = wf._replace(parallel=wf.parallel._replace(enabled=file_enabled))
    plan = make_plan(wf, parallel=option, max_concurrency=jobs)
    assert (plan.parallel, plan.max_concurrency) == expected


def test_plan_json_shape() -> None:
    plan = plan_of(step("a", pools={"cpu": 2}, limit=1), step("b", ("a",)), pools={"cpu": 2})
    assert plan.to_dict() == {
        "workflow": "ci",
        "parallel": True,
        "maxConcurrency": 4,
        "resources": {"cpu": 2},
        "groups": [{"id": 0, "steps": ["a"]}, {"id": 1, "steps": ["b"]}],
        "criticalPath": ["a", "b"],
        "steps": {
            "a": {
                "parallelGroup": 0,
                "dependsOn": [],
                "resources": {"cpu": 2},
                "maxConcurrency": 1,
                "references": [],
            },
            "b": {
                "parallelGroup": 1,
                "dependsOn": ["a"],
                "resources": {},
                "maxConcurrency": None,
                "references": [],
            },
        },
    }


def test_a_cycle_in_a_workflow_built_in_code_is_a_workflow_error() -> None:
    with pytest.raises(WorkflowError, match=r"dependency cycle: .* -> "):
        plan_of(step("a", ("b",)), step("b", ("a",)))
