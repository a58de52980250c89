"""The seam between a step and the process that carries it out (Ninja's `CommandRunner`).

A `ProcessRunner` takes a picklable `ProcessSpec`, a `CancelToken` and an `OutputSink`, runs the
process to its end under full supervision (its own session and process group, drained pipes, the
step's timeout, SIGTERM then SIGKILL, nothing of it left behind) and returns a `ProcessResult`:
how the process ended, and nothing else. The bytes it printed go to the sink as they come; the
caller turns them into a log, a tail, an agent's reply (`wfrun.executors.step_output`).

The local runner (`wfrun.executors.local_runner`) supervises on this machine; another runner can
supervise elsewhere (a Dask worker) and ship the bytes back. Script and agent executors are
given a runner and never know which one they have. A runner that can also `start` a process
and call back when it ends (`StartingRunner`) lets the scheduler run steps without a thread each.
"""

import enum
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from wfrun.durations import format_duration
from wfrun.executors.base import DEFAULT_GRACE_PERIOD, CancelToken
from wfrun.results import StepStatus

STDOUT = 1
STDERR = 2


class ProcessSpec(NamedTuple):
    """What to run and how. Plain data, so it can be shipped to another machine.

    Without `capture_stdout`, stdout and stderr share one pipe and arrive as STDOUT, in the order
    they were written; with it (an agent, whose stdout is its reply) they arrive apart.
    """

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    stdin: bytes | None = None  # None: /dev/null
    timeout: float | None = None  # seconds
    capture_stdout: bool = False
    grace_period: float = DEFAULT_GRACE_PERIOD  # between SIGTERM and SIGKILL


class StartErrorKind(enum.Enum):
    COMMAND_NOT_FOUND = "command_not_found"
    NOT_EXECUTABLE = "not_executable"
    WORKING_DIRECTORY = "working_directory"
    OTHER = "other"


class StartError(NamedTuple):
    """Why the process could not be started, with a reason fit for the user."""

    kind: StartErrorKind
    reason: str


class ProcessResult(NamedTuple):
    """How a process ended. `returncode` is None when it never started."""

    returncode: int | None = None
    timed_out: bool = False
    cancelled: bool = False  # stopped through the CancelToken while it ran
    start_error: StartError | None = None
    failure: str | None = None  # the runner itself failed (a worker died): the reason
    where: str | None = None  # where it ran, when not on this machine (a worker's address)

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


class OutputSink(Protocol):
    """Receives a running process's bytes, in order, per stream (STDOUT or STDERR)."""

    def feed(self, stream: int, data: bytes) -> None: ...


class ProcessRunner(Protocol):
    """Runs one process to its end; never raises for anything the process or the OS does."""

    def run(self, spec: ProcessSpec, cancel: CancelToken, sink: OutputSink) -> ProcessResult: ...

    def close(self) -> None:
        """The run is over: end whatever this runner still supervises or keeps open."""
        ...


ProcessEnd = Callable[[ProcessResult], None]


class StartingRunner(ProcessRunner, Protocol):
    """A runner that can also start a process and return at once (the local runner): the
    scheduler then needs no thread per running step."""

    def start(
        self, spec: ProcessSpec, cancel: CancelToken, sink: OutputSink, on_done: ProcessEnd
    ) -> None:
        """Start the process; `on_done(result)` is called, on the runner's own thread, when it
        has ended (at once if it could not start). `sink` is fed on that thread too."""
        ...


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


def process_status(
    result: ProcessResult, cancel: CancelToken, timeout: float | None
) -> tuple[StepStatus, str | None]:
    """The step status and reason a finished process stands for."""
    if result.timed_out:
        return StepStatus.TIMED_OUT, f"timed out after {describe_timeout(timeout)}"
    if result.cancelled or (result.returncode is None and cancel.cancelled):
        return cancel.status, cancel.reason
    if result.failure is not None:
        return StepStatus.FAILED, result.failure
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
