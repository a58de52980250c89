"""The live terminal display: rich's Live redraws `live_view` at a bounded rate.

Events only fold into RunState and queue lines (no rendering per event); Live's own refresh
thread prints the queued lines above the frame and builds a new frame `refresh_per_second` times
a second, holding the state's lock just long enough to copy what the frame shows. The frame is
transient: when the run ends it is replaced by the summary, which stays in the scrollback.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from wfrun.events import Event, RunFinished, RunStarted, RunStopping, StepFinished, StepOutput
from wfrun.output_text import printable
from wfrun.reporters.live_view import live_view
from wfrun.reporters.plain import step_line, stopping_line
from wfrun.reporters.state import RunState
from wfrun.reporters.summary_view import status_style, summary_view

LiveOutputMode = Literal["block", "stream"]


SUCCESS_LINES_PER_FRAME = 10  # beyond this, the successes of one frame share a line
OUTPUT_LINES_PER_FRAME = 200  # streamed output lines printed above one frame; the rest dropped


@dataclass(frozen=True, slots=True)
class _Line:
    """A line to print above the frame: a Text, or a finished step's, made into a Text only
    if it is printed (a crowd of successes in one frame shares a line)."""

    text: Text | None = None
    finished: StepFinished | None = None
    success_of: str | None = None  # the step id, when the line only says a step succeeded

    def render(self) -> Text:
        if self.text is not None:
            return self.text
        assert self.finished is not None
        line = Text(f"[{self.finished.at:6.2f}s] ", style="dim")
        result = self.finished.result
        line.append(step_line(result), style=status_style(result))
        return line


class _LineQueue(deque[_Line]):
    """Lines to print above the next frame. Streamed output is bounded per frame: a terminal
    cannot show more, and a step printing without pause must not grow wfrun's memory."""

    def __init__(self) -> None:
        super().__init__()
        self._counts = threading.Lock()  # the delivery and refresh threads both count
        self.output_lines = 0
        self.dropped = 0

    def add_output(self, step_id: str, lines: tuple[str, ...], dropped: int) -> None:
        with self._counts:
            room = max(0, OUTPUT_LINES_PER_FRAME - self.output_lines)
            kept = lines[len(lines) - room :] if len(lines) > room else lines
            self.dropped += dropped + len(lines) - len(kept)
            self.output_lines += len(kept)
        self.extend(_Line(Text(f"{step_id} | {printable(line)}")) for line in kept)

    def take_dropped(self) -> int:
        with self._counts:
            dropped, self.dropped, self.output_lines = self.dropped, 0, 0
        return dropped


def _drain(queue: _LineQueue) -> list[Text]:
    """The queued lines, with a crowd of successes folded into one.

    A 1,000-step run finishes a hundred steps a frame; a line each would cost more to draw than
    the run itself and scroll away unread, while failures keep a line of their own.
    """
    # popleft is atomic, so the delivery thread may append while the refresh thread drains.
    lines: list[_Line] = []
    while queue:
        lines.append(queue.popleft())
    dropped = queue.take_dropped()
    if dropped:
        note = f"… {dropped} lines of output not shown (every line is in the logs)"
        lines.append(_Line(Text(note, style="dim")))
    successes = [line.success_of for line in lines if line.success_of is not None]
    if len(successes) <= SUCCESS_LINES_PER_FRAME:
        return [line.render() for line in lines]
    kept = [line.render() for line in lines if line.success_of is None]
    names = ", ".join(successes[:5]) + (", …" if len(successes) > 5 else "")
    kept.append(Text(f"✔ {len(successes)} steps succeeded: {names}", style="green"))
    return kept


class _BatchingLive(Live):
    """A Live that prints the lines queued since the last frame before drawing the next one.

    Printing above a live display redraws the frame; a print per finished step would cost a
    frame per event (seconds of the scheduler's time for a 1,000-step run), a batch per refresh
    costs one.
    """

    def __init__(self, queue: _LineQueue, **options: Any) -> None:
        super().__init__(**options)
        self._queue = queue

    def refresh(self) -> None:
        with self._lock:
            lines = _drain(self._queue)
            if not lines:
                super().refresh()
            elif self._started and not self._nested and self.console.is_interactive:
                # Printing above the frame draws the frame below the lines (Live's render
                # hook): with the new frame set first, that print is the whole refresh. Printing
                # and then refreshing would draw two frames, the first one stale.
                self._live_render.set_renderable(self.renderable)
                self.console.print(Group(*lines), soft_wrap=True)
            else:
                self.console.print(Group(*lines), soft_wrap=True)
                super().refresh()


class LiveReporter:
    """A live frame while the run goes on; the summary and failure digests when it ends.

    With output_mode "block" each finished step leaves one line above the frame (its output is
    in its log, and a failure's last lines are in the digest at the end); with "stream" every
    output line is printed above the frame as it arrives, prefixed with the step id.
    """

    # The frame shows each running step's last output line, whatever the output mode.
    wants_output = True

    def __init__(
        self,
        console: Console,
        refresh_per_second: float = 4,  # rich's default; a frame of a big run costs ~8 ms
        output_mode: LiveOutputMode = "block",
        now: Callable[[], float] | None = None,
    ) -> None:
        self.console = console
        self.refresh_per_second = refresh_per_second
        self.output_mode = output_mode
        self.state = RunState(now)
        self._live: Live | None = None
        self._queue = _LineQueue()
        self._closed = False

    def handle(self, event: Event) -> None:
        # Lines are queued, not printed: printing above the frame redraws it, so the refresh
        # thread prints the queue once per frame instead.
        self.state.handle(event)
        if isinstance(event, RunStarted):
            self._start()
        elif isinstance(event, StepOutput) and self.output_mode == "stream":
            self._queue.add_output(event.step_id, event.lines, event.dropped)
        elif isinstance(event, RunStopping):
            self._queue.append(_Line(Text(stopping_line(event), style="bold yellow")))
        elif isinstance(event, StepFinished):
            success_of = event.step_id if event.result.success else None
            self._queue.append(_Line(finished=event, success_of=success_of))
        elif isinstance(event, RunFinished):
            self._stop()
            self._print_summary(event)

    @property
    def active(self) -> bool:
        """True while the live frame is on screen."""
        return self._live is not None

    def frame(self) -> RenderableType:
        """The current frame (what Live calls from its refresh thread)."""
        with self.state.lock:
            return live_view(self.state, self.console.height)

    def close(self) -> None:
        """Stop the display, also after an error or Ctrl-C; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        interrupted = self._live is not None and not self.state.finished
        self._stop()
        if interrupted:
            # The transient frame is gone; leave its last state in the scrollback instead.
            self.console.print(self.frame())

    def _start(self) -> None:
        if self._live is not None or self._closed:
            return
        self._live = _BatchingLive(
            self._queue,
            console=self.console,
            get_renderable=self.frame,
            auto_refresh=True,
            refresh_per_second=self.refresh_per_second,
            transient=True,
        )
        self._live.start(refresh=True)

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()
        lines = _drain(self._queue)  # queued after the last frame, or no frame ever started
        if lines:
            self.console.print(Group(*lines), soft_wrap=True)

    def _print_summary(self, event: RunFinished) -> None:
        plan = self.state.plan
        if plan is not None:
            self.console.print(summary_view(event.result, plan))
        for note in event.notes:
            self.console.print(Text(note, style="dim"), soft_wrap=True)
