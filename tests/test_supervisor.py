"""The supervising loop: many processes on one thread, each ending, timing out and being cancelled
on its own, whatever the others print. Real processes; bounds are generous (a loaded 2-core box)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Recorder, all_gone, run

from wfrun.events import StepStarted
from wfrun.executors.base import CancelToken
from wfrun.executors.local_runner import LocalProcessRunner
from wfrun.executors.process import STDOUT, ProcessResult, ProcessSpec, StartErrorKind
from wfrun.executors.spawn import Spawner
from wfrun.results import StepStatus

WAIT = 30.0  # seconds: only ever reached when something is broken


class Collect:
    """An OutputSink that keeps every byte, and how it ended."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.fed = 0
        self.ended = threading.Event()
        self.result: ProcessResult | None = None
        self.ended_at = 0.0

    def feed(self, stream: int, data: bytes) -> None:
        assert stream == STDOUT
        self.data += data
        self.fed += len(data)

    def done(self, result: ProcessResult) -> None:
        self.result, self.ended_at = result, time.monotonic()
        self.ended.set()

    def wait(self) -> ProcessResult:
        assert self.ended.wait(WAIT), "the step never ended"
        assert self.result is not None
        return self.result


@pytest.fixture
def runner() -> Iterator[LocalProcessRunner]:
    runner = LocalProcessRunner()
    yield runner
    runner.close()


def spec(argv: list[str], cwd: Path, timeout: float | None = None) -> ProcessSpec:
    return ProcessSpec(argv, cwd, dict(os.environ), timeout=timeout, grace_period=1.0)


def start(
    runner: LocalProcessRunner, argv: list[str], cwd: Path, timeout: float | None = None
) -> tuple[Collect, CancelToken]:
    sink, token = Collect(), CancelToken()
    runner.start(spec(argv, cwd, timeout), token, sink, sink.done)
    return sink, token


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


FLOOD = sh("yes flooding-the-pipe-as-fast-as-it-can")


def test_many_concurrent_processes_each_end_with_their_own_output(
    runner: LocalProcessRunner, tmp_path: Path
) -> None:
    steps = [start(runner, sh(f"echo step-{i}; exit {i % 3}"), tmp_path) for i in range(150)]
    for i, (sink, _) in enumerate(steps):
        result = sink.wait()
        assert result.returncode == i % 3
        assert bytes(sink.data) == f"step-{i}\n".encode()


def test_a_flooding_step_delays_neither_another_steps_end_nor_its_timeout(
    runner: LocalProcessRunner, tmp_path: Path
) -> None:
    flood, flood_token = start(runner, FLOOD, tmp_path)
    while flood.fed < 1_000_000:  # it is flooding
        assert not flood.ended.wait(0.01)
    began = time.monotonic()
    quick, _ = start(runner, ["true"], tmp_path)
    slow, _ = start(runner, ["sleep", "30"], tmp_path, timeout=0.3)
    assert quick.wait().returncode == 0
    result = slow.wait()
    assert result.timed_out and result.signal == signal.SIGTERM
    assert slow.ended_at - began < 5  # 0.3 s plus a loaded machine's slack, not the flood's
    assert not flood.ended.is_set()  # still going: it is the other steps that were not held up
    flood_token.cancel("enough")
    assert flood.wait().cancelled


def test_cancelling_one_step_among_many_stops_that_one_only(
    runner: LocalProcessRunner, tmp_path: Path
) -> None:
    steps = [start(runner, ["sleep", "30"], tmp_path) for _ in range(12)]
    victim_sink, victim_token = steps[5]
    time.sleep(0.2)  # they are running
    victim_token.cancel("not this one")
    result = victim_sink.wait()
    assert result.cancelled and result.signal == signal.SIGTERM
    assert not any(sink.ended.wait(0.3) for sink, _ in steps[:5] + steps[6:])
    for _, token in steps:
        token.cancel("done", force=True)
    assert all(sink.wait().signal in (signal.SIGTERM, signal.SIGKILL) for sink, _ in steps)


def test_a_cancel_before_the_start_starts_nothing(
    runner: LocalProcessRunner, tmp_path: Path
) -> None:
    sink, token = Collect(), CancelToken()
    token.cancel("too late")
    runner.start(spec(["sh", "-c", f"touch {tmp_path}/ran"], tmp_path), token, sink, sink.done)
    result = sink.wait()
    assert result.cancelled and result.returncode is None
    assert not (tmp_path / "ran").exists()


def test_a_spawn_failure_is_a_start_error_and_the_others_run_on(
    runner: LocalProcessRunner, tmp_path: Path
) -> None:
    before, _ = start(runner, ["sleep", "0.3"], tmp_path)
    missing, _ = start(runner, ["no-such-command-anywhere"], tmp_path)
    no_dir, _ = start(runner, ["true"], tmp_path / "absent")
    after, _ = start(runner, ["true"], tmp_path)
    error = missing.wait().start_error
    assert error is not None and error.kind is StartErrorKind.COMMAND_NOT_FOUND
    error = no_dir.wait().start_error
    assert error is not None and error.kind is StartErrorKind.WORKING_DIRECTORY
    assert before.wait().returncode == 0 and after.wait().returncode == 0


def test_closing_the_runner_ends_what_still_runs_and_reports_it(tmp_path: Path) -> None:
    runner = LocalProcessRunner()
    sink, _ = start(runner, sh("echo $$ > pid; exec sleep 30"), tmp_path)
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + WAIT
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pid = int(pid_file.read_text())
    runner.close()
    assert sink.wait().signal == signal.SIGKILL
    assert all_gone([pid], 3.0)
    # And it can be used again.
    again, _ = start(runner, ["true"], tmp_path)
    assert again.wait().returncode == 0
    runner.close()


def test_posix_spawn_starts_in_a_session_of_its_own_and_reports_start_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The posix_spawn path (kept for measuring, see spawn.py) behaves as the Popen one."""
    monkeypatch.chdir(tmp_path)
    runner = LocalProcessRunner(posix_spawn=True)
    try:
        ids, _ = start(runner, ["/bin/sh", "-c", "ps -o sid=,pgid= -p $$"], tmp_path)
        assert ids.wait().returncode == 0
        sid, pgid = map(int, bytes(ids.data).split())
        assert sid == pgid and sid != os.getsid(0)
        missing, _ = start(runner, ["no-such-command-anywhere"], tmp_path)
        error = missing.wait().start_error
        assert error is not None and error.kind is StartErrorKind.COMMAND_NOT_FOUND
        (tmp_path / "x.sh").write_text("#!/bin/sh\n")
        denied, _ = start(runner, ["./x.sh"], tmp_path)
        error = denied.wait().start_error
        assert error is not None and error.kind is StartErrorKind.NOT_EXECUTABLE
        timed, _ = start(runner, sh("sleep 30 & echo $!; wait"), tmp_path, timeout=0.3)
        assert timed.wait().timed_out
        assert all_gone([int(bytes(timed.data))], 3.0)
    finally:
        runner.close()


def test_spawner_uses_posix_spawn_only_in_its_own_directory(tmp_path: Path) -> None:
    spawner = Spawner(use_posix_spawn=True)
    read, write = os.pipe()
    try:
        here = spawner.spawn(["true"], Path.cwd(), dict(os.environ), None, write, write)
        elsewhere = spawner.spawn(["true"], tmp_path, dict(os.environ), None, write, write)
        assert here.popen is None and elsewhere.popen is not None
        assert here.wait() == 0 and elsewhere.wait() == 0
    finally:
        os.close(read)
        os.close(write)
        spawner.close()


def test_the_scheduler_runs_script_steps_on_its_own_thread(
    write: Callable[[str], Path],
) -> None:
    """The scheduler's thread drives the supervising loop itself: no thread per step and no
    supervising thread (starter threads may take the spawns while other steps run)."""
    steps = "".join(f"  - {{id: s{i}, config: {{command: 'true'}}}}\n" for i in range(40))
    path = write(f"name: many\nsteps:\n{steps}")
    threads_seen: set[str] = set()
    before = set(threading.enumerate())  # other tests' runners may have left theirs

    class Threads(Recorder):
        def handle(self, event: object) -> None:
            if isinstance(event, StepStarted):
                threads_seen.update(t.name for t in threading.enumerate() if t not in before)

    result = run(path, Threads(), max_concurrency=8)
    assert result.success and len(result.step_results) == 40
    assert all(r.status is StepStatus.SUCCEEDED for r in result.step_results.values())
    assert "wfrun-supervisor" not in threads_seen
    assert not any(name.startswith("wfrun-step") for name in threads_seen)


def _children_of_thread(native_id: int) -> set[int]:
    path = Path(f"/proc/{os.getpid()}/task/{native_id}/children")
    return {int(pid) for pid in path.read_text().split()}


def _pid_from(sink: Collect) -> int:
    deadline = time.monotonic() + WAIT
    while b"\n" not in sink.data:
        assert time.monotonic() < deadline, "the step never printed its pid"
        time.sleep(0.01)
    return int(bytes(sink.data).split()[0])


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/children").exists(),
    reason="needs /proc's per-thread children lists (Linux)",
)
def test_the_caller_spawns_when_nothing_runs_and_starter_threads_otherwise(
    runner: LocalProcessRunner, tmp_path: Path
) -> None:
    first, first_token = start(runner, sh("echo $$; exec sleep 30"), tmp_path)
    first_pid = _pid_from(first)
    assert first_pid in _children_of_thread(threading.get_native_id())
    second, second_token = start(runner, sh("echo $$; exec sleep 30"), tmp_path)
    second_pid = _pid_from(second)
    assert second_pid not in _children_of_thread(threading.get_native_id())
    starters = [t for t in threading.enumerate() if t.name == "wfrun-starter"]
    assert any(second_pid in _children_of_thread(t.native_id or 0) for t in starters)
    for token in (first_token, second_token):
        token.cancel("done", force=True)
    first.wait(), second.wait()


def test_at_most_eight_starter_threads_however_many_start_at_once(
    runner: LocalProcessRunner, tmp_path: Path
) -> None:
    def starters() -> int:
        return sum(t.name == "wfrun-starter" for t in threading.enumerate())

    others = starters()  # other runners' in this test process (their runs are over)
    steps = [start(runner, ["sleep", "0.5"], tmp_path) for _ in range(40)]
    seen = 0
    while not all(sink.ended.is_set() for sink, _ in steps):
        seen = max(seen, starters() - others)
        time.sleep(0.005)
    assert 1 <= seen <= 8
    assert all(sink.wait().returncode == 0 for sink, _ in steps)
