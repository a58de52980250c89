"""run_process with real processes: pipes, log, tail, timeouts, cancellation, process groups."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from conftest import all_gone

from wfrun.executors import local_runner, step_output
from wfrun.executors.base import CancelToken, StepContext
from wfrun.executors.local_runner import LocalProcessRunner
from wfrun.executors.process import (
    ProcessResult,
    ProcessSpec,
    StartErrorKind,
    describe_timeout,
    process_status,
    signal_name,
)
from wfrun.executors.step_output import StepRun, run_step_process
from wfrun.model import ScriptConfig, Step, StepType, Workflow
from wfrun.results import StepStatus

PY = sys.executable
# A shell whose background `sleep` notes its pid, so the test can check the sleep is gone.
SLEEPER = "sleep 60 & echo $! > sleeper.pid; "


def make_context(
    tmp_path: Path,
    *,
    log: bool = True,
    on_output: Callable[[tuple[str, ...]], None] | None = None,
    grace_period: float = 5.0,
    token: CancelToken | None = None,
) -> StepContext:
    step = Step(id="s", name="s", type=StepType.SCRIPT, config=ScriptConfig("true"))
    workflow = Workflow(name="wf", steps=(step,), base_dir=tmp_path)
    return StepContext(
        run_id="run-1",
        workflow=workflow,
        step=step,
        env=dict(os.environ),
        cancel=token or CancelToken(),
        log_path=tmp_path / "step.log" if log else None,
        on_output=on_output,
        grace_period=grace_period,
    )


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def run(
    argv: list[str],
    tmp_path: Path,
    context: StepContext | None = None,
    *,
    stdin: bytes | None = None,
    timeout: float | None = None,
    capture_stdout: bool = False,
) -> StepRun:
    context = context or make_context(tmp_path)
    spec = ProcessSpec(
        argv, tmp_path, dict(os.environ), stdin, timeout, capture_stdout, context.grace_period
    )
    return run_process(spec, context)


def run_process(spec: ProcessSpec, context: StepContext) -> StepRun:
    runner = LocalProcessRunner()
    try:
        return run_step_process(runner, spec, context)
    finally:
        runner.close()


def read_pid(path: Path, timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.strip():
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


def is_gone(pid: int, timeout: float = 3.0) -> bool:
    return all_gone([pid], timeout)


@pytest.fixture
def stray_pids() -> Iterator[list[int]]:
    """Pids a test deliberately lets escape; killed afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- output ---------------------------------------------------------------------------------


def test_exit_code_tail_and_log(tmp_path: Path) -> None:
    result = run(sh("echo out; echo err >&2; exit 3"), tmp_path)
    assert result.returncode == 3 and result.exit_code == 3 and result.signal is None
    assert result.output_tail == "out\nerr"
    assert (tmp_path / "step.log").read_bytes() == b"out\nerr\n"
    assert result.start_error is None and not result.timed_out and not result.cancelled


def test_tail_keeps_the_last_50_lines(tmp_path: Path) -> None:
    result = run(py("for i in range(200): print(f'line {i}')"), tmp_path)
    assert result.output_tail.splitlines() == [f"line {i}" for i in range(150, 200)]
    assert len((tmp_path / "step.log").read_text().splitlines()) == 200


def test_tail_is_bounded_in_bytes(tmp_path: Path) -> None:
    result = run(py("for i in range(50): print(str(i) * 10000)"), tmp_path)
    assert len(result.output_tail) <= step_output.TAIL_BYTES + step_output.TAIL_LINES
    assert result.output_tail.splitlines()[-1] == "49" * 10000


def test_endless_line_is_broken_up(tmp_path: Path) -> None:
    result = run(py("import sys; sys.stdout.write('x' * 1_000_000)"), tmp_path)
    assert len(result.output_tail) <= step_output.TAIL_BYTES + step_output.TAIL_LINES
    assert (tmp_path / "step.log").stat().st_size == 1_000_000


def test_last_line_without_newline_counts(tmp_path: Path) -> None:
    assert run(["printf", "a\\nb"], tmp_path).output_tail == "a\nb"


def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    result = run(py("import sys; sys.stdout.buffer.write(b'ok \\xff\\n')"), tmp_path)
    assert result.output_tail == "ok \ufffd"


def test_on_output_receives_complete_lines(tmp_path: Path) -> None:
    calls: list[tuple[str, ...]] = []
    code = (
        "import sys, time\n"
        "for i in range(300): print(f'line {i}')\n"
        "sys.stdout.write('hel'); sys.stdout.flush(); time.sleep(0.1)\n"
        "print('lo')\n"
    )
    run(py(code), tmp_path, make_context(tmp_path, on_output=calls.append))
    lines = [line for call in calls for line in call]
    assert lines == [f"line {i}" for i in range(300)] + ["hello"]
    assert all(isinstance(call, tuple) and call for call in calls)


def test_no_log_file(tmp_path: Path) -> None:
    result = run(sh("echo hi"), tmp_path, make_context(tmp_path, log=False))
    assert result.output_tail == "hi" and result.returncode == 0
    assert not (tmp_path / "step.log").exists()


def test_100_mb_of_output_keeps_memory_flat(tmp_path: Path) -> None:
    me = psutil.Process()
    before = me.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], me.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    count = [0]

    def on_output(lines: tuple[str, ...]) -> None:
        count[0] += len(lines)

    code = (
        "import sys\nchunk = (b'x' * 1023 + b'\\n') * 64\nw = sys.stdout.buffer.write\n"
        "for _ in range(1600): w(chunk)\n"
    )
    try:
        result = run(py(code), tmp_path, make_context(tmp_path, on_output=on_output))
    finally:
        done.set()
        sampler.join()
    assert result.returncode == 0
    assert (tmp_path / "step.log").stat().st_size == 100 * 1024 * 1024
    assert count[0] == 102400
    assert peak[0] - before < 30 * 1024 * 1024


# --- stdin and captured stdout ------------------------------------------------------------


def test_stdin_is_dev_null(tmp_path: Path) -> None:
    result = run(py("import sys; print(repr(sys.stdin.read()))"), tmp_path, timeout=10)
    assert result.output_tail == "''" and not result.timed_out


def test_stdin_bytes_are_written_then_closed(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: more than a pipe holds
    code = (
        "import sys, hashlib; d = sys.stdin.buffer.read(); "
        "print(len(d), hashlib.md5(d).hexdigest())"
    )
    result = run(py(code), tmp_path, stdin=data, capture_stdout=True, timeout=10)
    assert result.stdout.decode().split() == [str(len(data)), hashlib.md5(data).hexdigest()]


def test_stdin_not_read_does_not_hang(tmp_path: Path) -> None:
    result = run(["true"], tmp_path, stdin=b"x" * 1_000_000, timeout=10)
    assert result.returncode == 0 and not result.timed_out


def test_capture_stdout_keeps_stdout_apart(tmp_path: Path) -> None:
    result = run(sh("echo reply; echo note >&2"), tmp_path, capture_stdout=True)
    assert result.stdout == b"reply\n"
    assert sorted(result.output_tail.splitlines()) == ["note", "reply"]
    assert sorted((tmp_path / "step.log").read_text().splitlines()) == ["note", "reply"]


def test_capture_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(step_output, "CAPTURE_LIMIT", 1000)
    result = run(py("print('y' * 5000)"), tmp_path, capture_stdout=True)
    assert result.stdout == b"y" * 1000 and result.stdout_truncated


# --- process groups -----------------------------------------------------------------------


def test_grandchild_holding_the_pipe_does_not_hang(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(sh(SLEEPER + "echo done"), tmp_path)
    assert time.monotonic() - started < 3
    assert result.returncode == 0 and result.output_tail == "done"
    assert is_gone(read_pid(tmp_path / "sleeper.pid"))


def test_escaped_grandchild_does_not_hang(tmp_path: Path, stray_pids: list[int]) -> None:
    code = (
        "import subprocess\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "open('escaped.pid', 'w').write(str(p.pid))\nprint('bye', flush=True)\n"
    )
    started = time.monotonic()
    result = run(py(code), tmp_path)
    stray_pids.append(read_pid(tmp_path / "escaped.pid"))
    assert time.monotonic() - started < local_runner.DRAIN_LIMIT + 3
    assert result.returncode == 0 and result.output_tail == "bye"


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(sh(SLEEPER + "wait"), tmp_path, timeout=0.5)
    assert result.timed_out and result.signal == signal.SIGTERM
    assert time.monotonic() - started < 3
    assert is_gone(read_pid(tmp_path / "sleeper.pid"))


def test_sigterm_ignored_means_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    context = make_context(tmp_path, grace_period=0.5)
    started = time.monotonic()
    result = run(sh("trap '' TERM; " + SLEEPER + "wait"), tmp_path, context, timeout=0.3)
    elapsed = time.monotonic() - started
    assert result.timed_out and result.signal == signal.SIGKILL
    assert 0.7 <= elapsed < 3
    assert is_gone(read_pid(tmp_path / "sleeper.pid"))


def test_timeout_after_the_output_is_closed(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(sh("exec >&- 2>&-; sleep 60"), tmp_path, timeout=0.3)
    assert result.timed_out and time.monotonic() - started < 3


# --- cancellation -------------------------------------------------------------------------


def cancel_later(token: CancelToken, delay: float, force: bool = False) -> threading.Timer:
    timer = threading.Timer(delay, token.cancel, args=("stopped by test",), kwargs={"force": force})
    timer.start()
    return timer


def test_cancel_from_another_thread(tmp_path: Path) -> None:
    token = CancelToken()
    cancel_later(token, 0.3)
    started = time.monotonic()
    result = run(sh(SLEEPER + "wait"), tmp_path, make_context(tmp_path, token=token))
    assert result.cancelled and not result.timed_out and result.signal == signal.SIGTERM
    assert time.monotonic() - started < 3
    assert is_gone(read_pid(tmp_path / "sleeper.pid"))


def test_cancel_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    token = CancelToken()
    cancel_later(token, 0.3)
    context = make_context(tmp_path, token=token, grace_period=0.5)
    started = time.monotonic()
    result = run(sh("trap '' TERM; " + SLEEPER + "wait"), tmp_path, context)
    assert result.cancelled and result.signal == signal.SIGKILL
    assert time.monotonic() - started < 3
    assert is_gone(read_pid(tmp_path / "sleeper.pid"))


def test_force_cancel_kills_at_once(tmp_path: Path) -> None:
    token = CancelToken()
    cancel_later(token, 0.3, force=True)
    context = make_context(tmp_path, token=token, grace_period=30)
    started = time.monotonic()
    result = run(sh("trap '' TERM; " + SLEEPER + "wait"), tmp_path, context)
    assert result.cancelled and result.signal == signal.SIGKILL
    assert time.monotonic() - started < 3
    assert is_gone(read_pid(tmp_path / "sleeper.pid"))


def test_second_cancel_with_force_escalates(tmp_path: Path) -> None:
    token = CancelToken()
    cancel_later(token, 0.2)
    cancel_later(token, 0.5, force=True)
    context = make_context(tmp_path, token=token, grace_period=30)
    started = time.monotonic()
    result = run(sh("trap '' TERM; sleep 60 & wait"), tmp_path, context)
    assert result.cancelled and result.signal == signal.SIGKILL
    assert time.monotonic() - started < 3


def test_cancel_before_start_starts_nothing(tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel("interrupted")
    result = run(sh("touch started"), tmp_path, make_context(tmp_path, token=token))
    assert result.cancelled and result.returncode is None
    assert not (tmp_path / "started").exists()


def test_cancel_after_the_end_changes_nothing(tmp_path: Path) -> None:
    token = CancelToken()
    result = run(["true"], tmp_path, make_context(tmp_path, token=token))
    token.cancel("too late")
    assert result.returncode == 0 and not result.cancelled


def test_no_thread_outlives_the_step(tmp_path: Path) -> None:
    baseline = threading.active_count()
    token = CancelToken()
    cancel_later(token, 0.2).join()  # a pending SIGKILL timer must be stopped at the end
    run(sh("sleep 60"), tmp_path, make_context(tmp_path, token=token, grace_period=30))
    run(sh("sleep 60"), tmp_path, timeout=0.2)
    deadline = time.monotonic() + 3
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() == baseline


# --- start errors -------------------------------------------------------------------------


def test_command_not_found(tmp_path: Path) -> None:
    error = run(["nosuch-wfrun-command"], tmp_path).start_error
    assert error is not None and error.kind is StartErrorKind.COMMAND_NOT_FOUND
    assert error.reason == "command not found: 'nosuch-wfrun-command'"


def test_not_executable(tmp_path: Path) -> None:
    (tmp_path / "x.sh").write_text("echo hi\n")
    error = run(["./x.sh"], tmp_path).start_error
    assert error is not None and error.kind is StartErrorKind.NOT_EXECUTABLE
    assert error.reason == "permission denied: './x.sh' is not executable"


def test_unstartable_arguments(tmp_path: Path) -> None:
    error = run(["echo", "nul\0byte"], tmp_path).start_error
    assert error is not None and error.reason.startswith("cannot start 'echo': ")
    error = run([""], tmp_path).start_error
    assert error is not None and error.reason == "command not found: ''"


@pytest.mark.parametrize("make", ["missing", "file"])
def test_bad_working_directory(tmp_path: Path, make: str) -> None:
    where = tmp_path / "build"
    if make == "file":
        where.write_text("")
    result = run_process(
        ProcessSpec(argv=["true"], cwd=where, env=dict(os.environ)), make_context(tmp_path)
    )
    assert result.start_error is not None
    assert result.start_error.kind is StartErrorKind.WORKING_DIRECTORY
    assert str(where) in result.start_error.reason
    assert result.returncode is None


def test_unwritable_log_file_is_noted_and_the_step_still_runs(tmp_path: Path) -> None:
    context = make_context(tmp_path)._replace(log_path=tmp_path / "no" / "s.log")
    result = run(sh("echo hello; touch started"), tmp_path, context)
    assert result.returncode == 0 and (tmp_path / "started").exists()
    assert "wfrun: cannot open the log file" in result.output_tail
    assert "hello" in result.output_tail


def test_a_step_that_prints_nothing_leaves_no_log_file(tmp_path: Path) -> None:
    context = make_context(tmp_path)._replace(log_path=tmp_path / "quiet.log")
    assert run(["true"], tmp_path, context).returncode == 0
    assert not (tmp_path / "quiet.log").exists()


# --- status and wording -------------------------------------------------------------------


def test_process_status_wording() -> None:
    token = CancelToken()
    assert process_status(ProcessResult(returncode=0), token, None) == (
        StepStatus.SUCCEEDED,
        None,
    )
    assert process_status(ProcessResult(returncode=3), token, None) == (
        StepStatus.FAILED,
        "exited with code 3",
    )
    assert process_status(ProcessResult(returncode=-11), token, None) == (
        StepStatus.FAILED,
        "killed by signal SIGSEGV",
    )
    timed_out = ProcessResult(returncode=-15, timed_out=True)
    assert process_status(timed_out, token, 2) == (StepStatus.TIMED_OUT, "timed out after 2s")
    token.cancel("workflow timed out after 1m00s", StepStatus.TIMED_OUT)
    cancelled = ProcessResult(returncode=-15, cancelled=True)
    assert process_status(cancelled, token, None) == (
        StepStatus.TIMED_OUT,
        "workflow timed out after 1m00s",
    )


def test_describe_timeout_and_signal_name() -> None:
    assert [describe_timeout(t) for t in (2, 2.0, 0.5, 90, 600)] == [
        "2s",
        "2s",
        "500ms",
        "1m30s",
        "10m00s",
    ]
    assert signal_name(9) == "SIGKILL" and signal_name(250) == "250"


# --- without pidfd (macOS and old kernels) ------------------------------------------------


@pytest.fixture(params=["no-pidfd", "no-pidfd-no-waitid"])
def no_pidfd(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """Run the fallbacks that notice the main process's exit by checking on it periodically:
    without pidfd (waitid, as on older kernels), and without pidfd and waitid (as on macOS,
    whose CPython has no os.waitid; there kqueue comes first, which Linux lacks)."""

    def unavailable(pid: int, flags: int = 0) -> int:
        raise OSError("pidfd_open is not available here")

    monkeypatch.setattr(os, "pidfd_open", unavailable)
    if request.param == "no-pidfd-no-waitid":
        monkeypatch.delattr(os, "waitid")
    return str(request.param)


def test_each_fallback_is_the_watcher_in_use(tmp_path: Path, no_pidfd: str) -> None:
    from wfrun.executors.exit_watch import watch_exit

    proc = subprocess.Popen(["true"])
    watch = watch_exit(proc)
    expected = "_WaitidWatch" if no_pidfd == "no-pidfd" else "_ReapingWatch"
    assert type(watch).__name__ == expected and watch.fd is None
    deadline = time.monotonic() + 5
    while not watch.has_exited():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert proc.wait() == 0


@pytest.mark.usefixtures("no_pidfd")
def test_fallback_runs_and_reports(tmp_path: Path) -> None:
    result = run(sh("echo hi; exit 4"), tmp_path)
    assert result.returncode == 4 and result.output_tail == "hi"


@pytest.mark.usefixtures("no_pidfd")
def test_fallback_grandchild_holding_the_pipe(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(sh(SLEEPER + "echo done"), tmp_path)
    assert time.monotonic() - started < 3 and result.returncode == 0
    assert is_gone(read_pid(tmp_path / "sleeper.pid"))


@pytest.mark.usefixtures("no_pidfd")
def test_fallback_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(sh("exec >&- 2>&-; " + SLEEPER + "wait"), tmp_path, timeout=0.3)
    assert result.timed_out and time.monotonic() - started < 3
    assert is_gone(read_pid(tmp_path / "sleeper.pid"))
