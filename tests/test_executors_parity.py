"""The scheduling scenarios of the local executor, run on this machine and on a Dask cluster
(SPEC §9: same results for the same workflow). The evidence is the same for both: the intervals
the steps record themselves, their exit, their output, their processes.

The Dask runs share one in-process LocalCluster of two workers (no network) for the module.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Recorder, all_gone, intervals, overlaps, peak, py_step, rec

from wfrun.events import StepWaiting
from wfrun.executors.base import CancelToken, Executor
from wfrun.executors.process import OutputSink, ProcessResult, ProcessRunner, ProcessSpec
from wfrun.executors.routing import default_executor
from wfrun.loader import load_workflow
from wfrun.planner import make_plan
from wfrun.results import RunResult, RunStatus, StepStatus
from wfrun.runner import WorkflowRunner
from wfrun.scheduler import RunSettings, Scheduler

Write = Callable[[str], Path]
MakeExecutor = Callable[[], Executor]


class KeptOpen:
    """The module's Dask runner for one run: the end of a run closes its executor, which must
    not stop the cluster the next test uses."""

    def __init__(self, runner: ProcessRunner) -> None:
        self.runner = runner

    def run(self, spec: ProcessSpec, cancel: CancelToken, sink: OutputSink) -> ProcessResult:
        return self.runner.run(spec, cancel, sink)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def dask_runner() -> Iterator[ProcessRunner]:
    pytest.importorskip("distributed")
    from wfrun.executors.cluster import DaskOptions
    from wfrun.executors.dask_runner import connect

    runner = connect(DaskOptions(workers=2, threads=8))
    yield runner
    runner.close()


@pytest.fixture(params=["local", "dask"])
def make_executor(request: pytest.FixtureRequest) -> MakeExecutor:
    if request.param == "local":
        return default_executor
    runner: ProcessRunner = request.getfixturevalue("dask_runner")
    return lambda: default_executor(KeptOpen(runner))


def run(
    path: Path,
    make_executor: MakeExecutor,
    recorder: Recorder | None = None,
    log_dir: Path | None = None,
    keep_going: bool = False,
) -> RunResult:
    runner = WorkflowRunner(
        executor=make_executor(),
        reporters=[recorder] if recorder else [],
        log_dir=log_dir,
        grace_period=1.0,
    )
    return runner.execute_plan(make_plan(load_workflow(path)), keep_going=keep_going)


def workers(result: RunResult) -> set[str | None]:
    """The workers the steps that ran name: the Dask workers' addresses, or None (here)."""
    return {r.worker for r in result.step_results.values() if r.start_time is not None}


# ---- caps and pools ----------------------------------------------------------------------------


def test_peak_running_never_exceeds_the_global_cap(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    steps = "\n".join(f"  - {{id: s{i}, config: {rec(0.3)}}}" for i in range(7))
    path = write(f"parallel: {{defaultMaxConcurrency: 3}}\nsteps:\n{steps}\n")
    result = run(path, make_executor)
    assert result.success
    spans = list(intervals(workdir).values())
    assert len(spans) == 7
    assert 2 <= peak(spans) <= 3
    assert result.parallel_stats is not None and result.parallel_stats.max_concurrent_steps <= 3


def test_pools_cap_their_steps_while_other_steps_overlap(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    path = write(f"""
        parallel:
          defaultMaxConcurrency: 8
          resources: {{database: 1, cpu: 2}}
        steps:
          - {{id: db1, config: {rec(0.4)}, parallel: {{resource: database}}}}
          - {{id: db2, config: {rec(0.4)}, parallel: {{resource: database}}}}
          - {{id: cpu1, config: {rec(0.4)}, parallel: {{resource: cpu}}}}
          - {{id: cpu2, config: {rec(0.4)}, parallel: {{resource: cpu}}}}
          - {{id: cpu3, config: {rec(0.4)}, parallel: {{resource: cpu}}}}
          - {{id: free, config: {rec(1.0)}}}
    """)
    recorder = Recorder()
    result = run(path, make_executor, recorder)
    assert result.success
    got = intervals(workdir)
    assert peak([got["db1"], got["db2"]]) == 1
    assert peak([got[s] for s in ("cpu1", "cpu2", "cpu3")]) == 2
    assert overlaps(got["db1"], got["cpu1"]) and overlaps(got["db1"], got["free"])
    waiting = [e for e in recorder.events if isinstance(e, StepWaiting)]
    assert any(str(e.reason).startswith("pool database 1/1 held by") for e in waiting)


def test_a_weighted_step_never_overlaps_steps_that_would_overflow_its_pools(
    write: Write, workdir: Path, make_executor: MakeExecutor
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
    assert run(path, make_executor).success
    got = intervals(workdir)
    cpu_users = {"a": 1, "b": 1, "heavy": 2, "c": 1}
    for sid, span in got.items():
        if sid != "heavy" and overlaps(span, got["heavy"]):
            assert cpu_users.get(sid, 0) <= 1 and sid != "m"
    for moment in sorted(t for span in got.values() for t in span):
        in_use = sum(u for sid, u in cpu_users.items() if got[sid][0] <= moment < got[sid][1])
        assert in_use <= 3


def test_steps_that_run_alone_never_overlap_anything(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    path = write(f"""
        parallel: {{defaultMaxConcurrency: 4}}
        steps:
          - {{id: a, config: {rec(0.3)}}}
          - {{id: b, config: {rec(0.3)}}}
          - {{id: alone, config: {rec(0.3)}, parallel: {{maxConcurrency: 1}}}}
          - {{id: c, config: {rec(0.3)}}}
    """)
    assert run(path, make_executor).success
    got = intervals(workdir)
    assert not any(overlaps(got["alone"], span) for sid, span in got.items() if sid != "alone")
    assert peak(list(got.values())) >= 2


# ---- failures ----------------------------------------------------------------------------------


def test_fatal_failure_skips_dependents_and_lets_running_steps_finish(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    path = write(f"""
        parallel: {{defaultMaxConcurrency: 2}}
        steps:
          - {{id: bad, config: {rec(0.1, 3)}}}
          - {{id: running, config: {rec(1.0)}}}
          - {{id: child, config: {rec(0.1)}, dependsOn: [bad]}}
          - {{id: unrelated, config: {rec(0.1)}}}
    """)
    result = run(path, make_executor, log_dir=workdir / "logs")
    statuses = {sid: r.status for sid, r in result.step_results.items()}
    assert statuses == {
        "bad": StepStatus.FAILED,
        "running": StepStatus.SUCCEEDED,
        "child": StepStatus.SKIPPED,
        "unrelated": StepStatus.SKIPPED,
    }
    bad = result.step_results["bad"]
    assert bad.exit_code == 3 and bad.reason == "exited with code 3"
    assert bad.output_tail == "bad working"
    assert bad.log_file is not None and Path(bad.log_file).read_text() == "bad working\n"
    assert set(intervals(workdir)) == {"bad", "running"}


def test_continue_on_error_and_keep_going(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    path = write(f"""
        parallel: {{defaultMaxConcurrency: 1}}
        steps:
          - {{id: flaky, config: {rec(0.05, 2)}, continueOnError: true}}
          - {{id: after, config: {rec(0.05)}, dependsOn: [flaky]}}
          - {{id: bad, config: {rec(0.05, 1)}}}
          - {{id: child, config: {rec(0.05)}, dependsOn: [bad]}}
          - {{id: unrelated, config: {rec(0.05)}}}
    """)
    result = run(path, make_executor, keep_going=True)
    steps = result.step_results
    assert steps["flaky"].status is StepStatus.FAILED and steps["flaky"].allowed_failure
    assert steps["after"].status is StepStatus.SUCCEEDED
    assert steps["child"].status is StepStatus.SKIPPED
    assert steps["unrelated"].status is StepStatus.SUCCEEDED
    assert result.status is RunStatus.FAILED


def test_isolate_errors_false_cancels_running_group_siblings(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    path = write(f"""
        parallel: {{defaultMaxConcurrency: 3}}
        steps:
          - {{id: root, config: {rec(0.05)}}}
          - {{id: critical, config: {rec(0.3, 1)}, dependsOn: [root],
              parallel: {{isolateErrors: false}}}}
          - {{id: sibling, config: {rec(30)}, dependsOn: [root]}}
    """)
    result = run(path, make_executor, keep_going=True)
    sibling = result.step_results["sibling"]
    assert sibling.status is StepStatus.CANCELLED
    assert sibling.reason == "group sibling 'critical' failed (isolateErrors: false)"
    assert sibling.duration is not None and sibling.duration < 10
    assert "sibling" not in intervals(workdir)  # stopped: it never recorded its end


def test_a_command_that_cannot_start_fails_with_the_reason(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    path = write("steps:\n  - {id: typo, config: {command: no-such-program-wfrun}}\n")
    result = run(path, make_executor)
    typo = result.step_results["typo"]
    assert typo.status is StepStatus.FAILED
    assert typo.reason == "command not found: 'no-such-program-wfrun'"


# ---- timeouts and cancellation -----------------------------------------------------------------


def test_step_timeout(write: Write, workdir: Path, make_executor: MakeExecutor) -> None:
    slow = py_step("slow", "import time; time.sleep(30)", "timeout: 300ms")
    path = write(f"steps:\n{slow}  - {{id: after, config: {rec(0.05)}, dependsOn: [slow]}}\n")
    result = run(path, make_executor)
    slow_result = result.step_results["slow"]
    assert slow_result.status is StepStatus.TIMED_OUT
    assert slow_result.reason == "timed out after 300ms"
    assert slow_result.duration is not None and slow_result.duration < 10
    assert result.step_results["after"].status is StepStatus.SKIPPED


def test_workflow_timeout_cancels_everything(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    path = write(f"""
        timeout: 500ms
        parallel: {{defaultMaxConcurrency: 1}}
        steps:
          - {{id: long, config: {rec(30)}}}
          - {{id: never, config: {rec(0.05)}}}
    """)
    result = run(path, make_executor)
    assert result.status is RunStatus.TIMED_OUT
    assert result.step_results["long"].status is StepStatus.TIMED_OUT
    assert result.step_results["never"].status is StepStatus.CANCELLED
    assert result.execution_time_s < 10


SLEEPER = (
    "import os, sys, time; "
    "open(os.path.join(sys.argv[1], os.environ['WFRUN_STEP_ID'] + '.pid'), 'w')"
    ".write(str(os.getpid())); time.sleep(30)"
)


def test_an_interrupt_stops_every_running_step_and_its_process(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    out = workdir / "out"
    path = write(
        "steps:\n" + py_step("one", SLEEPER) + py_step("two", SLEEPER) + py_step("three", SLEEPER)
    )
    plan = make_plan(load_workflow(path))
    settings = RunSettings(run_id="parity", env=dict(os.environ), grace_period=1.0)
    scheduler = Scheduler(plan, make_executor(), [], settings)

    def interrupt_once_all_run() -> None:
        deadline = time.monotonic() + 30
        while len(list(out.glob("*.pid"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        scheduler.interrupt()

    threading.Thread(target=interrupt_once_all_run, daemon=True).start()
    started = time.monotonic()
    result = scheduler.run()
    assert result.status is RunStatus.CANCELLED
    for sid in ("one", "two", "three"):
        assert result.step_results[sid].status is StepStatus.CANCELLED
        assert result.step_results[sid].reason == "run interrupted"
    assert time.monotonic() - started < 20
    pids = [int(p.read_text()) for p in out.glob("*.pid")]
    assert len(pids) == 3 and all_gone(pids, timeout=5)


# ---- output and where it ran -------------------------------------------------------------------


def test_output_reaches_the_log_and_the_tail_in_order(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    script = (
        "import sys; "
        "[print(f'line {i}', file=sys.stderr if i % 3 == 0 else sys.stdout, flush=True) "
        "for i in range(2000)]"
    )
    path = write("steps:\n" + py_step("talk", script))
    result = run(path, make_executor, log_dir=workdir / "logs")
    talk = result.step_results["talk"]
    assert talk.status is StepStatus.SUCCEEDED
    assert talk.log_file is not None
    assert Path(talk.log_file).read_text() == "".join(f"line {i}\n" for i in range(2000))
    assert talk.output_tail.splitlines() == [f"line {i}" for i in range(1950, 2000)]
    if make_executor is default_executor:
        assert workers(result) == {None}
    else:
        assert all(w is not None and w.startswith("inproc://") for w in workers(result))


def test_an_agent_reply_comes_back(
    write: Write, workdir: Path, make_executor: MakeExecutor
) -> None:
    fake = Path(__file__).parent / "agents" / "fake_agent.py"
    path = write(f"""
        agents:
          fake: {{command: ["{sys.executable}", "{fake}", "--model", "{{param.model}}"],
                  parameters: {{model: m1}}}}
        steps:
          - {{id: ask, type: agent, config: {{agent: fake, prompt: "Hello there"}}}}
    """)
    result = run(path, make_executor)
    ask = result.step_results["ask"]
    assert ask.status is StepStatus.SUCCEEDED
    assert ask.output == "model=m1 prompt=Hello there"
