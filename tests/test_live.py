"""The live reporter: started and stopped with the run, frames at a bounded rate, always closed."""

from __future__ import annotations

import io
import time
from dataclasses import replace

import pytest
from builders import plan_of, run_result, step
from rich.console import Console, RenderableType

import wfrun.reporters.live as live_module
from wfrun.events import (
    Event,
    RunFinished,
    RunStarted,
    StepFinished,
    StepOutput,
    StepReady,
    StepStarted,
)
from wfrun.reporters.live import LiveReporter
from wfrun.reporters.live_view import live_view
from wfrun.reporters.state import RunState
from wfrun.results import RunStatus, StepResult, StepStatus

PLAN = plan_of(
    step("compile", command="make"),
    step("link", ("compile",), command="make"),
    name="build",
)

LINK = StepResult(
    "link",
    StepStatus.FAILED,
    1,
    reason="exited with code 2",
    start_time=1.0,
    end_time=1.5,
    exit_code=2,
    command="make link",
    output_tail="ld: undefined symbol: main\n",
    log_file="/runs/r1/link.log",
)
COMPILE = StepResult("compile", StepStatus.SUCCEEDED, 0, start_time=0.0, end_time=1.0, exit_code=0)
FINAL = run_result(
    {"compile": COMPILE, "link": LINK}, status=RunStatus.FAILED, name="build", elapsed=1.5
)


def beginning() -> list[Event]:
    return [
        RunStarted(PLAN.workflow, PLAN, "r1", "/runs/r1"),
        StepReady("compile", 0.0),
        StepStarted("compile", 0, {}, 0.0),
        StepOutput("compile", ("cc -c main.c",), 0.5),
    ]


def ending() -> list[Event]:
    return [
        StepFinished("compile", COMPILE, 1.0),
        StepReady("link", 1.0),
        StepStarted("link", 1, {}, 1.0),
        StepFinished("link", LINK, 1.5),
        RunFinished(FINAL, 1.5, ("report: /runs/r1/report.json",)),
    ]


def terminal(height: int = 20) -> Console:
    return Console(
        file=io.StringIO(), width=100, height=height, force_terminal=True, color_system=None
    )


def text_of(console: Console) -> str:
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_starts_on_run_started_and_leaves_the_summary_after_stopping() -> None:
    console = terminal()
    reporter = LiveReporter(console, refresh_per_second=20)
    assert reporter.wants_output
    for event in beginning():
        reporter.handle(event)
    assert reporter.active
    for event in ending():
        reporter.handle(event)
    assert not reporter.active
    out = text_of(console)
    summary = out[out.rindex("✘ build failed") :]
    assert "✘ link failed" in summary and "make link" in summary
    assert "ld: undefined symbol: main" in summary and "/runs/r1/link.log" in summary
    assert summary.rstrip().endswith("report: /runs/r1/report.json")
    assert "✘ link  failed in 500ms: exited with code 2" in out  # the finish line above the frame
    reporter.close()


def test_frames_come_from_the_refresh_thread_not_from_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frames = 0
    real = live_view

    def counting(state: RunState, height: int) -> RenderableType:
        nonlocal frames
        frames += 1
        return real(state, height)

    monkeypatch.setattr(live_module, "live_view", counting)
    reporter = LiveReporter(terminal(), refresh_per_second=10)
    for event in beginning():
        reporter.handle(event)
    for i in range(3000):
        reporter.handle(StepOutput("compile", (f"line {i}",), 0.6))
    time.sleep(0.25)
    for event in ending():
        reporter.handle(event)
    assert 1 <= frames < 15


def test_refreshing_while_events_arrive_is_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[BaseException] = []
    real = live_view

    def checked(state: RunState, height: int) -> RenderableType:
        try:
            frame = real(state, height)
            Console(file=io.StringIO(), width=100).print(frame)
            return frame
        except BaseException as err:
            errors.append(err)
            raise

    monkeypatch.setattr(live_module, "live_view", checked)
    reporter = LiveReporter(terminal(), refresh_per_second=200)
    for event in beginning():
        reporter.handle(event)
    deadline = time.monotonic() + 0.3
    i = 0
    while time.monotonic() < deadline:
        reporter.handle(StepOutput("compile", (f"line {i}",), 0.6))
        i += 1
    for event in ending():
        reporter.handle(event)
    assert errors == []


def test_close_stops_the_display_on_an_interrupt_and_keeps_the_last_frame() -> None:
    console = terminal()
    reporter = LiveReporter(console, refresh_per_second=20, now=lambda: 0.8)
    with pytest.raises(KeyboardInterrupt):
        try:
            for event in beginning():
                reporter.handle(event)
            raise KeyboardInterrupt
        finally:
            reporter.close()
    assert not reporter.active
    out = text_of(console)
    assert "cc -c main.c" in out[out.rindex("running (1)") :]
    reporter.close()  # idempotent
    assert text_of(console) == out


def test_stream_mode_prints_output_lines_above_the_frame() -> None:
    console = terminal()
    reporter = LiveReporter(console, output_mode="stream")
    for event in [*beginning(), *ending()]:
        reporter.handle(event)
    assert "compile | cc -c main.c" in text_of(console)


def test_off_a_terminal_only_plain_text_is_written() -> None:
    console = Console(file=io.StringIO(), width=100)
    reporter = LiveReporter(console)
    for event in [*beginning(), *ending()]:
        reporter.handle(event)
    reporter.close()
    out = text_of(console)
    assert "\x1b" not in out and "✘ build failed" in out


def test_frame_renders_the_state() -> None:
    reporter = LiveReporter(terminal(height=12), now=lambda: 0.9)
    for event in beginning():
        reporter.state.handle(event)  # fold only: no display needed to build a frame
    out = Console(file=io.StringIO(), width=100)
    out.print(reporter.frame())
    frame = text_of(out)
    assert "0/2 done" in frame and "▶ compile" in frame and "needs compile" in frame


def test_finish_lines_are_queued_not_printed_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    console = terminal()
    reporter = LiveReporter(console, refresh_per_second=0.5)  # no refresh during the test
    for event in beginning():
        reporter.handle(event)
    prints = 0
    real_print = console.print

    def counting(*args: object, **kwargs: object) -> None:
        nonlocal prints
        prints += 1
        real_print(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(console, "print", counting)
    for _ in range(500):
        reporter.handle(StepFinished("compile", COMPILE, 1.0))
    assert prints == 0
    reporter.close()
    # A crowd of successes in one frame shares a line; few successes keep a line each.
    assert "✔ 500 steps succeeded: compile, compile, compile, compile, compile, …" in (
        text_of(console)
    )
    assert text_of(console).count("✔ compile  succeeded in 1.0s") == 0


def test_failures_and_a_few_successes_keep_a_line_each() -> None:
    console = terminal()
    reporter = LiveReporter(console, refresh_per_second=0.5)
    for event in beginning():
        reporter.handle(event)
    failed = replace(COMPILE, status=StepStatus.FAILED, reason="exited with code 2")
    for _ in range(3):
        reporter.handle(StepFinished("compile", COMPILE, 1.0))
    for _ in range(20):
        reporter.handle(StepFinished("compile", failed, 1.0))
    reporter.close()
    out = text_of(console)
    assert out.count("✔ compile  succeeded in 1.0s") == 3
    assert out.count("exited with code 2") == 20


def test_the_refresh_thread_prints_queued_lines_while_the_run_goes_on() -> None:
    console = terminal()
    reporter = LiveReporter(console, refresh_per_second=50)
    for event in [*beginning(), StepFinished("compile", COMPILE, 1.0)]:
        reporter.handle(event)
    deadline = time.monotonic() + 2.0
    while "✔ compile  succeeded" not in text_of(console) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "✔ compile  succeeded" in text_of(console)
    assert reporter.active
    reporter.close()


def test_a_refresh_with_queued_lines_draws_the_lines_and_one_new_frame() -> None:
    console = terminal()
    reporter = LiveReporter(console, refresh_per_second=0.5)  # refreshed by hand below
    for event in beginning():
        reporter.handle(event)
    console.file.seek(0)
    console.file.truncate()
    reporter.handle(StepFinished("compile", COMPILE, 1.0))
    live = reporter._live  # the running display
    assert live is not None
    live.refresh()
    drawn = text_of(console)
    # The line above the frame, then the frame as it is now: no stale frame drawn first.
    assert "✔ compile  succeeded" in drawn
    assert drawn.count("/2 done") == 1 and "1/2 done" in drawn
    reporter.close()
