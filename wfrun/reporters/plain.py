"""Plain reporters for CI logs and pipes: one line per fact, no escape codes unless asked for."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Literal, TextIO

from rich.console import Console, RenderableType
from rich.text import Text

from wfrun.durations import format_duration
from wfrun.events import (
    Event,
    RunFinished,
    RunStarted,
    RunStopping,
    StepFinished,
    StepOutput,
    StepRetrying,
    StepStarted,
    StepWaiting,
    WaitKind,
)
from wfrun.output_text import printable, shorten, shown
from wfrun.planner import Plan
from wfrun.reporters.plan_view import counted, format_units, mode_text
from wfrun.reporters.summary_view import (
    status_glyph,
    status_style,
    status_words,
    summary_view,
)
from wfrun.results import StepResult

if TYPE_CHECKING:
    from wfrun.reporters.state import RunState

OutputMode = Literal["block", "stream"]
DEFAULT_WIDTH = 100
WHOLE_LOG_LINES = 200  # a log shorter than this is printed whole instead of its tail
WHOLE_LOG_BYTES = 256 * 1024  # and no larger than this: a bigger one shows its tail
INDENT = "    "

# A global-cap wait is the normal state of most steps of a big run; logging it would double the
# log's length without telling anyone anything.
_LOGGED_WAITS = (WaitKind.POOL, WaitKind.RUNS_ALONE)


def make_console(stream: TextIO, *, color: bool, width: int = DEFAULT_WIDTH) -> Console:
    """A Console that writes `stream` as plain text, or with colours when `color` is True.

    The caller decides `color` (NO_COLOR, TERM=dumb, --no-color...), so nothing here looks at
    the environment: with color False there is no colour system and no terminal, hence no
    escape code at all.
    """
    return Console(
        file=stream,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
    )


def step_line(result: StepResult) -> str:
    """`✘ test  failed in 0.4s: exited with code 1`."""
    line = f"{status_glyph(result)} {shown(result.step_id)}  {status_words(result)}"
    if result.reused:
        line += " (reused from the earlier run)"
    if result.duration is not None:
        line += f" in {format_duration(result.duration)}"
    if result.attempts > 1:
        line += f" after {result.attempts} attempts"
    if result.worker is not None:
        line += f" on {shown(result.worker)}"
    if result.reason and not result.success:
        line += f": {shown(result.reason)}"
    return line


def retry_line(event: StepRetrying) -> str:
    """`↻ fetch  attempt 1/3 failed: exited with code 1 · retry 2/3 in 1.1s`."""
    failed = event.failed
    words = failed.status.value.replace("_", " ")
    why = f": {shown(failed.reason)}" if failed.reason else ""
    return (
        f"↻ {shown(event.step_id)}  attempt {event.attempt - 1}/{event.max_attempts} {words}"
        f"{why} · {event.reason}"
    )


def stopping_line(event: RunStopping) -> str:
    """What the run does now that it was told to stop, and what the user can still do."""
    count = len(event.running)
    steps = f"{count} running step{'s' if count != 1 else ''}"
    if not count:
        return f"■ stopping ({shown(event.reason)}): starting nothing more"
    if event.forced or event.grace_period <= 0:
        return f"■ stopping ({event.reason}): killing {steps}"
    seconds = event.grace_period
    grace = f"{seconds:g}s" if seconds < 60 else format_duration(seconds)
    return (
        f"■ stopping ({event.reason}): waiting up to {grace} for {steps} to end "
        f"(Ctrl-C again to kill {'it' if count == 1 else 'them'})"
    )


def read_output(result: StepResult, max_lines: int = WHOLE_LOG_LINES) -> tuple[list[str], bool]:
    """A finished step's output as it should be shown: the whole log if it is short (in lines
    and in bytes), else the tail; and whether the lines shown are only the tail of a longer log.
    Every line is cut for display, however long it is in the log."""
    if result.log_file:
        lines = _short_log(result.log_file, max_lines)
        if lines is not None:
            return [shorten(printable(line)) for line in lines], False
    tail = [shorten(printable(line)) for line in result.output_tail.splitlines()]
    return tail, bool(result.log_file)


def _short_log(path: str, max_lines: int) -> list[str] | None:
    """The log's lines if it is small enough to show whole, else None."""
    try:
        with open(path, "rb") as log:
            if os.fstat(log.fileno()).st_size > WHOLE_LOG_BYTES:
                return None
            data = log.read(WHOLE_LOG_BYTES + 1)
    except OSError:
        return None  # the log may be gone or was never written (dry run); the tail still tells
    lines = data.decode("utf-8", "replace").splitlines()
    return lines if len(lines) < max_lines else None


def reply_lines(result: StepResult) -> list[str]:
    """An agent step's reply as lines to show (the extracted reply, not its raw JSON)."""
    reply = result.output
    text = reply if isinstance(reply, str) else json.dumps(reply, indent=2, ensure_ascii=False)
    lines = text.splitlines()
    if len(lines) > WHOLE_LOG_LINES:
        lines = [*lines[: WHOLE_LOG_LINES - 1], f"… {len(lines) - WHOLE_LOG_LINES + 1} more lines"]
    return [shorten(printable(line)) for line in lines]


def print_block(console: Console, renderable: RenderableType) -> None:
    """Print a renderable without the trailing spaces rich pads table lines with, which only
    add noise (and diff churn) to a CI log."""
    with console.capture() as capture:
        console.print(renderable)
    lines = capture.get().splitlines()
    console.file.write("".join(line.rstrip() + "\n" for line in lines))
    console.file.flush()


class PlainReporter:
    """One line per start and finish with a time stamp, each step's output, the summary."""

    wants_output: bool  # True in "stream" mode only: blocks are read from the result

    def __init__(
        self,
        stream: TextIO,
        output_mode: OutputMode = "block",
        show_steps: bool = True,
        color: bool = False,
        width: int = DEFAULT_WIDTH,
    ) -> None:
        self.output_mode = output_mode
        self.show_steps = show_steps
        self.wants_output = show_steps and output_mode == "stream"
        from wfrun.reporters.state import RunState  # not for the quiet mode, which folds nothing

        self.state: RunState = RunState()
        self._stream = stream
        self._console = make_console(stream, color=color, width=width)
        self._closed = False

    def handle(self, event: Event) -> None:
        self.state.handle(event)
        if isinstance(event, RunFinished):
            self._run_finished(event)
        elif not self.show_steps:
            return
        elif isinstance(event, RunStarted):
            self._run_started(event)
        elif isinstance(event, StepStarted):
            self._step_started(event)
        elif isinstance(event, StepRetrying):
            self._print(event.at, retry_line(event), "yellow")
        elif isinstance(event, StepWaiting):
            self._step_waiting(event)
        elif isinstance(event, StepOutput):
            self._step_output(event)
        elif isinstance(event, StepFinished):
            self._step_finished(event)
        elif isinstance(event, RunStopping):
            self._print(event.at, stopping_line(event), "bold yellow")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.flush()

    # -- lines -------------------------------------------------------------------------------

    def _print(self, at: float, text: str | Text, style: str = "") -> None:
        line = Text(f"[{at:6.2f}s] ", style="dim")
        line.append(text if isinstance(text, Text) else Text(text, style=style))
        self._console.print(line, soft_wrap=True)

    def _run_started(self, event: RunStarted) -> None:
        steps = counted(len(event.workflow.steps), "step")
        text = f"▶ running {shown(event.workflow.name)}: {steps}, {mode_text(event.plan)}"
        text += f" · run {event.run_id}"
        if event.run_dir:
            text += f" · logs in {event.run_dir}"
        self._print(event.at, text, "bold")

    def _step_started(self, event: StepStarted) -> None:
        where = f"group {event.group}"
        if event.resources:
            where += f" · {format_units(event.resources)}"
        if event.attempt > 1:
            where += f" · attempt {event.attempt}"
        self._print(event.at, f"▶ {shown(event.step_id)}  [{where}]", "cyan")

    def _step_waiting(self, event: StepWaiting) -> None:
        if event.reason.kind in _LOGGED_WAITS:
            reason = self.state.wait_text(event.step_id) or str(event.reason)
            self._print(event.at, f"⋯ {shown(event.step_id)}  waiting: {shown(reason)}", "yellow")

    def _step_output(self, event: StepOutput) -> None:
        if self.output_mode != "stream":
            return
        if event.dropped:
            note = f"{event.step_id} | … {event.dropped} lines not shown (every line is in the log)"
            self._print(event.at, note, "dim")
        for line in event.lines:
            self._print(event.at, f"{event.step_id} | {printable(line)}")

    def _step_finished(self, event: StepFinished) -> None:
        result = event.result
        self._print(event.at, step_line(result), status_style(result))
        if self.output_mode == "block" and result.start_time is not None:
            self._output_block(result)

    def _output_block(self, result: StepResult) -> None:
        if result.output is not None:
            lines, partial = reply_lines(result), False
        else:
            lines, partial = read_output(result)
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            return
        if partial:
            last = "the last line" if len(lines) == 1 else f"last {len(lines)} lines"
            note = f"{INDENT}… {last}; full log: {result.log_file}"
            self._console.print(Text(note, style="dim"), soft_wrap=True)
        for line in lines:
            self._console.print(Text(INDENT + line), soft_wrap=True)

    def _run_finished(self, event: RunFinished) -> None:
        self._console.print()
        if self.state.plan is not None:
            print_block(self._console, summary_view(event.result, self.state.plan))
        for note in event.notes:
            self._console.print(Text(note, style="dim"), soft_wrap=True)


class QuietReporter:
    """Nothing while the run goes on; at the end the summary (without per-group tables) and a
    digest of each failure."""

    wants_output = False

    def __init__(self, stream: TextIO, color: bool = False, width: int = DEFAULT_WIDTH) -> None:
        self._plan: Plan | None = None
        self._stream = stream
        self._console = make_console(stream, color=color, width=width)
        self._closed = False

    def handle(self, event: Event) -> None:
        # Only the plan and the result matter here: folding every event into a RunState would
        # cost the scheduler's thread time for a display that never shows.
        if isinstance(event, RunStarted):
            self._plan = event.plan
        elif isinstance(event, RunFinished) and self._plan is not None:
            print_block(self._console, summary_view(event.result, self._plan, tables=False))
            for note in event.notes:
                self._console.print(Text(note), soft_wrap=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.flush()
