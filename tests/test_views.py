"""The live frame and the summary, rendered into a 100-column console and read as text."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from typing import Any

from builders import fold, ok, plan_of, result, run_result, step
from rich.console import Console, RenderableType

from wfrun.events import (
    Event,
    StepFinished,
    StepOutput,
    StepReady,
    StepStarted,
    StepWaiting,
    WaitKind,
    WaitReason,
)
from wfrun.model import AgentConfig
from wfrun.reporters.state import RunState
from wfrun.reporters.views import live_view, summary_view
from wfrun.results import ParallelStats, PoolStats, RunResult, RunStatus, StepResult, StepStatus


def render(renderable: RenderableType, width: int = 100) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=width).print(renderable)
    return buffer.getvalue()


DB_PLAN = plan_of(
    step("setup"),
    step("prepare-database", ("setup",), {"database": 1}),
    step("seed-database", ("setup",), {"database": 1}),
    step("build-backend", ("setup",), {"cpu": 1}),
    step("build-frontend", ("setup",), {"cpu": 1}),
    step("deploy", ("build-frontend", "seed-database")),
    name="CI Pipeline",
    pools={"cpu": 2, "database": 1},
)


def running_state() -> RunState:
    return fold(
        [
            StepStarted("setup", 0, {}, 0.0),
            ok(DB_PLAN, "setup", 0.0, 0.5),
            *(StepReady(s, 0.5) for s in ("prepare-database", "seed-database", "build-backend")),
            StepReady("build-frontend", 0.5),
            StepStarted("prepare-database", 1, {"database": 1}, 0.5),
            StepStarted("build-backend", 1, {"cpu": 1}, 0.6),
            StepWaiting("seed-database", WaitReason(WaitKind.POOL, "database", 1, 1), 0.6),
            StepStarted("build-frontend", 1, {"cpu": 1}, 0.7),
            StepOutput("build-backend", ("cargo build", "Compiling api v0.1.0"), 1.0),
            StepOutput("prepare-database", ("CREATE TABLE users",), 1.0),
        ],
        plan=DB_PLAN,
        now=4.0,
    )


def test_running_steps_show_group_pools_elapsed_and_last_line() -> None:
    out = render(live_view(running_state(), height=30))
    assert "CI Pipeline" in out
    assert "1/6 done" in out
    backend = next(line for line in out.splitlines() if "build-backend" in line)
    assert "group 1" in backend and "cpu 1" in backend
    assert "3.4s" in backend  # 4.0 now - 0.6 started
    assert "Compiling api v0.1.0" in backend
    database = next(line for line in out.splitlines() if "▶ prepare-database" in line)
    assert "database 1" in database and "CREATE TABLE users" in database


def test_waiting_on_a_pool_names_the_holder() -> None:
    out = render(live_view(running_state(), height=30))
    assert "pool database 1/1 held by prepare-database" in out
    assert "needs build-frontend, seed-database" in out


def test_a_bar_per_pool_with_usage() -> None:
    lines = render(live_view(running_state(), height=30)).splitlines()
    cpu = next(line for line in lines if line.startswith("pool cpu"))
    assert "2/2" in cpu and "held by build-backend, build-frontend" in cpu
    assert any(line.startswith("pool database") and "1/1" in line for line in lines)


def test_global_cap_reason() -> None:
    plan = plan_of(step("a"), step("b"), step("c"), name="CI Pipeline", cap=2)
    state = fold(
        [
            *(StepReady(s, 0.0) for s in "abc"),
            StepStarted("a", 0, {}, 0.0),
            StepStarted("b", 0, {}, 0.0),
            StepWaiting("c", WaitReason(WaitKind.GLOBAL_CAP, in_use=2, capacity=2), 0.0),
        ],
        plan=plan,
        now=4.0,
    )
    assert "global cap 2/2" in render(live_view(state, height=20))


def test_runs_alone_reason() -> None:
    plan = plan_of(step("a"), step("b"), name="CI Pipeline")
    state = fold(
        [
            StepReady("a", 0.0),
            StepReady("b", 0.0),
            StepStarted("a", 0, {}, 0.0),
            StepWaiting("b", WaitReason(WaitKind.RUNS_ALONE, capacity=1), 0.0),
        ],
        plan=plan,
        now=4.0,
    )
    assert "runs alone" in render(live_view(state, height=20))


def big_state() -> RunState:
    plan = plan_of(
        *(step(f"step-{i:04d}", (f"step-{i - 1:04d}",) if i % 50 else ()) for i in range(1000)),
        name="CI Pipeline",
    )
    events: list[Event] = []
    for i in range(0, 400, 50):  # finish the first two steps of 8 chains, then run 8 more
        first, second = f"step-{i:04d}", f"step-{i + 1:04d}"
        events += [StepStarted(first, 0, {}, 0.0), ok(plan, first, 0.0, 1.0)]
        events += [StepStarted(second, 1, {}, 1.0), ok(plan, second, 1.0, 2.0)]
        events += [
            StepReady(f"step-{i + 2:04d}", 2.0),
            StepStarted(f"step-{i + 2:04d}", 2, {}, 2.0),
        ]
    events += [StepReady(f"step-{i:04d}", 0.0) for i in range(400, 1000, 50)]
    return fold(events, plan=plan, now=4.0)


def test_a_thousand_steps_fit_the_height_and_say_how_many_more() -> None:
    out = render(live_view(big_state(), height=30))
    lines = out.splitlines()
    assert len(lines) <= 30
    assert "16/1000 done" in lines[0] and "8 running" in lines[0] and "976 waiting" in lines[0]
    shown = sum(line.startswith("· step-") for line in lines)
    assert f"… and {976 - shown} more waiting" in out
    assert sum(line.startswith("▶ step-") for line in lines) == 8


def test_tiny_heights_still_render_the_header() -> None:
    for height in (1, 2, 3, 5, 8):
        lines = render(live_view(big_state(), height=height)).splitlines()
        assert len(lines) <= max(height, 1)
        assert "done" in lines[0]


def test_many_running_steps_are_cut_too() -> None:
    plan = plan_of(*(step(f"s{i}") for i in range(40)), name="CI Pipeline", cap=40)
    state = fold([StepStarted(f"s{i}", 0, {}, 0.0) for i in range(40)], plan=plan, now=4.0)
    out = render(live_view(state, height=12))
    assert len(out.splitlines()) <= 12
    assert "more running" in out


def test_before_the_run_starts() -> None:
    assert "starting" in render(live_view(RunState(), height=10))


# -- summary ---------------------------------------------------------------------------------


def final(parallel_stats: ParallelStats | None = None, **overrides: StepResult) -> RunResult:
    results = {
        "setup": result(
            DB_PLAN, "setup", StepStatus.SUCCEEDED, 0.0, 0.5, ready_time=0.0, exit_code=0
        ),
        "prepare-database": result(
            DB_PLAN, "prepare-database", StepStatus.SUCCEEDED, 0.5, 1.5, ready_time=0.5
        ),
        "seed-database": result(
            DB_PLAN,
            "seed-database",
            StepStatus.SUCCEEDED,
            1.5,
            2.0,
            ready_time=0.5,
            wait_reason="pool database 1/1 held by prepare-database",
        ),
        "build-backend": result(
            DB_PLAN,
            "build-backend",
            StepStatus.FAILED,
            0.6,
            1.0,
            ready_time=0.6,
            exit_code=2,
            reason="exited with code 2",
            command="cargo build --release",
            output_tail="".join(f"warning {i}\n" for i in range(20))
            + "error[E0308]: mismatched types\n",
            log_file="/tmp/run-1/build-backend.log",
        ),
        "build-frontend": result(
            DB_PLAN,
            "build-frontend",
            StepStatus.CANCELLED,
            0.7,
            1.0,
            ready_time=0.7,
            signal=15,
            reason="build-backend failed (isolateErrors: false)",
        ),
        "deploy": result(
            DB_PLAN,
            "deploy",
            StepStatus.SKIPPED,
            None,
            None,
            reason="dependency 'build-frontend' was cancelled",
        ),
    }
    results.update(overrides)
    return run_result(
        results,
        status=RunStatus.FAILED,
        run_id="run-1",
        name="CI Pipeline",
        version="1.0",
        file="ci.yaml",
        elapsed=2.0,
        stats=parallel_stats,
    )


STATS = ParallelStats(
    total_groups=3,
    max_concurrent_steps=3,
    resource_utilization={"cpu": 0.2, "database": 0.75},
    resources={
        "cpu": PoolStats(2, 2, 0.8, 0.0, 0.2),
        "database": PoolStats(1, 1, 1.5, 1.0, 0.75),
    },
    critical_path=["setup", "prepare-database", "seed-database"],
    critical_path_time=2.0,
    sequential_time=3.2,
    speedup=1.6,
)


def test_summary_has_a_table_per_group_and_the_statistics() -> None:
    out = render(summary_view(final(STATS), DB_PLAN))
    for title in ("group 0", "group 1", "group 2"):
        assert title in out
    assert "✘ CI Pipeline failed in 2.0s" in out
    waited = r"seed-database +✔ succeeded +500ms +1\.0s +waited: pool database 1/1 held by prep"
    assert re.search(waited, out)
    assert "peak concurrency  3 of 4" in out
    assert "1.60×" in out
    assert "setup → prepare-database → seed-database (2.0s)" in out
    assert "wall time" in out
    cpu = next(line for line in out.splitlines() if line.startswith("pool cpu"))
    assert "mean 20%" in cpu and "peak 2/2" in cpu


def test_failure_digest_has_command_exit_code_last_lines_and_log() -> None:
    out = render(summary_view(final(STATS), DB_PLAN))
    assert "✘ build-backend failed" in out
    assert "cargo build --release" in out
    assert "exit code 2" in out
    assert "error[E0308]: mismatched types" in out
    assert "warning 11" in out and "warning 10" not in out  # only the last 10 lines
    assert "/tmp/run-1/build-backend.log" in out


def test_a_digest_folds_a_long_log_path_rather_than_cutting_it() -> None:
    log = "/tmp/runs/" + "d" * 70 + "/build-backend.log"
    failed = replace(final().step_results["build-backend"], log_file=log)
    out = render(summary_view(final(STATS, **{"build-backend": failed}), DB_PLAN), width=60)
    digest = out[out.index("✘ build-backend failed") :]
    assert log in re.sub(r"[│\s]", "", digest) and "…" not in digest


def test_a_narrow_terminal_folds_long_ids_and_keeps_the_status_column() -> None:
    long_id = "a-very-long-step-identifier-that-goes-on-and-on-" + "x" * 20
    failed = replace(final().step_results["build-backend"], step_id=long_id)
    results = {**final().step_results, "build-backend": failed}
    plan = plan_of(*(step(sid) for sid in results))
    out = render(summary_view(replace(final(STATS), step_results=results), plan), width=40)
    assert "status" in out and "✘ failed" in out
    assert "x" * 13 in out  # its end: folded onto more lines, not cut with …


def test_cancelled_steps_get_a_digest_and_skipped_ones_do_not() -> None:
    out = render(summary_view(final(STATS), DB_PLAN))
    assert "⊘ build-frontend cancelled" in out
    assert "signal 15 (SIGTERM)" in out
    deploy = next(line for line in out.splitlines() if line.startswith("deploy"))
    assert "○ skipped" in deploy and "dependency 'build-frontend' was cancelled" in deploy
    assert "deploy skipped" not in out


def test_allowed_failure_is_shown_as_such() -> None:
    allowed = replace(final().step_results["build-backend"], allowed_failure=True)
    out = render(summary_view(final(STATS, **{"build-backend": allowed}), DB_PLAN))
    assert "failed (allowed)" in out


def test_sequential_run_still_gets_tables_and_digests() -> None:
    out = render(summary_view(replace(final(None), parallel=False, max_concurrency=1), DB_PLAN))
    assert "group 0" in out and "sequential" in out
    assert "cargo build --release" in out
    assert "speedup" not in out


def test_summary_without_tables() -> None:
    out = render(summary_view(final(STATS), DB_PLAN, tables=False))
    assert "group 0" not in out and "cargo build --release" in out


def test_step_output_is_not_read_as_markup() -> None:
    odd = result(
        DB_PLAN,
        "setup",
        StepStatus.FAILED,
        0.0,
        0.5,
        ready_time=0.0,
        output_tail="[bold]x[/bold] \x1b[31mred\x1b[0m\n",
    )
    out = render(summary_view(final(STATS, setup=odd), DB_PLAN))
    assert "[bold]x[/bold] red" in out


def test_a_running_agent_step_shows_its_prompt() -> None:
    prompt = "Review the diff\nthen list findings"
    review = step("review", agent=AgentConfig(agent="reviewer", prompt=prompt))
    plan = plan_of(review, name="CI Pipeline")
    events = [StepReady("review", 0.0), StepStarted("review", 0, {}, 0.0)]
    state = fold(events, plan=plan, now=4.0)
    line = next(x for x in render(live_view(state, height=20)).splitlines() if "review" in x)
    assert "❯ Review the diff" in line and "findings" not in line
    state.handle(StepOutput("review", ("thinking",), 1.0))
    line = next(x for x in render(live_view(state, height=20)).splitlines() if "review" in x)
    assert "❯ Review the diff · thinking" in line


def test_a_large_group_lists_failures_and_the_slowest_steps_and_counts_the_rest() -> None:
    plan = plan_of(*(step(f"s{i}") for i in range(25)), name="CI Pipeline")
    results = {
        f"s{i}": result(plan, f"s{i}", StepStatus.SUCCEEDED, 0.0, 0.1 + i / 100, ready_time=0.0)
        for i in range(25)
    }
    results["s3"] = result(
        plan, "s3", StepStatus.FAILED, 0.0, 0.05, reason="exited with code 1", ready_time=0.0
    )
    out = render(summary_view(run_result(results, status=RunStatus.FAILED), plan))
    assert "s3 " in out and "exited with code 1" in out
    assert "s24 " in out and "s10 " in out  # the 15 slowest
    assert "s9 " not in out and "s0 " not in out
    assert "… and 9 more succeeded" in out


def big_run(succeeded: int, failed: int, not_started: int, **fields: Any) -> RunResult:
    """A run of a 300-step-like chain of groups of 10: some steps succeeded, some failed after
    running, the rest never started (Ctrl-C)."""
    total = succeeded + failed + not_started
    plan = plan_of(*(step(f"s{i}", (f"s{i - 10}",) if i >= 10 else ()) for i in range(total)))
    results: dict[str, StepResult] = {}
    for i in range(total):
        sid = f"s{i}"
        if i < succeeded:
            results[sid] = result(plan, sid, StepStatus.SUCCEEDED, 0.0, 0.01 * (i + 1))
        elif i < succeeded + failed:
            results[sid] = result(
                plan, sid, StepStatus.CANCELLED, 1.0, 2.0, signal=2, reason="run interrupted"
            )
        else:
            results[sid] = result(plan, sid, StepStatus.CANCELLED, reason=NOT_STARTED)
    status = RunStatus.CANCELLED if failed or not_started else RunStatus.SUCCEEDED
    return run_result(results, status=status, elapsed=7.2, **fields), plan  # type: ignore[return-value]


NOT_STARTED = "not started: run interrupted"


def test_a_large_successful_run_fits_one_screen_and_points_at_the_report() -> None:
    finished, plan = big_run(
        300,
        0,
        0,
        stats=STATS._replace(critical_path=[f"s{i}" for i in range(0, 300, 10)], resources={}),
    )  # type: ignore[misc]
    out = render(summary_view(finished, plan))
    lines = out.splitlines()
    assert len(lines) <= 30, out
    assert "300 steps: 300 succeeded" in out
    assert "slowest 10 steps of 300 that ran" in out
    assert re.search(r"^s299 +29 +✔ succeeded +3\.0s", out, re.M)
    assert "s289 " not in out and "group 0" not in out
    assert "s0 → s10 → s20 → … → s270 → s280 → s290 (30 steps, 2.0s)" in out
    with_dir = render(summary_view(replace(finished, run_dir="/runs/r1"), plan))
    assert "every step        /runs/r1/report.json" in with_dir


def test_an_interrupted_large_run_digests_only_the_steps_that_ran() -> None:
    finished, plan = big_run(120, 2, 178)
    for out in (
        render(summary_view(finished, plan)),
        render(summary_view(finished, plan, tables=False)),
    ):
        assert out.count("╭") == 2  # the two steps cancelled while running
        assert "⊘ s120 cancelled" in out and "⊘ s121 cancelled" in out
        assert out.count("not started") == 1
        assert "178 steps not started: run interrupted" in out
        assert len(out.splitlines()) <= 50, out


def test_many_failures_are_capped_and_named() -> None:
    finished, plan = big_run(10, 25, 0)
    out = render(summary_view(finished, plan))
    assert out.count("╭") == 10
    assert "… and 15 more steps that did not succeed: s20, s21," in out


def test_a_small_interrupted_run_lists_never_started_steps_in_its_table_only() -> None:
    finished, plan = big_run(3, 1, 2)
    out = render(summary_view(finished, plan))
    assert "group 0" in out
    assert out.count("╭") == 1
    assert out.count(NOT_STARTED) == 2  # a table row each, and no digest


def test_one_step_and_a_wait_without_reason() -> None:
    plan = plan_of(step("only"))
    # Started 22 ms after it was ready, for no reason the scheduler gave: not shown as a wait.
    only = result(plan, "only", StepStatus.SUCCEEDED, 0.022, 0.999_6, ready_time=0.0)
    out = render(summary_view(run_result({"only": only}, status=RunStatus.SUCCEEDED), plan))
    assert "1 step: 1 succeeded" in out and "1 steps" not in out
    assert "waited" not in out and "22ms" not in out


def test_the_summary_says_where_the_logs_and_report_are() -> None:
    result = replace(final(STATS), run_dir="/runs/r1")
    assert "logs, report      /runs/r1/" in render(summary_view(result, DB_PLAN))
    assert "logs, report" not in render(summary_view(final(STATS), DB_PLAN))


# -- narrow terminals, no colour, hostile names ------------------------------------------------


def test_at_80_columns_the_header_keeps_name_elapsed_and_failures() -> None:
    state = big_state()
    state.handle(
        StepFinished(
            "step-0003",
            result(state.plan, "step-0003", StepStatus.FAILED, 2.0, 3.0),
            3.0,  # type: ignore[arg-type]
        )
    )
    state.workflow = state.workflow._replace(name="Monorepo CI for every package")  # type: ignore[union-attr]
    for width in (80, 60):
        header = render(live_view(state, height=10), width=width).splitlines()[0]
        assert header.startswith("Monorepo CI for every package 4.0s 17/1000 done · 1 failed")
        assert len(header) <= width
    wide = render(live_view(state, height=10), width=120).splitlines()[0]
    assert "━" in wide and "975 waiting" in wide  # the bar, when there is room for it


def test_the_first_frame_says_steps_without_dependencies_are_about_to_start() -> None:
    state = fold([], plan=DB_PLAN, now=0.0)
    out = render(live_view(state, height=30))
    assert re.search(r"^· setup +about to start", out, re.M)
    assert "needs setup" in out
    assert not re.search(r"needs\s*$", out, re.M)


def test_without_colour_a_full_pool_bar_differs_from_an_empty_one() -> None:
    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(live_view(running_state(), 30))
    lines = buffer.getvalue().splitlines()
    cpu = next(line for line in lines if line.startswith("pool cpu"))  # 2 of 2 in use
    assert "━" * 20 in cpu and "─" not in cpu
    state = running_state()
    state.handle(ok(DB_PLAN, "build-backend", 0.6, 4.0))
    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(live_view(state, 30))
    cpu = next(x for x in buffer.getvalue().splitlines() if x.startswith("pool cpu"))
    assert "━" * 10 + "─" * 10 in cpu and "1/2" in cpu


HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J"


def test_terminal_escapes_in_workflow_strings_are_shown_not_obeyed() -> None:
    evil = step("a", command=HOSTILE)
    agent = step("c", agent=AgentConfig(agent="x", prompt=HOSTILE))
    plan = plan_of(evil, step("b", ("a",)), agent, name=HOSTILE)
    running = fold([StepStarted("a", 0, {}, 0.0), StepStarted("c", 0, {}, 0.0)], plan=plan)
    failed = result(
        plan,
        "a",
        StepStatus.FAILED,
        0.0,
        1.0,
        command=HOSTILE,
        reason=f"command not found: {HOSTILE}",
        wait_reason=HOSTILE,
    )
    skipped = result(plan, "b", StepStatus.SKIPPED, reason="dependency 'a' failed")
    finished = run_result({"a": failed, "b": skipped}, name=HOSTILE, status=RunStatus.FAILED)
    for renderable in (
        live_view(running, height=20),
        summary_view(finished, plan),
        summary_view(finished, plan, tables=False),
    ):
        out = render(renderable)
        assert "\x1b" not in out and "\x07" not in out
        assert "evil\\x1b]0;pwned\\x07\\x1b[2J" in out
