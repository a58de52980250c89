"""The executor protocol and what the scheduler hands an executor for one step."""

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple, Protocol

from wfrun.masking import Masker
from wfrun.model import Step, Workflow
from wfrun.results import StepOutcome, StepStatus

DEFAULT_GRACE_PERIOD = 5.0


class CancelToken:
    """Lets the scheduler's thread stop a step that runs in a worker thread.

    The executor registers a callback once its process exists; `cancel` calls it at once (or
    immediately on registration if the cancel came first), so no worker ever polls.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[bool], None]] = []
        self.reason: str | None = None
        self.status: StepStatus = StepStatus.CANCELLED
        self.force = False

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def cancel(
        self, reason: str, status: StepStatus = StepStatus.CANCELLED, force: bool = False
    ) -> None:
        """Ask the step to stop: SIGTERM then SIGKILL after the grace period, or SIGKILL now."""
        with self._lock:
            escalate = force and not self.force
            first = self.reason is None
            if first:
                self.reason, self.status = reason, status
            self.force = self.force or force
            callbacks = list(self._callbacks) if (first or escalate) else []
        for callback in callbacks:
            callback(self.force)

    def on_cancel(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        """Register `callback(force)`; returns a function that unregisters it."""
        with self._lock:
            self._callbacks.append(callback)
            already, force = self.cancelled, self.force
        if already:
            callback(force)

        def unregister() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unregister


class StepContext(NamedTuple):
    """Everything an executor needs for one step; what varies is passed in, never read globally."""

    run_id: str
    workflow: Workflow
    step: Step
    env: Mapping[str, str]  # the base environment (normally os.environ, passed in by the caller)
    cancel: CancelToken
    log_path: Path | None = None  # None: keep no log file
    on_output: Callable[[tuple[str, ...]], None] | None = None  # complete lines, worker thread
    grace_period: float = DEFAULT_GRACE_PERIOD
    run_dir: Path | None = None  # WFRUN_RUN_DIR; the outputs files are made under it
    masker: Masker | None = None  # secrets to write as *** in everything kept of the output
    attempt: int = 1  # which attempt this is (SPEC §11.1); later ones append to the same log


class Executor(Protocol):
    """Runs one step to its end and reports how it went; never raises for a failing step.

    An executor may also have `close()`, called once when the run is over (after every step
    ended, also after an error): the place to end whatever it still supervises; and
    `start(context, on_done) -> bool`, which starts a step and returns at once
    (`start_executor`).
    """

    def execute(self, context: StepContext) -> StepOutcome: ...


def start_executor(
    executor: object, context: StepContext, on_done: Callable[[StepOutcome], None]
) -> bool:
    """Start the step without waiting, if the executor has `start(context, on_done) -> bool`
    and accepts this step: `on_done` then gets the outcome once, from whichever thread ends the
    step. False: the caller must run `execute(context)` itself."""
    start = getattr(executor, "start", None)
    return start is not None and bool(start(context, on_done))


def close_executor(executor: object) -> None:
    """Call the executor's `close()`, if it has one."""
    close = getattr(executor, "close", None)
    if close is not None:
        close()
