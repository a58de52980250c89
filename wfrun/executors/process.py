"""Running one step's process: its own process group, drained pipes, log file, timeout, cancel.

One worker thread runs each process and does all the work itself: it waits with `select.poll`
on the output pipe(s), the stdin pipe (when there is input to write) and a pidfd that becomes
readable when the main process exits. The timeout and the SIGKILL escalation are poll timeouts,
so a step costs no extra thread; only a cancellation arms a `threading.Timer` for its escalation.

No child process outlives wfrun: once the main process has exited, whatever is left of its
process group is SIGKILLed. Background daemons started by a step are therefore not supported.
The group is signalled only while the main process is unreaped (alive or a zombie), which keeps
its process group id reserved, so a signal can never reach an unrelated group that reused the id.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import errno
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wfrun.durations import format_duration
from wfrun.executors.base import CancelToken, StepContext
from wfrun.results import StepOutcome, StepStatus

READ_SIZE = 65536
TAIL_LINES = 50
TAIL_BYTES = 64 * 1024  # also the longest line kept whole; longer ones are broken up
CAPTURE_LIMIT = 32 * 1024 * 1024
# After the main process exits and its group is killed, only processes that left the group can
# still hold the pipes open; stop reading once they are quiet this long, or after DRAIN_LIMIT.
DRAIN_IDLE = 0.2
DRAIN_LIMIT = 2.0
# Without a pidfd (not Linux), the exit of the main process is noticed by checking this often.
EXIT_CHECK_INTERVAL = 0.05

_INPUT_MASK = select.POLLIN | select.POLLHUP | select.POLLERR
_OUTPUT_MASK = select.POLLOUT | select.POLLHUP | select.POLLERR


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """What to run and how; `capture_stdout` keeps stdout apart (an agent's reply)."""

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    stdin: bytes | None = None  # None: /dev/null
    timeout: float | None = None  # seconds
    capture_stdout: bool = False


class StartErrorKind(enum.Enum):
    COMMAND_NOT_FOUND = "command_not_found"
    NOT_EXECUTABLE = "not_executable"
    WORKING_DIRECTORY = "working_directory"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class StartError:
    """Why the process could not be started, with a reason fit for the user."""

    kind: StartErrorKind
    reason: str


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a process ended. `returncode` is None when it never started."""

    returncode: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    output_tail: str = ""
    stdout: bytes = b""  # only with capture_stdout
    stdout_truncated: bool = False
    start_error: StartError | None = None

    @property
    def exit_code(self) -> int | None:
        if self.returncode is None or self.returncode < 0:
            return None
        return self.returncode

    @property
    def signal(self) -> int | None:
        if self.returncode is None or self.returncode >= 0:
            return None
        return -self.returncode


def run_process(spec: ProcessSpec, context: StepContext) -> ProcessResult:
    """Run the process to its end; never raises for anything the process or the OS does.

    An exception from `context.on_output` (a bug of the caller) does propagate, after the
    process group has been killed and reaped.
    """
    if context.cancel.cancelled:
        return ProcessResult(cancelled=True)
    sink = _OutputSink(context.log_path, context.on_output, spec.capture_stdout)
    try:
        try:
            proc = _popen(spec)
        except (OSError, ValueError) as exc:
            return ProcessResult(start_error=describe_start_error(exc, spec))
        return _supervise(proc, spec, context, sink)
    finally:
        sink.close()


def _open_log(path: Path) -> int:
    """A raw descriptor: the reads already come in large chunks, so a buffer only costs time."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)


def _popen(spec: ProcessSpec) -> subprocess.Popen[bytes]:
    if not spec.argv or not spec.argv[0]:
        raise FileNotFoundError(errno.ENOENT, "empty command", "")
    return subprocess.Popen(
        list(spec.argv),
        cwd=spec.cwd,
        env=dict(spec.env),
        stdin=subprocess.DEVNULL if spec.stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if spec.capture_stdout else subprocess.STDOUT,
        start_new_session=True,  # own session and process group: killpg reaches grandchildren
        close_fds=True,
    )


def outcome_of(
    result: ProcessResult,
    status: StepStatus,
    reason: str | None,
    command: str,
    output: Any = None,
) -> StepOutcome:
    """The step's outcome: how it ended as decided by the executor, and what the process left."""
    return StepOutcome(
        status,
        reason=reason,
        exit_code=result.exit_code,
        signal=result.signal,
        output_tail=result.output_tail,
        output=output,
        command=command,
    )


def describe_start_error(exc: OSError | ValueError, spec: ProcessSpec) -> StartError:
    """Say which of the command or the working directory is at fault, in the user's terms."""
    command = spec.argv[0] if spec.argv else ""
    if isinstance(exc, ValueError):  # e.g. a NUL character in an argument or a variable
        return StartError(StartErrorKind.OTHER, f"cannot start {command!r}: {exc}")
    if exc.filename is not None and str(exc.filename) == str(spec.cwd):
        if isinstance(exc, FileNotFoundError):
            reason = f"working directory not found: {spec.cwd}"
        elif isinstance(exc, NotADirectoryError):
            reason = f"working directory is not a directory: {spec.cwd}"
        else:
            reason = f"cannot enter working directory {spec.cwd}: {exc.strerror}"
        return StartError(StartErrorKind.WORKING_DIRECTORY, reason)
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return StartError(StartErrorKind.COMMAND_NOT_FOUND, f"command not found: {command!r}")
    if isinstance(exc, PermissionError):
        reason = f"permission denied: {command!r} is not executable"
        return StartError(StartErrorKind.NOT_EXECUTABLE, reason)
    return StartError(StartErrorKind.OTHER, f"cannot start {command!r}: {exc.strerror or exc}")


def _supervise(
    proc: subprocess.Popen[bytes], spec: ProcessSpec, context: StepContext, sink: _OutputSink
) -> ProcessResult:
    group = _ProcessGroup(proc, context.grace_period)
    unregister = context.cancel.on_cancel(group.on_cancel)
    try:
        timed_out = _Pump(proc, spec, group, sink, context.grace_period).run()
    finally:
        unregister()
        group.kill()  # whatever is left; also when the pump failed
        returncode = group.reap()
        _close_pipes(proc)
    stdout, truncated = sink.captured()
    return ProcessResult(
        returncode=returncode,
        timed_out=timed_out,
        cancelled=group.cancelled_while_running,
        output_tail=sink.tail(),
        stdout=stdout,
        stdout_truncated=truncated,
    )


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            # A broken stdin pipe may complain about unwritten data; nothing to do about it.
            with contextlib.suppress(OSError):
                pipe.close()


class _ProcessGroup:
    """Signals a process group from any thread, and only while its leader is unreaped."""

    def __init__(self, proc: subprocess.Popen[bytes], grace_period: float) -> None:
        self._proc = proc
        self._grace_period = grace_period
        self._lock = threading.Lock()
        self._leader_exited = False
        self._reaped = False
        self._timer: threading.Timer | None = None
        self.cancelled_while_running = False

    def signal(self, signum: int) -> None:
        with self._lock:
            if self._reaped:
                return
            # The group may be gone (macOS answers PermissionError for a group of zombies).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def on_cancel(self, force: bool) -> None:
        """The CancelToken's callback; runs in whichever thread cancelled."""
        with self._lock:
            if self._leader_exited or self._reaped:
                return  # it ended on its own; what is left is killed anyway
            self.cancelled_while_running = True
        if force or self._grace_period <= 0:
            self.kill()
            return
        self.signal(signal.SIGTERM)
        self._arm_kill_timer()

    def _arm_kill_timer(self) -> None:
        timer = threading.Timer(self._grace_period, self.kill)
        timer.daemon = True
        with self._lock:
            if self._timer is not None or self._reaped:
                return
            self._timer = timer
        timer.start()

    def leader_exited(self) -> None:
        with self._lock:
            self._leader_exited = True

    def reap(self) -> int:
        """Wait for the leader (which must be dead or dying) and stop signalling its group."""
        with self._lock:
            returncode = self._proc.wait()
            self._reaped = True
            timer = self._timer
        if timer is not None:
            timer.cancel()
        return returncode


class _LeaderWatch:
    """Tells when the main process has exited, without reaping it (its pgid stays reserved)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd: int | None = None
        try:
            self.fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.fd = None  # no pidfd: fall back to checking every EXIT_CHECK_INTERVAL

    def has_exited(self) -> bool:
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Pump:
    """The worker thread's loop: moves bytes, notices the exit, enforces the timeout."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        spec: ProcessSpec,
        group: _ProcessGroup,
        sink: _OutputSink,
        grace_period: float,
    ) -> None:
        self._proc, self._group, self._sink = proc, group, sink
        self._grace_period = grace_period
        self._poller = select.poll()
        self._outputs: dict[int, int] = {}  # fd -> stream number (1 stdout, 2 stderr)
        self._stdin_fd: int | None = None
        self._pending = memoryview(spec.stdin or b"")
        self._watch = _LeaderWatch(proc.pid)
        now = time.monotonic()
        self._deadline = None if spec.timeout is None else now + spec.timeout
        self._kill_at: float | None = None
        self._drain_until: float | None = None
        self._drain_limit = 0.0
        self.timed_out = False

    def run(self) -> bool:
        """Pump until the leader has exited and the pipes are drained; return timed_out."""
        self._register()
        try:
            while self._outputs or self._drain_until is None:
                self._step()
        finally:
            self._watch.close()
            self._close_stdin()
            self._sink.finish()
        return self.timed_out

    def _register(self) -> None:
        assert self._proc.stdout is not None
        self._add_output(self._proc.stdout.fileno(), 1)
        if self._proc.stderr is not None:
            self._add_output(self._proc.stderr.fileno(), 2)
        if self._proc.stdin is not None:
            self._stdin_fd = self._proc.stdin.fileno()
            os.set_blocking(self._stdin_fd, False)
            self._poller.register(self._stdin_fd, _OUTPUT_MASK)
        if self._watch.fd is not None:
            self._poller.register(self._watch.fd, select.POLLIN)

    def _add_output(self, fd: int, stream: int) -> None:
        self._outputs[fd] = stream
        self._poller.register(fd, _INPUT_MASK)

    def _step(self) -> None:
        events = self._poller.poll(self._poll_timeout_ms())
        for fd, _mask in events:
            if fd in self._outputs:
                self._read(fd)
            elif fd == self._stdin_fd:
                self._write_stdin()
            elif fd == self._watch.fd:
                self._on_leader_exit()
        self._check_clock()

    def _poll_timeout_ms(self) -> int | None:
        moments = [t for t in (self._deadline, self._kill_at, self._drain_until) if t is not None]
        wait = min(moments) - time.monotonic() if moments else None
        if self._watch.fd is None and self._drain_until is None:
            wait = EXIT_CHECK_INTERVAL if wait is None else min(wait, EXIT_CHECK_INTERVAL)
        return None if wait is None else max(0, int(wait * 1000) + 1)

    def _read(self, fd: int) -> None:
        data = os.read(fd, READ_SIZE)
        if not data:
            self._poller.unregister(fd)
            del self._outputs[fd]
            return
        self._sink.feed(self._outputs[fd], data)
        if self._drain_until is not None:
            self._drain_until = min(time.monotonic() + DRAIN_IDLE, self._drain_limit)

    def _write_stdin(self) -> None:
        assert self._stdin_fd is not None
        try:
            written = os.write(self._stdin_fd, self._pending[:READ_SIZE])
        except BlockingIOError:
            return
        except OSError:
            written = len(self._pending)  # the reader is gone (EPIPE): drop the rest
        self._pending = self._pending[written:]
        if not self._pending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self._stdin_fd is None:
            return
        self._poller.unregister(self._stdin_fd)
        self._stdin_fd = None
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):  # EPIPE: the process did not read all its input
            self._proc.stdin.close()

    def _on_leader_exit(self) -> None:
        if self._watch.fd is not None:
            self._poller.unregister(self._watch.fd)
        self._group.leader_exited()
        self._group.kill()  # its group goes with it; their pipe ends close and EOF comes
        self._close_stdin()
        now = time.monotonic()
        self._drain_limit = now + DRAIN_LIMIT
        self._drain_until = now + DRAIN_IDLE
        self._deadline = self._kill_at = None

    def _check_clock(self) -> None:
        now = time.monotonic()
        if self._drain_until is not None:
            if now >= self._drain_until:
                self._outputs.clear()  # someone outside the group holds the pipe: stop here
            return
        if self._watch.fd is None and self._watch.has_exited():
            self._on_leader_exit()
            return
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self.timed_out = True
            self._group.signal(signal.SIGTERM)
            self._kill_at = now + self._grace_period
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None
            self._group.kill()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _OutputSink:
    """Where the bytes go: the log file, a bounded tail, the output callback, the capture."""

    def __init__(
        self,
        log_path: Path | None,
        on_output: Callable[[tuple[str, ...]], None] | None,
        capture_stdout: bool,
    ) -> None:
        self._log_path = log_path
        self._log: int | None = None
        self._on_output = on_output
        self._capture: bytearray | None = bytearray() if capture_stdout else None
        self._truncated = False
        self._partial: dict[int, bytes] = {1: b"", 2: b""}
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._tail_size = 0

    def feed(self, stream: int, data: bytes) -> None:
        self._write_log(data)
        if stream == 1 and self._capture is not None:
            self._keep(data)
        self._split_lines(stream, data)

    def finish(self) -> None:
        """Output that ended without a newline still counts as a line."""
        for stream, rest in self._partial.items():
            if rest:
                self._partial[stream] = b""
                self._emit(rest)

    def close(self) -> None:
        if self._log is not None:
            os.close(self._log)
            self._log = None

    def tail(self) -> str:
        return "\n".join(self._tail)

    def captured(self) -> tuple[bytes, bool]:
        return bytes(self._capture or b""), self._truncated

    def _write_log(self, data: bytes) -> None:
        if self._log is None:
            if self._log_path is None:
                return
            # Created at the first byte, not before the step starts: most steps of a big run
            # print nothing, and on a slow disk creating a file costs as much as starting a
            # process. A step that prints nothing has no log file.
            try:
                self._log = _open_log(self._log_path)
            except OSError as exc:
                self._give_up_log(f"cannot open the log file {self._log_path}: {exc.strerror}")
                return
        try:
            _write_all(self._log, data)
        except OSError as exc:
            # A full disk must not stop the draining (the step would block on a full pipe).
            self.close()
            self._give_up_log(f"cannot write the log file any more: {exc.strerror}")

    def _give_up_log(self, why: str) -> None:
        self._log_path = None
        self._add_to_tail([f"wfrun: {why}"])

    def _keep(self, data: bytes) -> None:
        assert self._capture is not None
        room = CAPTURE_LIMIT - len(self._capture)
        if len(data) > room:
            self._truncated = True
            data = data[:room]
        self._capture += data

    def _split_lines(self, stream: int, data: bytes) -> None:
        buffered = self._partial[stream] + data
        cut = buffered.rfind(b"\n")
        if cut < 0:
            if len(buffered) > TAIL_BYTES:  # an endless line: hand it on in pieces
                self._partial[stream] = b""
                self._emit(buffered)
            else:
                self._partial[stream] = buffered
            return
        self._partial[stream] = buffered[cut + 1 :]
        self._emit(buffered[:cut])

    def _emit(self, complete: bytes) -> None:
        """`complete` holds whole lines without the final newline."""
        if self._on_output is None:
            # Only the tail needs them: decode no more than the last lines.
            complete = b"\n".join(complete.rsplit(b"\n", TAIL_LINES)[-TAIL_LINES:])
        lines = [line.rstrip("\r") for line in complete.decode("utf-8", "replace").split("\n")]
        self._add_to_tail(lines[-TAIL_LINES:])
        if self._on_output is not None:
            self._on_output(tuple(lines))

    def _add_to_tail(self, lines: list[str]) -> None:
        for line in lines:
            if len(line) > TAIL_BYTES:
                line = line[: TAIL_BYTES - 1] + "…"
            if len(self._tail) == TAIL_LINES:
                self._tail_size -= len(self._tail[0])
            self._tail.append(line)
            self._tail_size += len(line)
        while self._tail_size > TAIL_BYTES and len(self._tail) > 1:
            self._tail_size -= len(self._tail.popleft())


def process_status(
    result: ProcessResult, cancel: CancelToken, timeout: float | None
) -> tuple[StepStatus, str | None]:
    """The step status and reason a finished process stands for (start errors excluded)."""
    if result.timed_out:
        return StepStatus.TIMED_OUT, f"timed out after {describe_timeout(timeout)}"
    if result.cancelled or (result.returncode is None and cancel.cancelled):
        return cancel.status, cancel.reason
    if result.start_error is not None:
        return StepStatus.FAILED, result.start_error.reason
    if result.signal is not None:
        return StepStatus.FAILED, f"killed by signal {signal_name(result.signal)}"
    if result.exit_code:
        return StepStatus.FAILED, f"exited with code {result.exit_code}"
    return StepStatus.SUCCEEDED, None


def describe_timeout(seconds: float | None) -> str:
    """`2s` for whole seconds under a minute, else the summary form (`500ms`, `10m00s`)."""
    if seconds is None:
        return "its timeout"
    if 1 <= seconds < 60 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return format_duration(seconds)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
