"""What becomes of a step's bytes on the submitting side: its log, its tail, its lines for the
displays and, for an agent, its captured stdout (the reply).

The log gets every byte, written as it comes; the tail and the capture are bounded; complete
lines go to `on_output`, which must be cheap and bounded itself (the scheduler hands them to a
per-step buffer that keeps the newest lines and counts the rest).
"""

import collections
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from wfrun.executors.base import StepContext
from wfrun.executors.process import (
    STDOUT,
    ProcessResult,
    ProcessRunner,
    ProcessSpec,
    StartError,
    StartingRunner,
)
from wfrun.masking import Masker, StreamMasker
from wfrun.results import StepOutcome, StepStatus

TAIL_LINES = 50
TAIL_BYTES = 64 * 1024  # also the longest line kept whole; longer ones are broken up
CAPTURE_LIMIT = 32 * 1024 * 1024


def open_log(path: Path, append: bool = False) -> int:
    """Create the log exclusively, never through a symbolic link: a file that is already there
    (another run's, or a link planted in a shared log directory) is refused, not overwritten.
    A raw descriptor: the reads already come in large chunks, so a buffer only costs time.

    `append`: a retry's attempt adds to the log its earlier attempts began in this run (or
    creates it, if they printed nothing)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    flags |= os.O_APPEND if append else os.O_EXCL
    return os.open(path, flags, 0o666)


def attempt_header(attempt: int, attempts: int) -> bytes:
    """The line a step that may be retried writes to its log before each attempt's output."""
    return f"─── wfrun: attempt {attempt} of {attempts} ───\n".encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class StepOutputSink:
    """An `OutputSink`: the log file, a bounded tail, the output callback, the capture."""

    def __init__(
        self,
        log_path: Path | None,
        on_output: Callable[[tuple[str, ...]], None] | None = None,
        capture_stdout: bool = False,
        masker: Masker | None = None,
        header: bytes = b"",
        append: bool = False,
    ) -> None:
        # Secrets are masked before anything is kept: the log, the tail, the lines, the capture.
        self._maskers: dict[int, StreamMasker] | None = {} if masker else None
        self._masker = masker
        self._log_path = log_path
        self._append = append
        self._log: int | None = None
        self._on_output = on_output
        self._capture: bytearray | None = bytearray() if capture_stdout else None
        self._truncated = False
        self._partial: dict[int, bytes] = {}
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._tail_size = 0
        self.log_error: str | None = None  # why the log is incomplete, if it is
        if header:
            # Written at once, not at the first byte: an attempt that prints nothing still
            # shows in the log.
            self._write_log(header)

    def feed(self, stream: int, data: bytes) -> None:
        if self._maskers is not None:
            assert self._masker is not None
            masker = self._maskers.get(stream)
            if masker is None:
                masker = self._maskers[stream] = self._masker.stream()
            data = masker.feed(data)
            if not data:
                return
        self._keep_all(stream, data)

    def _keep_all(self, stream: int, data: bytes) -> None:
        self._write_log(data)
        if stream == STDOUT and self._capture is not None:
            self._keep(data)
        self._split_lines(stream, data)

    def finish(self) -> None:
        """The process has ended: output that ended without a newline still counts as a line,
        and the log is closed."""
        for stream, masker in (self._maskers or {}).items():
            rest = masker.flush()
            if rest:
                self._keep_all(stream, rest)
        for stream, rest in list(self._partial.items()):
            if rest:
                self._partial[stream] = b""
                self._emit(rest)
        self.close()

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
                self._log = open_log(self._log_path, self._append)
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
        self.log_error = why
        self._add_to_tail([f"wfrun: {why}"])

    def _keep(self, data: bytes) -> None:
        assert self._capture is not None
        room = CAPTURE_LIMIT - len(self._capture)
        if len(data) > room:
            self._truncated = True
            data = data[:room]
        self._capture += data

    def _split_lines(self, stream: int, data: bytes) -> None:
        buffered = self._partial.get(stream, b"") + data
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


class StepRun(NamedTuple):
    """A step's process after it ended: how it ended, and what the submitting side kept."""

    process: ProcessResult
    output_tail: str = ""
    stdout: bytes = b""  # only with capture_stdout
    stdout_truncated: bool = False
    log_error: str | None = None  # why the log is missing or incomplete

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def timed_out(self) -> bool:
        return self.process.timed_out

    @property
    def cancelled(self) -> bool:
        return self.process.cancelled

    @property
    def start_error(self) -> StartError | None:
        return self.process.start_error

    @property
    def exit_code(self) -> int | None:
        return self.process.exit_code

    @property
    def signal(self) -> int | None:
        return self.process.signal


def step_sink(spec: ProcessSpec, context: StepContext) -> StepOutputSink:
    """The sink of one attempt: its log (appended to after the first attempt, each after a
    header), the display lines, the capture, with the run's secrets masked in all of them."""
    attempts = context.step.max_attempts
    return StepOutputSink(
        context.log_path,
        context.on_output,
        spec.capture_stdout,
        context.masker,
        header=attempt_header(context.attempt, attempts) if attempts > 1 else b"",
        append=context.attempt > 1,
    )


def run_step_process(runner: ProcessRunner, spec: ProcessSpec, context: StepContext) -> StepRun:
    """Run a step's process with `runner`, keeping its log, tail and capture on this side."""
    sink = step_sink(spec, context)
    try:
        result = runner.run(spec, context.cancel, sink)
    finally:
        sink.finish()
    stdout, truncated = sink.captured()
    return StepRun(result, sink.tail(), stdout, truncated, sink.log_error)


def start_step_process(
    runner: StartingRunner,
    spec: ProcessSpec,
    context: StepContext,
    finish: Callable[[StepRun], StepOutcome],
    on_done: Callable[[StepOutcome], None],
) -> None:
    """`run_step_process` without waiting: once the process has ended, `finish` turns the run
    into the step's outcome and `on_done` gets it, on the runner's thread. `on_done` is called
    exactly once, whatever `finish` raises."""
    sink = step_sink(spec, context)

    def ended(result: ProcessResult) -> None:
        outcome = StepOutcome(StepStatus.FAILED, reason="internal error: no outcome")
        try:
            sink.finish()
            stdout, truncated = sink.captured()
            outcome = finish(StepRun(result, sink.tail(), stdout, truncated, sink.log_error))
        except Exception as exc:
            outcome = StepOutcome(StepStatus.FAILED, reason=f"internal error: {exc!r}")
        finally:
            on_done(outcome)

    runner.start(spec, context.cancel, sink, ended)


def outcome_of(
    run: StepRun,
    status: StepStatus,
    reason: str | None,
    command: str,
    output: Any = None,
) -> StepOutcome:
    """The step's outcome: how it ended as decided by the executor, and what the process left."""
    return StepOutcome(
        status,
        reason=reason,
        exit_code=run.exit_code,
        signal=run.signal,
        output_tail=run.output_tail,
        output=output,
        command=command,
        where=run.process.where,
        log_error=run.log_error,
        not_startable=run.start_error is not None,
    )
