"""Retries (SPEC §11.1): policies, the dispatcher stepped by hand, and real runs through the CLI."""

from __future__ import annotations

import io
import json
import random
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import step, workflow
from conftest import wfrun
from rich.console import Console

from wfrun.dispatch import Completion, Dispatcher
from wfrun.events import StepRetrying, StepStarted
from wfrun.loader import load_workflow_text
from wfrun.model import Workflow
from wfrun.planner import make_plan
from wfrun.reporters.live_view import live_view
from wfrun.reporters.state import RunState
from wfrun.results import AttemptResult, StepOutcome, StepStatus
from wfrun.retry import FailureKind, RetryPolicy, failure_kind, should_retry
from wfrun.waits import WaitKind, WaitReason

ATTEMPT = Path(__file__).parent / "steps" / "attempt.py"


def attempt_step(
    sid: str, code: int = 0, failures: int = 0, sleep: str = "0", extra: str = ""
) -> str:
    """A YAML step running steps/attempt.py: exits `code` on its first `failures` runs."""
    args = json.dumps([str(ATTEMPT), sid, "{out}", str(code), str(failures), sleep])
    return (
        f"  - id: {sid}\n    config: {{command: {json.dumps(sys.executable)}, args: {args}}}\n"
        + "".join(f"    {line}\n" for line in extra.splitlines())
    )


def runs(workdir: Path, sid: str) -> list[tuple[float, float]]:
    path = workdir / "out" / f"{sid}.runs"
    if not path.exists():
        return []
    return [
        (float(a), float(b)) for a, b in (line.split() for line in path.read_text().splitlines())
    ]


def report_errors(document: Any) -> list[str]:
    """Where a report breaks its JSON Schema (none, if it is valid)."""
    import jsonschema
    from test_report_files import SCHEMA_PATH, errors

    return errors(jsonschema.Draft7Validator(json.loads(SCHEMA_PATH.read_text())), document)


def report_of(workdir: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((workdir / "report.json").read_text())


# ---- the policy ------------------------------------------------------------------------------


def test_delays_grow_by_the_backoff_up_to_max_delay_plus_at_most_ten_percent() -> None:
    policy = RetryPolicy(max_attempts=6, delay=1.0, backoff=2.0, max_delay=5.0)
    rng = random.Random(7)
    for attempt, base in [(2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (6, 5.0)]:
        delays = [policy.delay_before(attempt, rng) for _ in range(200)]
        assert base <= min(delays) and max(delays) <= base * 1.1
        assert max(delays) > base  # the jitter is there


def outcome(status: StepStatus, code: int | None = None, **kw: bool) -> StepOutcome:
    return StepOutcome(status, exit_code=code, **kw)


def test_on_exit_codes_retries_only_those_exits() -> None:
    policy = RetryPolicy(max_attempts=3, kinds=frozenset(), exit_codes=frozenset({75}))
    assert should_retry(policy, outcome(StepStatus.FAILED, 75), 1)
    assert not should_retry(policy, outcome(StepStatus.FAILED, 1), 1)
    assert not should_retry(policy, outcome(StepStatus.TIMED_OUT), 1)
    assert not should_retry(policy, outcome(StepStatus.FAILED, 75), 3)  # no attempts left


def test_listed_exit_codes_leave_signals_to_failed() -> None:
    policy = RetryPolicy(max_attempts=2, exit_codes=frozenset({75}))
    killed = StepOutcome(StepStatus.FAILED, exit_code=None, signal=9)
    assert should_retry(policy, killed, 1)
    assert not should_retry(policy._replace(kinds=frozenset()), killed, 1)


def test_a_retry_block_without_values_takes_the_defaults() -> None:
    wf = load_workflow_text("steps:\n  - {id: a, config: {command: x}, retry: {maxAttempts: 2}}\n")
    policy = wf.step("a").retry
    assert policy == RetryPolicy(max_attempts=2, delay=1.0, backoff=2.0, max_delay=None)
    assert policy.kinds == {FailureKind.FAILED, FailureKind.TIMED_OUT}
    assert load_workflow_text("steps:\n  - {id: a, config: {command: x}}\n").step("a").retry is None


def test_cancellations_and_what_cannot_start_are_never_retried() -> None:
    policy = RetryPolicy(max_attempts=5)
    not_started = outcome(StepStatus.FAILED, None, not_startable=True)
    assert failure_kind(not_started) is FailureKind.NOT_STARTABLE
    assert not should_retry(policy, not_started, 1)
    assert failure_kind(outcome(StepStatus.CANCELLED)) is FailureKind.CANCELLED
    assert not should_retry(policy, outcome(StepStatus.CANCELLED), 1)
    assert should_retry(policy, outcome(StepStatus.TIMED_OUT), 1)
    assert should_retry(policy, outcome(StepStatus.FAILED, 1), 1)
    assert not should_retry(policy, outcome(StepStatus.SUCCEEDED, 0), 1)
    assert not should_retry(None, outcome(StepStatus.FAILED, 1), 1)


# ---- the dispatcher by hand ------------------------------------------------------------------


def dispatcher(wf: Workflow) -> Dispatcher:
    return Dispatcher(make_plan(wf, parallel=True))


def test_a_paused_step_holds_no_pool_units_and_no_cap_slot() -> None:
    wf = workflow(
        step("flaky", pools={"db": 1}),
        step("other", pools={"db": 1}),
        step("third"),
        pools={"db": 1},
        cap=2,
    )
    d = dispatcher(wf)
    assert d.startable() == ["flaky", "third"]
    assert d.why("other") is not None
    d.pause("flaky")
    assert d.pool_usage() == {"db": (0, 1)}
    assert d.startable() == ["other"]  # the pool and the slot went to another step
    assert d.paused == ("flaky",) and d.why("flaky") is None
    assert d.is_active()


def test_a_due_retry_goes_before_steps_that_became_ready_later() -> None:
    # `late` has the longer chain ahead of it, so it would normally go first.
    wf = workflow(
        step("flaky", pools={"db": 1}),
        step("gate"),
        step("late", ("gate",), pools={"db": 1}),
        step("tail", ("late",)),
        pools={"db": 1},
    )
    d = dispatcher(wf)
    assert sorted(d.startable()) == ["flaky", "gate"]
    d.pause("flaky")
    assert d.finish("gate", Completion.SUCCEEDED).ready == ["late"]
    d.requeue("flaky")
    assert d.startable() == ["flaky"]
    reason = d.why("late")
    assert reason is not None and reason.kind is WaitKind.POOL


def test_a_paused_step_can_be_finished_when_its_retry_will_not_come() -> None:
    d = dispatcher(workflow(step("flaky"), step("after", ("flaky",)), step("free")))
    assert d.startable() == ["flaky", "free"]
    d.pause("flaky")
    effects = d.finish("flaky", Completion.FATAL_FAILURE)
    assert [s.step_id for s in effects.skipped] == ["after"]
    d.finish("free", Completion.SUCCEEDED)
    assert not d.is_active()


def test_a_failing_sibling_ends_a_paused_step_of_its_group_instead_of_skipping_it() -> None:
    d = dispatcher(workflow(step("bad", isolate_errors=False), step("flaky")))
    assert d.startable() == ["bad", "flaky"]
    d.pause("flaky")
    effects = d.finish("bad", Completion.FATAL_FAILURE)
    assert [c.step_id for c in effects.cancel] == ["flaky"]
    assert not effects.skipped


# ---- what views show ---------------------------------------------------------------------------


def test_the_wait_reason_counts_down_to_the_retry() -> None:
    reason = WaitReason(WaitKind.RETRY, attempt=2, attempts=3, delay=4.0, due=5.0)
    assert str(reason) == "retry 2/3 in 4s"
    now = [2.0]
    state = RunState(now=lambda: now[0])
    wf = workflow(step("flaky", pools={"db": 1}), pools={"db": 1})
    from wfrun.events import RunStarted

    state.handle(RunStarted(wf, make_plan(wf), "r", None, 0.0))
    state.handle(StepStarted("flaky", 0, {"db": 1}, 0.5))
    failed = AttemptResult(StepStatus.FAILED, 0.5, 1.0, 1, "exited with code 1")
    state.handle(StepRetrying("flaky", failed, 2, 3, 4.0, 1.0))
    assert state.pools()[0].in_use == 0
    assert [(w.step_id, w.reason) for w in state.waiting()] == [("flaky", "retry 2/3 in 3s")]
    now[0] = 4.5
    assert state.wait_text("flaky") == "retry 2/3 in 0.5s"
    console = Console(file=io.StringIO(), width=100)
    console.print(live_view(state, height=20))
    assert "flaky" in console.file.getvalue() and "retry 2/3 in 0.5s" in console.file.getvalue()
    state.handle(StepStarted("flaky", 0, {"db": 1}, 5.0, attempt=2))
    console = Console(file=io.StringIO(), width=100)
    console.print(live_view(state, height=20))
    assert "attempt 2/3" in console.file.getvalue()


# ---- real runs -------------------------------------------------------------------------------


def test_a_step_failing_twice_then_succeeding_ends_succeeded_after_three_attempts(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(
        "steps:\n"
        + attempt_step("flaky", 1, 2, extra="retry: {maxAttempts: 3, delay: 300ms, backoff: 2}")
    )
    done = wfrun(
        "run", str(path), "--ui", "plain", "--report", str(workdir / "report.json"),
        "--junit", str(workdir / "junit.xml"), "--log-dir", str(workdir / "runs"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = report_of(workdir)["stepResults"]["flaky"]
    assert result["status"] == "succeeded" and result["attempts"] == 3
    assert [a["status"] for a in result["attemptResults"]] == ["failed", "failed", "succeeded"]
    assert [a["exitCode"] for a in result["attemptResults"]] == [1, 1, 0]
    assert result["startTime"] == result["attemptResults"][0]["startTime"]
    assert result["endTime"] == result["attemptResults"][-1]["endTime"]
    spans = runs(workdir, "flaky")
    assert len(spans) == 3
    # 300ms, then 600ms (+10% jitter at most), with generous room for a busy machine.
    first_gap, second_gap = spans[1][0] - spans[0][1], spans[2][0] - spans[1][1]
    assert 0.3 <= first_gap < 2.0 and 0.6 <= second_gap < 2.5
    assert "↻ flaky  attempt 1/3 failed: exited with code 1 · retry 2/3 in" in done.stdout
    assert "✔ flaky  succeeded in" in done.stdout and "after 3 attempts" in done.stdout
    log = Path(result["logFile"]).read_text()
    headers = [line for line in log.splitlines() if "wfrun: attempt" in line]
    assert headers == [f"─── wfrun: attempt {n} of 3 ───" for n in (1, 2, 3)]
    assert "flaky: run 1" in log and "flaky: run 3" in log
    case = ET.parse(workdir / "junit.xml").getroot().find(".//testcase[@name='flaky']")
    assert case is not None and case.find("failure") is None
    assert "passed after 3 attempts" in (case.findtext("system-out") or "")


def test_a_pool_held_by_a_step_is_given_to_another_while_it_waits_to_retry(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(
        "parallel: {resources: {db: 1}}\nsteps:\n"
        + attempt_step(
            "flaky",
            1,
            1,
            "0.2",
            extra="parallel: {resource: db}\nretry: {maxAttempts: 2, delay: 1s}",
        )
        + attempt_step("other", 0, 0, "0.3", extra="parallel: {resource: db}\ndependsOn: [gate]")
        + attempt_step("gate", 0, 0, "0.1")
    )
    done = wfrun(
        "run", str(path), "--ui", "plain", "--log-dir", str(workdir / "runs"),
        "--report", str(workdir / "report.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (first, second), (other,) = runs(workdir, "flaky"), runs(workdir, "other")
    # The pool's statistics count the attempts, not the wait between them.
    assert report_of(workdir)["parallelStats"]["resources"]["db"]["peak"] == 1
    # `other` needed the pool while flaky held it, got it when flaky's attempt failed, and
    # flaky's retry waited for it in turn.
    assert first[1] <= other[0] and other[1] <= second[0]


def test_on_75_retries_exit_75_and_not_exit_1(workdir: Path, write: Callable[..., Path]) -> None:
    retry = "retry: {maxAttempts: 3, delay: 100ms, on: [75]}\ncontinueOnError: true"
    path = write(
        "steps:\n"
        + attempt_step("tempfail", 75, 1, extra=retry)
        + attempt_step("broken", 1, 5, extra=retry)
    )
    done = wfrun(
        "run", str(path), "--ui", "plain", "--report", str(workdir / "report.json"),
        "--log-dir", str(workdir / "runs"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = report_of(workdir)["stepResults"]
    assert results["tempfail"]["status"] == "succeeded" and results["tempfail"]["attempts"] == 2
    assert results["broken"]["status"] == "failed" and results["broken"]["attempts"] == 1
    assert len(runs(workdir, "tempfail")) == 2 and len(runs(workdir, "broken")) == 1


def test_a_command_that_cannot_start_is_not_retried(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(
        "steps:\n  - id: missing\n    config: {command: no-such-program-wfrun}\n"
        "    retry: {maxAttempts: 3, delay: 100ms}\n"
    )
    done = wfrun(
        "run", str(path), "--ui", "plain", "--report", str(workdir / "report.json"),
        "--log-dir", str(workdir / "runs"),
    )  # fmt: skip
    assert done.returncode == 1
    result = report_of(workdir)["stepResults"]["missing"]
    assert result["attempts"] == 1 and "↻" not in done.stdout


def test_defaults_retry_applies_to_steps_without_their_own(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(
        "defaults: {retry: {maxAttempts: 2, delay: 100ms}}\nsteps:\n"
        + attempt_step("inherits", 1, 1)
        + attempt_step("own", 1, 1, extra="retry: {maxAttempts: 1}\ncontinueOnError: true")
    )
    done = wfrun(
        "run", str(path), "--ui", "plain", "--report", str(workdir / "report.json"),
        "--log-dir", str(workdir / "runs"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = report_of(workdir)["stepResults"]
    assert results["inherits"]["attempts"] == 2 and results["own"]["attempts"] == 1


def test_a_run_that_stops_does_not_wait_for_a_retry(
    workdir: Path, write: Callable[..., Path]
) -> None:
    # `fatal` fails while `flaky` waits 30s for its second attempt: the run stops at once and
    # flaky ends as its only attempt did.
    path = write(
        "steps:\n"
        + attempt_step("flaky", 1, 5, extra="retry: {maxAttempts: 3, delay: 30s}")
        + attempt_step("fatal", 2, 5, "0.5")
    )
    done = wfrun(
        "run", str(path), "--ui", "plain", "--report", str(workdir / "report.json"),
        "--log-dir", str(workdir / "runs"), timeout=20,
    )  # fmt: skip
    assert done.returncode == 1
    report = report_of(workdir)
    assert report["executionTime"] < 10_000
    flaky = report["stepResults"]["flaky"]
    assert flaky["status"] == "failed" and flaky["attempts"] == 1


def test_the_report_with_attempts_validates_against_its_schema(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(
        "steps:\n" + attempt_step("flaky", 1, 1, extra="retry: {maxAttempts: 2, delay: 100ms}")
    )
    wfrun("run", str(path), "--ui", "quiet", "--report", str(workdir / "report.json"),
          "--log-dir", str(workdir / "runs"))  # fmt: skip
    assert report_errors(report_of(workdir)) == []


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ("{maxAttempts: 0}", "'retry.maxAttempts' of step 'a' must be at least 1, got 0"),
        ("{delay: 5}", "'retry.delay' of step 'a': duration 5 has no unit"),
        ("{delay: -1s}", "'retry.delay' of step 'a': invalid duration '-1s'"),
        ("{backoff: 0.5}", "'retry.backoff' of step 'a' must be from 1 to 100"),
        ("{backoff: 101}", "'retry.backoff' of step 'a' must be from 1 to 100"),
        ("{on: [faild]}", "must be one of failed, timed_out, got 'faild' (did you mean 'failed'?)"),
        ("{maxAttemps: 2}", "unknown key 'maxAttemps' in 'retry' of step 'a' (did you mean"),
    ],
)
def test_bad_retry_settings_are_positioned_errors(
    write: Callable[..., Path], retry: str, message: str
) -> None:
    path = write(f"steps:\n  - id: a\n    config: {{command: 'true'}}\n    retry: {retry}\n")
    done = wfrun("validate", str(path))
    assert done.returncode == 1
    assert f"{path}:4:" in done.stdout and message in done.stdout
    assert "Traceback" not in done.stderr
