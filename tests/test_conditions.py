"""`if:` conditions in the dispatcher, stepped by hand (SPEC §10.3): when a step is judged, what
`success()` and `failure()` see, and which steps may still start after a failure stopped the run."""

from __future__ import annotations

from builders import step, workflow

from wfrun.dispatch import Completion, Dependencies, Dispatcher
from wfrun.expressions import ExpressionError
from wfrun.model import Step, Workflow
from wfrun.planner import make_plan
from wfrun.results import StepStatus
from wfrun.templates import parse_condition


def when(base: Step, condition: str) -> Step:
    return base._replace(condition=condition)


def judge_by_status(judged: list[str]) -> object:
    """A judge that evaluates the condition with only the status functions, noting each call."""

    def judge(s: Step, deps: Dependencies) -> bool:
        judged.append(s.id)
        assert s.condition is not None
        return parse_condition(s.condition).holds({}, deps)

    return judge


def dispatcher(wf: Workflow, judged: list[str], keep_going: bool = False) -> Dispatcher:
    judge = judge_by_status(judged)
    return Dispatcher(make_plan(wf, parallel=True), keep_going=keep_going, judge=judge)  # type: ignore[arg-type]


def test_a_cleanup_step_runs_after_a_failure_stopped_the_run() -> None:
    judged: list[str] = []
    wf = workflow(
        step("a"),
        step("slow"),
        step("next", ("slow",)),
        when(step("cleanup", ("a", "next")), "always()"),
        when(step("notify", ("a",)), "failure()"),
        step("after", ("a",)),
    )
    d = dispatcher(wf, judged)
    assert sorted(d.startable()) == ["a", "slow"]
    effects = d.finish("a", Completion.FATAL_FAILURE)
    skipped = {s.step_id: s.reason for s in effects.skipped}
    # 'after' needs a's success; 'next' will never start now that the run stops.
    assert skipped["after"] == "dependency 'a' failed"
    assert skipped["next"] == "not started: 'a' failed and stopped the run"
    assert sorted(effects.ready) == ["cleanup", "notify"]
    assert sorted(d.startable()) == ["cleanup", "notify"]
    assert sorted(judged) == ["cleanup", "notify"]
    for sid in ("cleanup", "notify", "slow"):
        d.finish(sid, Completion.SUCCEEDED)
    assert not d.is_active()


def test_a_condition_that_uses_status_functions_waits_for_every_dependency() -> None:
    judged: list[str] = []
    d = dispatcher(
        workflow(step("a"), step("b"), when(step("c", ("a", "b")), "failure()")),
        judged,
        keep_going=True,
    )
    d.startable()
    d.finish("a", Completion.FATAL_FAILURE)
    assert judged == []  # b still runs
    effects = d.finish("b", Completion.SUCCEEDED)
    assert judged == ["c"] and effects.ready == ["c"]


def test_a_false_condition_skips_the_step_and_its_dependents() -> None:
    judged: list[str] = []
    d = dispatcher(
        workflow(step("a"), when(step("b", ("a",)), "failure()"), step("c", ("b",))), judged
    )
    d.startable()
    effects = d.finish("a", Completion.SUCCEEDED)
    assert [(s.step_id, s.status, s.reason) for s in effects.skipped] == [
        ("b", StepStatus.SKIPPED, "condition false: failure()"),
        ("c", StepStatus.SKIPPED, "dependency 'b' was skipped"),
    ]
    assert not d.is_active()


def test_a_condition_that_cannot_be_evaluated_fails_its_step() -> None:
    def broken(s: Step, deps: Dependencies) -> bool:
        raise ExpressionError("fromJSON(): not JSON", 0)

    wf = workflow(step("a"), when(step("b", ("a",)), "x"), step("c", ("b",)))
    d = Dispatcher(make_plan(wf, parallel=True), judge=broken)
    d.startable()
    effects = d.finish("a", Completion.SUCCEEDED)
    assert [(s.step_id, s.status) for s in effects.skipped] == [
        ("b", StepStatus.FAILED),
        ("c", StepStatus.SKIPPED),
    ]
    assert effects.skipped[0].reason == "if: fromJSON(): not JSON"


def test_interrupts_start_nothing_new_not_even_cleanup() -> None:
    judged: list[str] = []
    d = dispatcher(workflow(step("a"), when(step("cleanup", ("a",)), "always()")), judged)
    d.startable()
    d.stop("not started: run interrupted", StepStatus.CANCELLED)
    d.finish("a", Completion.CANCELLED)
    assert d.startable() == []
    assert not d.is_active()
    assert [s.step_id for s in d.abandon()] == ["cleanup"]


def test_root_steps_are_judged_before_anything_runs() -> None:
    judged: list[str] = []
    d = dispatcher(workflow(when(step("a"), "failure()"), step("b")), judged)
    assert [s.step_id for s in d.take_initial_skips()] == ["a"]
    assert d.startable() == ["b"]


def test_a_step_without_if_after_a_cleanup_step_still_needs_every_ancestor_to_succeed() -> None:
    judged: list[str] = []
    wf = workflow(
        step("build"),
        when(step("notify", ("build",)), "always()"),
        step("publish", ("notify",)),
    )
    d = dispatcher(wf, judged, keep_going=True)
    d.startable()
    effects = d.finish("build", Completion.FATAL_FAILURE)
    assert effects.ready == ["notify"]
    d.startable()
    effects = d.finish("notify", Completion.SUCCEEDED)
    assert [(s.step_id, s.reason) for s in effects.skipped] == [
        ("publish", "dependency 'build' failed")
    ]
    assert not d.is_active()
