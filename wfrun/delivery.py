"""Handing a run's events to the reporters, apart from the control path.

The scheduler's loop must act on a step's end, a timeout, the deadline and Ctrl-C at once, so it
never talks to a display itself: it posts events here and goes on. A delivery thread hands them
to the reporters in order. However slow a display is (a terminal, a pipe nobody reads), the loop
is not held up; what piles up meanwhile is bounded, because:

- step output never enters the event queue as it comes: each running step has an
  `OutputBuffer` that keeps its newest lines (a bounded number, each cut to a bounded length)
  and counts the ones it let go; the delivery thread takes what has gathered every
  OUTPUT_INTERVAL and delivers it as one `StepOutput` (with `dropped`);
- every other event is one of a handful per step.

The log file gets every byte regardless: it is written by the supervising thread, not here.
"""

from __future__ import annotations

import errno
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from wfrun.events import Event, Reporter, StepOutput
from wfrun.output_text import DISPLAY_LINE_CHARS, shorten

OUTPUT_INTERVAL = 0.1  # seconds between two deliveries of a step's output
# After delivering, the thread rests this long before it takes what came meanwhile, so that it
# wakes once for a batch of events, not once per event: each wake-up is a thread hand-off the
# loop pays for (on a chain of quick steps, on the path from one step's end to the next start).
# Short enough that no display looks late.
DELIVERY_REST = 0.01
PENDING_LINES = 500  # lines kept per step between two deliveries; older ones are dropped


class OutputBuffer:
    """A running step's lines that no display has seen yet: the newest PENDING_LINES, each
    cut to DISPLAY_LINE_CHARS, and a count of the lines let go. Written by the step's supervising
    thread, read by the delivery thread."""

    __slots__ = ("_dropped", "_lines", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: deque[str] = deque(maxlen=PENDING_LINES)
        self._dropped = 0

    def push(self, lines: Sequence[str]) -> bool:
        """Add lines; True when the buffer was empty before (the reader may want waking)."""
        if len(lines) > PENDING_LINES:
            skipped = len(lines) - PENDING_LINES
            lines = lines[skipped:]
        else:
            skipped = 0
        cut = [line if len(line) <= DISPLAY_LINE_CHARS else shorten(line) for line in lines]
        with self._lock:
            was_empty = not self._lines and not self._dropped
            overflow = max(0, len(self._lines) + len(cut) - PENDING_LINES)
            self._dropped += skipped + overflow
            self._lines.extend(cut)
        return was_empty

    def take(self) -> tuple[tuple[str, ...], int]:
        """The lines gathered since the last take, and how many were let go in between."""
        with self._lock:
            lines, dropped = tuple(self._lines), self._dropped
            self._lines.clear()
            self._dropped = 0
        return lines, dropped


class EventDelivery:
    """Delivers events to reporters on a thread of its own, in the order they were posted.

    A reporter that raises (or exits, as rich does on a closed stdout) is dropped: the run and
    its report go on. `errors` says which broke and why, except for a closed pipe, which is the
    reader's choice.
    """

    def __init__(
        self,
        reporters: Sequence[Reporter],
        now: Callable[[], float],
        output_interval: float = OUTPUT_INTERVAL,
        rest: float = DELIVERY_REST,
    ) -> None:
        self._reporters = list(reporters)
        self.wants_output = any(getattr(r, "wants_output", False) for r in reporters)
        self._now = now
        self._interval = output_interval
        self._rest = rest
        self._closed = threading.Event()  # what the resting thread waits for, not each post
        self._cond = threading.Condition()
        self._queue: deque[Event] = deque()
        self._buffers: dict[str, OutputBuffer] = {}
        self._output_waiting = False
        self._closing = False
        self._last_at = 0.0
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    # ---- the loop's side -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._deliver_all, name="wfrun-delivery")
        self._thread.daemon = True  # never keeps a dying interpreter alive
        self._thread.start()

    def post(self, event: Event) -> None:
        """Queue an event; never blocks on a display."""
        with self._cond:
            self._queue.append(event)
            self._cond.notify()

    def output_for(self, step_id: str) -> Callable[[tuple[str, ...]], None] | None:
        """The callback a step's supervisor hands its lines to, or None when no reporter
        wants output (then the lines are not even decoded)."""
        if not self.wants_output:
            return None
        buffer = OutputBuffer()
        with self._cond:
            self._buffers[step_id] = buffer

        def push(lines: tuple[str, ...]) -> None:
            if buffer.push(lines):
                with self._cond:
                    self._output_waiting = True
                    self._cond.notify()

        return push

    def end_output(self, step_id: str) -> None:
        """The step ended: what it printed last is delivered before the events that follow."""
        with self._cond:
            buffer = self._buffers.pop(step_id, None)
        if buffer is not None:
            lines, dropped = buffer.take()
            if lines or dropped:
                self.post(StepOutput(step_id, lines, self._now(), dropped))

    def close(self) -> None:
        """Deliver everything posted, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ---- the delivery thread -------------------------------------------------------------

    def _deliver_all(self) -> None:
        next_output = 0.0
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    if self._output_waiting:
                        wait = next_output - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                events = list(self._queue)
                self._queue.clear()
                closing = self._closing and not events
                take_output = self._output_waiting and time.monotonic() >= next_output
                buffers = list(self._buffers.items()) if take_output else []
                if take_output:
                    self._output_waiting = False
            for event in events:
                self._deliver(event)
            if take_output:
                next_output = time.monotonic() + self._interval
            for step_id, buffer in buffers:
                lines, dropped = buffer.take()
                if lines or dropped:
                    self._deliver(StepOutput(step_id, lines, self._now(), dropped))
            if closing:
                return
            if events and self._rest > 0:
                self._closed.wait(self._rest)  # posts meanwhile queue up without a wake-up

    def _deliver(self, event: Event) -> None:
        # Events are stamped by the thread that made them; a time never goes backwards here.
        if event.at < self._last_at:
            event = event._replace(at=self._last_at)
        self._last_at = event.at
        for reporter in list(self._reporters):
            try:
                reporter.handle(event)
            except (Exception, SystemExit) as exc:  # rich exits on a closed stdout; we do not
                self._reporters.remove(reporter)
                if not _closed_pipe(exc):
                    self.errors.append(f"{type(reporter).__name__} stopped: {exc!r}")


def _closed_pipe(exc: BaseException) -> bool:
    """A reader that went away (`| head`, a closed terminal): rich raises SystemExit, a plain
    write BrokenPipeError, or EIO on a terminal whose other side is gone."""
    if isinstance(exc, SystemExit | BrokenPipeError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.EIO)
