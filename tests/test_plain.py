"""The plain and quiet reporters: lines for CI logs, without escape codes."""

from __future__ import annotations

import io
import re
from pathlib import Path

from builders import plan_of, run_result, step
from conftest import wfrun

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
from wfrun.reporters.plain import PlainReporter, QuietReporter, step_line
from wfrun.results import ParallelStats, PoolStats, RunStatus, StepResult, StepStatus

PLAN = plan_of(
    step("build-backend", pools={"cpu": 1}),
    step("test", ("build-backend",)),
    step("deploy", ("test",)),
    pools={"cpu": 1},
)
WORKFLOW = PLAN.workflow

TEST_TAIL = "collected 3 items\n\x1b[31mFAILED\x1b[0m test_api.py::test_login\n"


def run_events(log_dir: Path) -> list[Event]:
    build = StepResult(
        "build-backend",
        StepStatus.SUCCEEDED,
        0,
        ready_time=0.0,
        start_time=0.01,
        end_time=1.21,
        exit_code=0,
        log_file=str(log_dir / "build-backend.log"),
        output_tail="compiled\n",
    )
    test = StepResult(
        "test",
        StepStatus.FAILED,
        1,
        reason="exited with code 1",
        ready_time=1.21,
        start_time=1.21,
        end_time=1.61,
        exit_code=1,
        command="pytest -q",
        log_file=str(log_dir / "test.log"),
        output_tail=TEST_TAIL,
    )
    deploy = StepResult("deploy", StepStatus.SKIPPED, 2, reason="dependency 'test' failed")
    results = {r.step_id: r for r in (build, test, deploy)}
    stats = ParallelStats(
        3, 1, {"cpu": 0.75}, {"cpu": PoolStats(1, 1, 1.2, 0.0, 0.75)}, [], 1.6, 1.6, 1.0
    )
    final = run_result(results, status=RunStatus.FAILED, elapsed=1.61, stats=stats)
    return [
        RunStarted(WORKFLOW, PLAN, "r1", str(log_dir)),
        StepReady("build-backend", 0.0),
        StepWaiting("build-backend", WaitReason(WaitKind.POOL, "cpu", 1, 1, ("other",)), 0.0),
        StepStarted("build-backend", 0, {"cpu": 1}, 0.01),
        StepOutput("build-backend", ("compiling", "compiled"), 0.5),
        StepFinished("build-backend", build, 1.21),
        StepReady("test", 1.21),
        StepWaiting("test", WaitReason(WaitKind.GLOBAL_CAP, in_use=4, capacity=4), 1.21),
        StepStarted("test", 1, {}, 1.21),
        StepOutput("test", ("collected 3 items",), 1.3),
        StepFinished("test", test, 1.61),
        StepFinished("deploy", deploy, 1.61),
        RunFinished(final, 1.61, ("report: out/report.json",)),
    ]


def feed(reporter: PlainReporter | QuietReporter, events: list[Event]) -> None:
    for event in events:
        if not isinstance(event, StepOutput) or reporter.wants_output:
            reporter.handle(event)
    reporter.close()


def plain_run(tmp_path: Path, **options: object) -> str:
    stream = io.StringIO()
    feed(PlainReporter(stream, **options), run_events(tmp_path))  # type: ignore[arg-type]
    return stream.getvalue()


def test_one_line_per_start_and_finish_with_a_time_stamp(tmp_path: Path) -> None:
    lines = plain_run(tmp_path).splitlines()
    assert "[  0.01s] ▶ build-backend  [group 0 · cpu 1]" in lines
    assert "[  1.21s] ✔ build-backend  succeeded in 1.2s" in lines
    assert "[  1.61s] ✘ test  failed in 400ms: exited with code 1" in lines
    assert "[  1.61s] ○ deploy  skipped: dependency 'test' failed" in lines


def test_no_escape_codes_and_no_trailing_spaces(tmp_path: Path) -> None:
    out = plain_run(tmp_path)
    assert "\x1b" not in out
    assert all(line == line.rstrip() for line in out.splitlines())


def test_pool_waits_are_logged_with_live_numbers_but_cap_waits_are_not(tmp_path: Path) -> None:
    out = plain_run(tmp_path)
    assert "⋯ build-backend  waiting: pool cpu 0/1" in out
    assert "global cap" not in out


def test_output_block_from_the_tail_when_there_is_no_log(tmp_path: Path) -> None:
    lines = plain_run(tmp_path).splitlines()
    at = lines.index("[  1.61s] ✘ test  failed in 400ms: exited with code 1")
    assert lines[at + 2 : at + 4] == ["    collected 3 items", "    FAILED test_api.py::test_login"]
    assert "full log" in lines[at + 1]


def test_output_block_is_the_whole_log_when_it_is_short(tmp_path: Path) -> None:
    (tmp_path / "test.log").write_text("".join(f"log line {i}\n" for i in range(60)))
    out = plain_run(tmp_path)
    assert "    log line 0\n" in out and "    log line 59\n" in out
    assert "collected 3 items" not in out.split("○ deploy")[0]


def test_a_long_log_shows_its_tail_and_where_the_rest_is(tmp_path: Path) -> None:
    (tmp_path / "test.log").write_text("".join(f"log line {i}\n" for i in range(500)))
    out = plain_run(tmp_path)
    assert "log line 0" not in out
    assert f"… last 2 lines; full log: {tmp_path / 'test.log'}" in out


def test_stream_mode_prefixes_live_lines_and_prints_no_blocks(tmp_path: Path) -> None:
    reporter = PlainReporter(io.StringIO(), output_mode="stream")
    assert reporter.wants_output
    out = plain_run(tmp_path, output_mode="stream")
    assert "[  0.50s] build-backend | compiling" in out
    assert "[  1.30s] test | collected 3 items" in out
    assert "    compiled" not in out


def test_summary_at_the_end(tmp_path: Path) -> None:
    out = plain_run(tmp_path)
    summary = out[out.index("✘ ci failed") :]
    assert "group 0" in summary and "group 2" in summary
    assert "pytest -q" in summary and "exit code 1" in summary
    assert str(tmp_path / "test.log") in summary
    assert out.rstrip().endswith("report: out/report.json")


def test_without_steps_only_the_summary(tmp_path: Path) -> None:
    out = plain_run(tmp_path, show_steps=False)
    assert "▶" not in out
    assert out.lstrip().startswith("✘ ci failed")


def test_color_is_a_parameter(tmp_path: Path) -> None:
    assert "\x1b[" in plain_run(tmp_path, color=True)


def test_quiet_prints_only_the_summary_and_failures(tmp_path: Path) -> None:
    stream = io.StringIO()
    reporter = QuietReporter(stream)
    assert not reporter.wants_output
    feed(reporter, run_events(tmp_path))
    out = stream.getvalue()
    assert out.startswith("✘ ci failed")
    assert "▶" not in out and "group 0" not in out
    assert "✘ test failed" in out and "pytest -q" in out
    assert "\x1b" not in out


def test_step_line_of_an_allowed_failure_and_a_cancelled_step() -> None:
    allowed = StepResult(
        "lint", StepStatus.FAILED, 0, reason="exited with code 3", allowed_failure=True
    )
    assert step_line(allowed) == "✘ lint  failed (allowed): exited with code 3"
    cancelled = StepResult(
        "e2e", StepStatus.CANCELLED, 0, reason="interrupted", start_time=0, end_time=2
    )
    assert step_line(cancelled) == "⊘ e2e  cancelled in 2.0s: interrupted"


def test_close_is_idempotent() -> None:
    reporter = PlainReporter(io.StringIO())
    reporter.close()
    reporter.close()


def test_a_run_of_many_failures_digests_the_fatal_ones_first_and_groups_the_skipped(
    tmp_path: Path,
) -> None:
    steps = ["  - {id: allowed, continueOnError: true, config: {command: 'false'}}"]
    for i in range(1, 12):
        steps.append(f"  - {{id: f{i}, config: {{command: 'false'}}}}")
        steps.append(f"  - {{id: d{i}, dependsOn: [f{i}], config: {{command: 'true'}}}}")
        steps.append(f"  - {{id: ok{i}, config: {{command: 'true'}}}}")  # over a table's 30
    path = tmp_path / "many.yaml"
    path.write_text("steps:\n" + "\n".join(steps) + "\n")
    done = wfrun("run", "-k", "--ui", "plain", "--log-dir", str(tmp_path / "runs"), str(path))
    assert done.returncode == 1
    summary = done.stdout[done.stdout.index("✘ many failed") :]
    assert len(summary.splitlines()) <= 80  # ten 5-line digests, ten slowest, the statistics
    digests = re.findall(r"─ ✘ (\S+) failed", summary)
    assert digests == [f"f{i}" for i in range(1, 11)]  # the allowed failure is not among them
    assert "… and 2 more steps that did not succeed: f11, allowed" in summary
    assert "11 steps skipped: a dependency failed (f1, f2, f3, f4, f5, …)" in summary
    assert "dependency 'f1' failed" not in summary


def test_plain_and_quiet_lines_take_the_width_of_columns_off_a_terminal(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import cli_env

    path = tmp_path / "w.yaml"
    path.write_text(
        "steps:\n  - {id: " + "a" * 30 + ", config: {command: 'false'}}\n"
        "  - {id: b, config: {command: 'true'}}\n"
    )
    for ui, width in (("plain", "50"), ("quiet", "60"), ("plain", "")):
        env = dict(cli_env(), COLUMNS=width) if width else cli_env()
        argv = ["run", "--ui", ui, "--log-dir", str(tmp_path / "runs"), str(path)]
        done = subprocess.run(
            [sys.executable, "-m", "wfrun", *argv], capture_output=True, text=True, env=env
        )
        assert done.returncode == 1
        box = [line for line in done.stdout.splitlines() if line.startswith("╰")]
        assert box and len(box[0]) == int(width or 100), (ui, width, done.stdout)
    assert "COLUMNS" not in cli_env()
