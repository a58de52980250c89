"""The scheduler with real processes. Concurrency is judged from the intervals the steps record
themselves; margins are wide enough for a loaded 2-core machine."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from conftest import Recorder, intervals, overlaps, peak, py_step, rec, run

from wfrun.events import StepFinished, StepStarted, StepWaiting
from wfrun.executors.base import StepContext
from wfrun.executors.routing import default_executor
from wfrun.loader import load_workflow
from wfrun.planner import make_plan
from wfrun.results import RunStatus, StepOutcome, StepStatus
from wfrun.scheduler import RunSettings, Scheduler

Write = Callable[[str], Path]


def test_a_step_starts_before_an_unrelated_slow_step_of_its_level_ends(
    write: Write, workdir: Path
) -> None:
    path = write(f"""
        steps:
          - {{id: slow, config: {rec(2.0)}}}
          - {{id: fast, config: {rec(0.1)}}}
          - {{id: next, config: {rec(0.1)}, dependsOn: [fast]}}
          - {{id: last, config: {rec(0.1)}, dependsOn: [next]}}
    """)
    result = run(path)
    assert result.success
    got = intervals(workdir)
    # No level barrier: the chain fast -> next -> last finishes while slow still runs.
    assert got["last"][1] < got["slow"][1]
    assert result.step_results["next"].parallel_group == 1
    assert result.step_results["last"].parallel_group == 2


def test_peak_running_never_exceeds_the_global_cap(write: Write, workdir: Path) -> None:
    steps = "\n".join(f"  - {{id: s{i}, config: {rec(0.3)}}}" for i in range(9))
    path = write(f"parallel: {{defaultMaxConcurrency: 3}}\nsteps:\n{steps}\n")
    result = run(path)
    spans = list(intervals(workdir).values())
    assert len(spans) == 9
    assert 2 <= peak(spans) <= 3  # parallel, and never above the cap
    assert result.parallel_stats is not None
    assert result.parallel_stats.max_concurrent_steps <= 3
    assert result.max_concurrency == 3


def test_cap_option_overrides_the_file(write: Write, workdir: Path) -> None:
    steps = "\n".join(f"  - {{id: s{i}, config: {rec(0.3)}}}" for i in range(4))
    path = write(f"parallel: {{defaultMaxConcurrency: 4}}\nsteps:\n{steps}\n")
    run(path, max_concurrency=1)
    assert peak(list(intervals(workdir).values())) == 1


def test_pools_cap_their_steps_while_other_steps_overlap(write: Write, workdir: Path) -> None:
    path = write(f"""
        parallel:
          defaultMaxConcurrency: 8
          resources: {{database: 1, cpu: 2}}
        steps:
          - {{id: db1, config: {rec(0.4)}, parallel: {{resource: database}}}}
          - {{id: db2, config: {rec(0.4)}, parallel: {{resource: database}}}}
          - {{id: db3, config: {rec(0.4)}, parallel: {{resource: database}}}}
          - {{id: cpu1, config: {rec(0.4)}, parallel: {{resource: cpu}}}}
          - {{id: cpu2, config: {rec(0.4)}, parallel: {{resource: [cpu]}}}}
          - {{id: cpu3, config: {rec(0.4)}, parallel: {{resource: {{cpu: 1}}}}}}
          - {{id: free, config: {rec(1.0)}}}
    """)
    recorder = Recorder()
    result = run(path, recorder)
    got = intervals(workdir)
    assert peak([got[s] for s in ("db1", "db2", "db3")]) == 1
    assert peak([got[s] for s in ("cpu1", "cpu2", "cpu3")]) == 2
    # Steps of other pools and free steps are not held back by a full pool.
    assert overlaps(got["db1"], got["cpu1"]) and overlaps(got["db1"], got["free"])
    stats = result.parallel_stats
    assert stats is not None
    assert stats.resources["database"].peak == 1 and stats.resources["cpu"].peak == 2
    assert 0.3 < stats.resource_utilization["database"] <= 1.0
    waiting = [e for e in recorder.events if isinstance(e, StepWaiting)]
    assert any(str(e.reason).startswith("pool database 1/1 held by") for e in waiting)
    assert result.step_results["db3"].wait_reason is not None
    assert result.step_results["db3"].wait_reason.startswith("pool database")


def test_a_weighted_step_never_overlaps_steps_that_would_overflow_its_pool(
    write: Write, workdir: Path
) -> None:
    path = write(f"""
        parallel:
          defaultMaxConcurrency: 8
          resources: {{cpu: 3, memory: 2}}
        steps:
          - {{id: a, config: {rec(0.3)}, parallel: {{resource: cpu}}}}
          - {{id: b, config: {rec(0.3)}, parallel: {{resource: cpu}}}}
          - {{id: heavy, config: {rec(0.3)}, parallel: {{resource: {{cpu: 2, memory: 2}}}}}}
          - {{id: c, config: {rec(0.3)}, parallel: {{resource: cpu}}}}
          - {{id: m, config: {rec(0.3)}, parallel: {{resource: memory}}}}
    """)
    assert run(path).success
    got = intervals(workdir)
    cpu_users = {"a": 1, "b": 1, "heavy": 2, "c": 1}
    for sid, span in got.items():
        if sid == "heavy":
            continue
        if overlaps(span, got["heavy"]):
            assert cpu_users.get(sid, 0) <= 1 and sid != "m"  # memory is all taken by heavy
    for moment in sorted(t for span in got.values() for t in span):
        in_use = sum(u for sid, u in cpu_users.items() if got[sid][0] <= moment < got[sid][1])
        assert in_use <= 3


def test_steps_that_run_alone_never_overlap_anything(write: Write, workdir: Path) -> None:
    path = write(f"""
        parallel: {{defaultMaxConcurrency: 4}}
        steps:
          - {{id: a, config: {rec(0.3)}}}
          - {{id: b, config: {rec(0.3)}}}
          - {{id: alone, config: {rec(0.3)}, parallel: {{maxConcurrency: 1}}}}
          - {{id: disabled, config: {rec(0.3)}, parallel: {{enabled: false}}}}
          - {{id: c, config: {rec(0.3)}}}
          - {{id: d, config: {rec(0.3)}}}
    """)
    recorder = Recorder()
    assert run(path, recorder).success
    got = intervals(workdir)
    for lonely in ("alone", "disabled"):
        assert not any(overlaps(got[lonely], span) for sid, span in got.items() if sid != lonely)
    assert peak(list(got.values())) >= 2
    reasons = {str(e.reason) for e in recorder.events if isinstance(e, StepWaiting)}
    assert "runs alone" in reasons


def test_sequential_mode_runs_a_deterministic_topological_order(
    write: Write, workdir: Path
) -> None:
    path = write(f"""
        parallel: {{enabled: false}}
        steps:
          - {{id: deploy, config: {rec(0.05)}, dependsOn: [build]}}
          - {{id: lint, config: {rec(0.05)}}}
          - {{id: build, config: {rec(0.05)}}}
          - {{id: test, config: {rec(0.05)}, dependsOn: [lint]}}
    """)
    recorder = Recorder()
    result = run(path, recorder)
    order = [e.step_id for e in recorder.events if isinstance(e, StepStarted)]
    assert order == ["lint", "build", "deploy", "test"]
    got = intervals(workdir)
    assert peak(list(got.values())) == 1
    assert result.parallel_stats is None and result.max_concurrency == 1
    # The run option wins over the file.
    recorder2 = Recorder()
    run(path, recorder2, parallel=True)
    assert len([e for e in recorder2.events if isinstance(e, StepStarted)]) == 4


def test_events_come_in_order_for_each_step(write: Write) -> None:
    path = write(f"""
        steps:
          - {{id: a, config: {rec(0.05)}}}
          - {{id: b, config: {rec(0.05)}, dependsOn: [a]}}
    """)
    recorder = Recorder()
    run(path, recorder)
    kinds = [(type(e).__name__, getattr(e, "step_id", None)) for e in recorder.events]
    assert kinds[0] == ("RunStarted", None) and kinds[-1] == ("RunFinished", None)
    for sid in ("a", "b"):
        mine = [k for k, s in kinds if s == sid and k != "StepOutput"]
        assert mine == ["StepReady", "StepStarted", "StepFinished"]
    assert kinds.index(("StepFinished", "a")) < kinds.index(("StepReady", "b"))
    outputs = [e for e in recorder.events if type(e).__name__ == "StepOutput"]
    assert any("a working" in line for e in outputs for line in e.lines)  # type: ignore[attr-defined]


# ---- failure rules (SPEC §3.5) -----------------------------------------------------------------


def test_fatal_failure_skips_dependents_stops_new_starts_and_lets_running_steps_finish(
    write: Write, workdir: Path
) -> None:
    path = write(f"""
        parallel: {{defaultMaxConcurrency: 2}}
        steps:
          - {{id: bad, config: {rec(0.1, 3)}}}
          - {{id: running, config: {rec(1.0)}}}
          - {{id: child, config: {rec(0.1)}, dependsOn: [bad]}}
          - {{id: grandchild, config: {rec(0.1)}, dependsOn: [child]}}
          - {{id: unrelated, config: {rec(0.1)}}}
    """)
    recorder = Recorder()
    result = run(path, recorder)
    statuses = {sid: r.status for sid, r in result.step_results.items()}
    assert statuses == {
        "bad": StepStatus.FAILED,
        "running": StepStatus.SUCCEEDED,  # already running: it finishes
        "child": StepStatus.SKIPPED,
        "grandchild": StepStatus.SKIPPED,
        "unrelated": StepStatus.SKIPPED,  # not started: failure stops the entire workflow
    }
    assert result.status is RunStatus.FAILED and not result.success
    assert result.step_results["bad"].exit_code == 3
    assert result.step_results["bad"].reason == "exited with code 3"
    assert result.step_results["child"].reason == "dependency 'bad' failed"
    assert "unrelated" not in intervals(workdir)
    finished = [e.step_id for e in recorder.events if isinstance(e, StepFinished)]
    assert sorted(finished) == sorted(statuses)  # exactly one final status per step


def test_keep_going_starts_independent_steps(write: Write, workdir: Path) -> None:
    path = write(f"""
        parallel: {{defaultMaxConcurrency: 1}}
        steps:
          - {{id: bad, config: {rec(0.05, 1)}}}
          - {{id: child, config: {rec(0.05)}, dependsOn: [bad]}}
          - {{id: unrelated, config: {rec(0.05)}}}
    """)
    result = run(path, keep_going=True)
    assert result.step_results["unrelated"].status is StepStatus.SUCCEEDED
    assert result.step_results["child"].status is StepStatus.SKIPPED
    assert result.status is RunStatus.FAILED


def test_continue_on_error_is_an_allowed_failure(write: Write, workdir: Path) -> None:
    path = write(f"""
        steps:
          - {{id: flaky, config: {rec(0.05, 2)}, continueOnError: true}}
          - {{id: after, config: {rec(0.05)}, dependsOn: [flaky]}}
    """)
    result = run(path)
    flaky = result.step_results["flaky"]
    assert flaky.status is StepStatus.FAILED and flaky.allowed_failure
    assert result.step_results["after"].status is StepStatus.SUCCEEDED
    assert result.success and result.status is RunStatus.SUCCEEDED
    assert result.to_dict()["stepResults"]["flaky"]["allowedFailure"] is True


def test_isolate_errors_false_cancels_running_group_siblings(write: Write, workdir: Path) -> None:
    path = write(f"""
        parallel: {{defaultMaxConcurrency: 3}}
        steps:
          - {{id: root, config: {rec(0.05)}}}
          - {{id: critical, config: {rec(0.3, 1)}, dependsOn: [root],
              parallel: {{isolateErrors: false}}}}
          - {{id: sibling, config: {rec(5.0)}, dependsOn: [root]}}
          - {{id: cousin, config: {rec(0.05)}, dependsOn: [sibling]}}
    """)
    result = run(path, keep_going=True)
    sibling = result.step_results["sibling"]
    assert sibling.status is StepStatus.CANCELLED
    assert sibling.reason == "group sibling 'critical' failed (isolateErrors: false)"
    assert sibling.duration is not None and sibling.duration < 4.0
    assert "sibling" not in intervals(workdir)  # it never got to record its end
    assert result.step_results["cousin"].status is StepStatus.SKIPPED


def test_isolated_errors_never_touch_running_siblings(write: Write, workdir: Path) -> None:
    path = write(f"""
        steps:
          - {{id: bad, config: {rec(0.05, 1)}}}
          - {{id: sibling, config: {rec(0.5)}}}
    """)
    result = run(path)
    assert result.step_results["sibling"].status is StepStatus.SUCCEEDED


# ---- timeouts ----------------------------------------------------------------------------------


def test_step_timeout(write: Write, workdir: Path) -> None:
    slow = py_step("slow", "import time; time.sleep(30)", "timeout: 300ms")
    path = write(f"steps:\n{slow}  - {{id: after, config: {rec(0.05)}, dependsOn: [slow]}}\n")
    result = run(path)
    slow = result.step_results["slow"]
    assert slow.status is StepStatus.TIMED_OUT
    assert slow.reason is not None and "timed out" in slow.reason
    assert slow.duration is not None and slow.duration < 10
    assert result.step_results["after"].status is StepStatus.SKIPPED
    assert result.status is RunStatus.FAILED


def test_workflow_timeout_cancels_everything(write: Write, workdir: Path) -> None:
    path = write(f"""
        timeout: 500ms
        parallel: {{defaultMaxConcurrency: 1}}
        steps:
          - {{id: long, config: {rec(30)}}}
          - {{id: never, config: {rec(0.05)}}}
    """)
    result = run(path)
    assert result.status is RunStatus.TIMED_OUT
    assert result.step_results["long"].status is StepStatus.TIMED_OUT
    assert result.step_results["never"].status is StepStatus.CANCELLED
    assert result.error is not None and "workflow timed out" in result.error
    assert result.execution_time_s < 10


# ---- reports -----------------------------------------------------------------------------------


def test_logs_and_report_are_written_per_run(write: Write, workdir: Path) -> None:
    path = write(f"""
        steps:
          - {{id: a, config: {rec(0.05)}}}
          - {{id: b, config: {rec(0.05, 1)}}}
          - {{id: silent, config: {{command: "true"}}}}
    """)
    result = run(path, log_dir=workdir / "logs")
    run_dir = workdir / "logs" / result.run_id
    assert (run_dir / "a.log").read_text() == "a working\n"
    assert (run_dir / "report.json").exists()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "failed"
    assert report["stepResults"]["b"]["exitCode"] == 1
    assert report["stepResults"]["a"]["logFile"] == str(run_dir / "a.log")
    assert report["parallelStats"]["totalGroups"] == 1
    # A step that printed nothing has no log file, and the report says so.
    assert report["stepResults"]["silent"]["logFile"] is None
    assert not (run_dir / "silent.log").exists()


def test_statistics_are_measured(write: Write, workdir: Path) -> None:
    path = write(f"""
        parallel: {{defaultMaxConcurrency: 4}}
        steps:
          - {{id: a, config: {rec(0.4)}}}
          - {{id: b, config: {rec(0.4)}}}
          - {{id: c, config: {rec(0.4)}, dependsOn: [a]}}
    """)
    result = run(path)
    stats = result.parallel_stats
    assert stats is not None
    assert stats.total_groups == 2
    assert stats.max_concurrent_steps == 2
    assert stats.critical_path == ["a", "c"]
    assert stats.critical_path_time >= 0.8
    assert stats.sequential_time >= 1.2
    assert 1.1 < stats.speedup < 2.0


def test_a_reporter_that_breaks_is_dropped_and_the_run_goes_on(write: Write, workdir: Path) -> None:
    class Broken:
        wants_output = False

        def handle(self, event: object) -> None:
            if isinstance(event, StepStarted):
                raise OSError("display gone")

    path = write(
        f"steps:\n  - {{id: a, config: {rec(0.05)}}}\n  - {{id: b, config: {rec(0.05)}}}\n"
    )
    recorder = Recorder()
    plan = make_plan(load_workflow(path))
    settings = RunSettings("r", dict(os.environ))
    scheduler = Scheduler(plan, default_executor(), [Broken(), recorder], settings)
    result = scheduler.run()
    assert result.success and set(intervals(workdir)) == {"a", "b"}
    assert scheduler.reporter_errors == ["Broken stopped: OSError('display gone')"]
    assert type(recorder.events[-1]).__name__ == "RunFinished"


# ---- the control path (SPEC §3.7) ---------------------------------------------------------------


def test_an_executor_raising_system_exit_still_ends_its_step(write: Write, workdir: Path) -> None:
    class Exiting:
        """An executor with a bug that raises what `except Exception` would not catch."""

        def execute(self, context: StepContext) -> StepOutcome:
            if context.step.id == "bad":
                raise SystemExit(3)
            return StepOutcome(StepStatus.SUCCEEDED)

    path = write("""
        parallel: {resources: {cpu: 1}}
        steps:
          - {id: bad, config: {command: "true"}, parallel: {resource: cpu}, continueOnError: true}
          - {id: next, config: {command: "true"}, parallel: {resource: cpu}}
    """)
    plan = make_plan(load_workflow(path))
    result = Scheduler(plan, Exiting(), [], RunSettings("r", {})).run()
    bad = result.step_results["bad"]
    assert bad.status is StepStatus.FAILED and bad.reason == "internal error: SystemExit(3)"
    # `bad` gave its unit of cpu back: the other step of the pool ran.
    assert result.step_results["next"].status is StepStatus.SUCCEEDED


def test_a_wait_reason_speaks_of_its_own_step_and_the_holders_of_its_time(
    write: Write, workdir: Path
) -> None:
    steps = "\n".join(
        f"  - {{id: w{i}, config: {rec(0.1)}, parallel: {{resource: cpu}}}}" for i in range(6)
    )
    path = write(f"parallel: {{resources: {{cpu: 1}}}}\nsteps:\n{steps}\n")
    result = run(path)
    spans = intervals(workdir)
    for sid, step in result.step_results.items():
        if step.start_time is None or step.wait_reason is None:
            continue
        assert sid not in step.wait_reason, f"{sid}: {step.wait_reason}"
        assert step.wait is not None and step.wait.pool == "cpu"
        # The holder it names held the pool while it waited: it ended when this one started.
        (holder,) = step.wait.held_by
        assert spans[holder][1] <= spans[sid][0] + 0.05
    waited = [r for r in result.step_results.values() if r.wait_reason]
    assert len(waited) == 5  # all but the first waited for the single unit
    assert result.parallel_stats is not None
    pool_wait = sum(r.wait_time or 0.0 for r in waited)
    assert abs(result.parallel_stats.resources["cpu"].wait_time - pool_wait) < 1e-9


def test_a_workflow_timeout_cancels_the_dependents_of_the_step_it_stopped(
    write: Write, workdir: Path
) -> None:
    path = write(f"""
        timeout: 500ms
        steps:
          - {{id: a, config: {rec(30)}}}
          - {{id: b, config: {rec(0.05)}, dependsOn: [a]}}
    """)
    result = run(path)
    assert result.step_results["a"].status is StepStatus.TIMED_OUT
    b = result.step_results["b"]
    assert b.status is StepStatus.CANCELLED
    assert b.reason == "not started: workflow timed out after 500ms"


def test_a_step_timeout_that_stops_the_run_says_timed_out(write: Write, workdir: Path) -> None:
    slow = py_step("slow", "import time; time.sleep(30)", "timeout: 300ms")
    path = write(
        f"parallel: {{defaultMaxConcurrency: 1}}\nsteps:\n{slow}"
        f"  - {{id: other, config: {rec(0.05)}}}\n"
        f"  - {{id: after, config: {rec(0.05)}, dependsOn: [slow]}}\n"
    )
    result = run(path)
    assert (
        result.step_results["other"].reason == "not started: 'slow' timed out and stopped the run"
    )
    assert result.step_results["after"].reason == "dependency 'slow' timed out"


def test_event_times_never_go_backwards(write: Write, workdir: Path) -> None:
    steps = "\n".join(f"  - {{id: s{i}, config: {{command: 'true'}}}}" for i in range(40))
    path = write(f"parallel: {{defaultMaxConcurrency: 8}}\nsteps:\n{steps}\n")
    recorder = Recorder()
    run(path, recorder)
    times = [event.at for event in recorder.events]
    assert times == sorted(times)
