"""RunState folds real events into counts, running and waiting steps, and pool usage."""

from __future__ import annotations

import time

from builders import fold, ok, plan_of, result, run_result, step

from wfrun.events import (
    Event,
    RunFinished,
    RunStarted,
    StepFinished,
    StepOutput,
    StepReady,
    StepStarted,
    StepWaiting,
    WaitKind,
    WaitReason,
)
from wfrun.output_text import printable, strip_ansi
from wfrun.reporters.state import RunState
from wfrun.results import RunStatus, StepResult, StepStatus

PLAN = plan_of(
    step("setup"),
    step("prepare-database", ("setup",), {"database": 1}),
    step("migrate", ("setup",), {"database": 1}),
    step("build", ("setup",), {"cpu": 1}),
    step("deploy", ("build", "migrate")),
    pools={"cpu": 2, "database": 1},
)


def started() -> list[Event]:
    return [
        RunStarted(PLAN.workflow, PLAN, "run-1", "/tmp/run-1"),
        StepReady("setup", 0.0),
        StepStarted("setup", 0, {}, 0.0),
        ok(PLAN, "setup", 0.0, 1.0),
        StepReady("prepare-database", 1.0),
        StepReady("migrate", 1.0),
        StepReady("build", 1.0),
        StepStarted("prepare-database", 1, {"database": 1}, 1.0),
        StepStarted("build", 1, {"cpu": 1}, 1.2),
        StepWaiting("migrate", WaitReason(WaitKind.POOL, "database", 0, 1, ()), 1.2),
    ]


def test_counts_running_and_waiting() -> None:
    state = fold(started())
    counts = state.counts()
    assert (counts.total, counts.finished, counts.succeeded) == (5, 1, 1)
    assert (counts.running, counts.ready, counts.not_ready, counts.waiting) == (2, 1, 1, 2)
    assert [r.step_id for r in state.running()] == ["prepare-database", "build"]
    assert state.running()[1].resources == {"cpu": 1}


def test_pool_reason_uses_live_usage_not_the_stale_numbers() -> None:
    state = fold(started())
    waiting = state.waiting()
    assert waiting[0].step_id == "migrate"
    assert waiting[0].ready
    assert waiting[0].reason == "pool database 1/1 held by prepare-database"


def test_not_ready_steps_show_unfinished_dependencies() -> None:
    state = fold(started())
    assert state.waiting()[1].reason == "needs build, migrate"
    assert not state.waiting()[1].ready
    assert state.waiting(limit=1) == state.waiting()[:1]


def test_pool_usage_and_holders_in_start_order() -> None:
    events = started()
    events.insert(-1, StepStarted("x", 1, {"cpu": 1}, 1.3))
    pools = {p.name: p for p in fold(events).pools()}
    assert (pools["cpu"].in_use, pools["cpu"].capacity) == (2, 2)
    assert pools["cpu"].holders == ("build", "x")
    assert pools["database"].holders == ("prepare-database",)


def test_finish_releases_pools_and_counts_statuses() -> None:
    events = [
        *started(),
        StepFinished(
            "build",
            result(
                PLAN, "build", StepStatus.FAILED, 1.2, 2.0, allowed_failure=True, reason="exit 1"
            ),
            2.0,
        ),
        StepFinished("deploy", result(PLAN, "deploy", StepStatus.SKIPPED, None, None), 2.0),
    ]
    state = fold(events)
    cpu = next(p for p in state.pools() if p.name == "cpu")
    assert (cpu.in_use, cpu.holders) == (0, ())
    counts = state.counts()
    assert (counts.failed, counts.allowed_failures, counts.skipped, counts.finished) == (1, 1, 1, 3)
    assert counts.not_ready == 0


def test_global_cap_reason_counts_running_steps() -> None:
    events = [*started(), StepWaiting("migrate", WaitReason(WaitKind.GLOBAL_CAP, None, 9, 9), 1.3)]
    assert fold(events).wait_text("migrate") == "global cap 2/4"


def test_last_output_line_is_the_last_printable_one() -> None:
    events = [*started(), StepOutput("build", ("one", "\x1b[32mtwo\x1b[0m", "   "), 2.0)]
    assert fold(events).running()[1].last_line == "two"


def test_elapsed_is_injected_then_frozen_at_the_end() -> None:
    state = fold(started(), now=3.5)
    assert state.elapsed() == 3.5
    final = run_result(status=RunStatus.SUCCEEDED, run_id="run-1", elapsed=7.0)
    state.handle(RunFinished(final, 7.0))
    assert state.finished and state.elapsed() == 7.0


def test_default_clock_counts_from_run_started() -> None:
    state = RunState()
    state.handle(RunStarted(PLAN.workflow, PLAN, "run-1", None, at=2.0))
    assert 2.0 <= state.elapsed() < 3.0


def test_printable_strips_escapes_and_carriage_returns() -> None:
    assert strip_ansi("\x1b[1;31mred\x1b[0m \x1b]0;title\x07ok") == "red ok"
    assert printable("10%\r50%\r100%\n") == "100%"
    assert printable("a\tb\x00") == "a    b"


def test_a_thousand_steps_fold_in_linear_time() -> None:
    big = plan_of(*(step(f"s{i}", (f"s{i - 1}",) if i else ()) for i in range(1000)))
    state = RunState(now=lambda: 1.0)
    begin = time.perf_counter()
    state.handle(RunStarted(big.workflow, big, "r", None))
    for i in range(1000):
        sid = f"s{i}"
        state.handle(StepReady(sid, 0.0))
        state.handle(StepStarted(sid, i, {}, 0.0))
        state.handle(StepOutput(sid, ("line",), 0.0))
        res = StepResult(sid, StepStatus.SUCCEEDED, i, start_time=0.0, end_time=0.0)
        state.handle(StepFinished(sid, res, 0.0))
    assert time.perf_counter() - begin < 0.5
    assert state.counts().succeeded == 1000


def test_one_waiting_event_speaks_for_every_step_with_the_same_requirement() -> None:
    plan = plan_of(
        step("holder", pools={"db": 1}),
        step("w1", pools={"db": 1}),
        step("w2", pools={"db": 1}),
        step("other"),
        pools={"db": 1},
        cap=2,
    )
    capped = WaitReason(WaitKind.GLOBAL_CAP, in_use=2, capacity=2)
    pool = WaitReason(WaitKind.POOL, "db", 1, 1, ("holder",))
    state = fold(
        [
            *(StepReady(s, 0.0) for s in ("holder", "w1", "w2", "other")),
            StepStarted("holder", 0, {"db": 1}, 0.0),
            StepStarted("other", 0, {}, 0.0),
            StepWaiting("w1", capped, 0.0),
            StepWaiting("w2", capped, 0.0),
            StepWaiting("w1", pool, 0.5),  # told once, for w1 and w2 alike
        ],
        plan=plan,
    )
    assert state.wait_text("w2") == "pool db 1/1 held by holder"
    assert state.wait_kind("w2") is WaitKind.POOL
