"""The loop that drives the dispatcher: starts steps on a thread pool, collects their ends,
enforces the workflow deadline, handles interrupts, and reports every fact as an event.

Workers never touch scheduling state: they run one step and post its outcome on the loop's inbox,
which carries control only (step ends and interrupts), so the dispatcher needs no locks and
nothing a step prints can delay a decision. Output goes to a bounded per-step buffer and events
to a delivery thread (`wfrun.delivery`); the loop never waits on a display. The workflow deadline
is a clock check in every turn of the loop.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from wfrun.delivery import EventDelivery
from wfrun.dispatch import Completion, Dispatcher, Skip
from wfrun.durations import format_duration
from wfrun.events import (
    Event,
    Reporter,
    RunFinished,
    RunStarted,
    RunStopping,
    StepFinished,
    StepReady,
    StepStarted,
    StepWaiting,
)
from wfrun.executors.base import (
    DEFAULT_GRACE_PERIOD,
    CancelToken,
    Executor,
    StepContext,
    close_executor,
)
from wfrun.planner import Plan
from wfrun.results import RunResult, RunStatus, StepOutcome, StepResult, StepStatus
from wfrun.stats import parallel_stats

FAILED_STATUSES = (StepStatus.FAILED, StepStatus.TIMED_OUT)


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What the scheduler needs besides the plan; everything that varies is passed in."""

    run_id: str
    env: Mapping[str, str]
    run_dir: Path | None = None  # an existing directory for the step logs; None keeps no logs
    keep_going: bool = False
    grace_period: float = DEFAULT_GRACE_PERIOD
    started_at: str | None = None


@dataclass(frozen=True, slots=True)
class _Done:
    step_id: str
    outcome: StepOutcome
    at: float


@dataclass(frozen=True, slots=True)
class _Interrupt:
    status: RunStatus  # CANCELLED for SIGINT, also for SIGTERM (exit code tells them apart)


class Scheduler:
    """Runs one planned workflow once. `run` returns the result; it never raises for a failing
    step, and it leaves no process of any step behind on any exit path."""

    def __init__(
        self,
        plan: Plan,
        executor: Executor,
        reporters: Sequence[Reporter],
        settings: RunSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._plan = plan
        self._executor = executor
        self._settings = settings
        self._clock = clock
        self._t0 = 0.0
        self._inbox: queue.SimpleQueue[_Done | _Interrupt] = queue.SimpleQueue()
        self._delivery = EventDelivery(reporters, self.now)
        self._dispatcher = Dispatcher(plan, keep_going=settings.keep_going)
        self._tokens: dict[str, CancelToken] = {}
        self._results: dict[str, StepResult] = {}
        self._ready_at: dict[str, float] = {}
        self._started_at: dict[str, float] = {}
        self._status: RunStatus | None = None  # set when the run is cut short
        self._error: str | None = None
        self._interrupts = 0
        self._run_dir_text = None if settings.run_dir is None else str(settings.run_dir)

    @property
    def reporter_errors(self) -> list[str]:
        """Reporters dropped because they raised (a closed pipe is not one)."""
        return self._delivery.errors

    # ---- public --------------------------------------------------------------------------------

    def interrupt(self, status: RunStatus = RunStatus.CANCELLED) -> None:
        """Ask the run to stop; safe from a signal handler or another thread. A second call kills
        the running steps at once instead of waiting for their grace period."""
        self._inbox.put(_Interrupt(status))

    def now(self) -> float:
        """Seconds since the run started."""
        return self._clock() - self._t0

    def run(self) -> RunResult:
        self._t0 = self._clock()
        self._delivery.start()
        run_dir = self._settings.run_dir  # created (exclusively) by the runner
        self._emit(
            RunStarted(
                self._plan.workflow,
                self._plan,
                self._settings.run_id,
                str(run_dir) if run_dir else None,
                0.0,
            )
        )
        workers = max(1, min(self._plan.max_concurrency, len(self._plan.steps)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wfrun-step")
        try:
            self._mark_ready(self._dispatcher.initial_ready(), 0.0)
            self._loop(pool)
        finally:
            # Whatever happened (KeyboardInterrupt, a bug), no step outlives the run.
            for token in self._tokens.values():
                token.cancel("run aborted", force=True)
            pool.shutdown(wait=True)
            close_executor(self._executor)
            for message in _drain(self._inbox):  # ends posted after the loop stopped
                if isinstance(message, _Done) and message.step_id in self._tokens:
                    self._complete(message)
            for skip in self._dispatcher.abandon():
                self._finish_unstarted(skip)
            result = self._result()
            self._emit(RunFinished(result, result.execution_time_s))
            self._delivery.close()
        return result

    # ---- the loop ------------------------------------------------------------------------------

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        timeout = self._plan.workflow.timeout
        deadline = None if timeout is None else self._t0 + timeout
        while self._dispatcher.is_active():
            if deadline is not None and self._clock() >= deadline:
                self._expire(timeout or 0.0)
                deadline = None
            for step_id in self._dispatcher.startable():
                self._start(pool, step_id)
            now = self.now()
            for step_id, reason in self._dispatcher.take_wait_changes():
                self._emit(StepWaiting(step_id, reason, now))
            if not self._dispatcher.is_active():
                break
            wait = None if deadline is None else max(0.0, deadline - self._clock())
            try:
                message = self._inbox.get(timeout=wait)
            except queue.Empty:
                continue  # the deadline: checked at the top of the loop
            self._handle(message)
            # Take everything already waiting before planning again: one scan per batch.
            for message in _drain(self._inbox):
                self._handle(message)

    def _handle(self, message: _Done | _Interrupt) -> None:
        if isinstance(message, _Done):
            self._complete(message)
        else:
            self._on_interrupt(message)

    def _start(self, pool: ThreadPoolExecutor, step_id: str) -> None:
        step = self._plan.step(step_id)
        log_path = self._log_path(step_id)
        token = self._tokens[step_id] = CancelToken()
        context = StepContext(
            run_id=self._settings.run_id,
            workflow=self._plan.workflow,
            step=step,
            env=self._settings.env,
            cancel=token,
            log_path=log_path,
            on_output=self._delivery.output_for(step_id),
            grace_period=self._settings.grace_period,
        )
        at = self._started_at[step_id] = self.now()
        self._emit(
            StepStarted(
                step_id,
                self._plan.group_of[step_id],
                step.parallel.resources,
                at,
                str(log_path) if log_path else None,
            )
        )
        pool.submit(self._work, context)

    def _work(self, context: StepContext) -> None:
        """Runs in a worker thread: execute the step, post how it ended. The post is in a
        `finally`: whatever the executor raises (SystemExit included), the loop hears of the
        end, the step gives its units back, and the run cannot hang on a lost wake-up."""
        outcome = StepOutcome(StepStatus.FAILED, reason="internal error: the executor vanished")
        try:
            outcome = self._executor.execute(context)
        except BaseException as exc:  # an executor bug must not hang the run
            outcome = StepOutcome(StepStatus.FAILED, reason=f"internal error: {exc!r}")
            if not isinstance(exc, Exception | SystemExit):
                raise  # KeyboardInterrupt and the like are not ours to swallow
        finally:
            self._inbox.put(_Done(context.step.id, outcome, self.now()))

    def _complete(self, done: _Done) -> None:
        step = self._plan.step(done.step_id)
        token = self._tokens.pop(done.step_id)
        outcome = done.outcome
        if token.cancelled and outcome.status is StepStatus.CANCELLED:
            # The executor saw a cancel: the token knows why (a timeout of the whole run, a
            # failing sibling, an interrupt).
            outcome = _with_status(outcome, token.status, token.reason)
        allowed = outcome.status in FAILED_STATUSES and step.continue_on_error
        self._results[step.id] = self._step_result(step.id, outcome, done.at, allowed)
        # A step the run itself stopped (deadline, interrupt) did not fail on its own: its
        # dependents are cancelled with the run, not skipped as if it had failed.
        stopped_by_run = token.cancelled and self._status is not None
        completion = Completion.CANCELLED if stopped_by_run else _completion(outcome, allowed)
        effects = self._dispatcher.finish(
            step.id, completion, timed_out=outcome.status is StepStatus.TIMED_OUT
        )
        self._delivery.end_output(step.id)
        self._emit(StepFinished(step.id, self._results[step.id], self.now()))
        for cancel in effects.cancel:
            self._tokens[cancel.step_id].cancel(cancel.reason, cancel.status)
        for skip in effects.skipped:
            self._finish_unstarted(skip)
        self._mark_ready(effects.ready, done.at)

    def _mark_ready(self, step_ids: list[str], at: float) -> None:
        for step_id in step_ids:
            self._ready_at[step_id] = at
            self._emit(StepReady(step_id, at))

    def _expire(self, timeout: float) -> None:
        """The workflow's deadline passed: stop everything, like a timeout of each step."""
        reason = f"workflow timed out after {format_duration(timeout)}"
        if self._status is None:
            self._status, self._error = RunStatus.TIMED_OUT, reason
        self._dispatcher.stop(f"not started: {reason}", StepStatus.CANCELLED)
        self._announce_stop(reason, forced=False)
        for token in self._tokens.values():
            token.cancel(reason, StepStatus.TIMED_OUT)

    def _on_interrupt(self, message: _Interrupt) -> None:
        self._interrupts += 1
        force = self._interrupts > 1
        reason = "run interrupted" if not force else "run interrupted (killed)"
        if self._status is None:
            self._status, self._error = message.status, "interrupted"
        self._dispatcher.stop("not started: run interrupted", StepStatus.CANCELLED)
        self._announce_stop(reason, forced=force)
        for token in self._tokens.values():
            token.cancel(reason, StepStatus.CANCELLED, force=force)

    def _announce_stop(self, reason: str, forced: bool) -> None:
        running = tuple(self._tokens)
        grace = self._settings.grace_period
        self._emit(RunStopping(reason, running, grace, forced, self.now()))

    # ---- results -------------------------------------------------------------------------------

    def _step_result(
        self, step_id: str, outcome: StepOutcome, end: float, allowed: bool
    ) -> StepResult:
        return StepResult(
            step_id=step_id,
            status=outcome.status,
            parallel_group=self._plan.group_of[step_id],
            reason=outcome.reason,
            allowed_failure=allowed,
            ready_time=self._ready_at.get(step_id),
            start_time=self._started_at[step_id],
            end_time=max(end, self._started_at[step_id]),
            wait=self._dispatcher.waited_for(step_id),
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            log_file=self._existing_log(step_id),
            output_tail=outcome.output_tail,
            output=outcome.output,
            command=outcome.command,
            log_error=outcome.log_error,
            worker=outcome.where,
        )

    def _finish_unstarted(self, skip: Skip) -> None:
        result = StepResult(
            step_id=skip.step_id,
            status=skip.status,
            parallel_group=self._plan.group_of[skip.step_id],
            reason=skip.reason,
            ready_time=self._ready_at.get(skip.step_id),
            wait=self._dispatcher.waited_for(skip.step_id),
        )
        self._results[skip.step_id] = result
        self._emit(StepFinished(skip.step_id, result, self.now()))

    def _result(self) -> RunResult:
        wall = self.now()
        ordered = {s.id: self._results[s.id] for s in self._plan.steps}
        status = self._status or (
            RunStatus.SUCCEEDED
            if all(r.success or r.allowed_failure for r in ordered.values())
            else RunStatus.FAILED
        )
        wf = self._plan.workflow
        return RunResult(
            run_id=self._settings.run_id,
            workflow_name=wf.name,
            workflow_version=wf.version,
            workflow_file=str(wf.file) if wf.file else None,
            status=status,
            parallel=self._plan.parallel,
            max_concurrency=self._plan.max_concurrency,
            execution_time_s=wall,
            step_results=ordered,
            parallel_stats=parallel_stats(self._plan, ordered, wall)
            if self._plan.parallel
            else None,
            error=self._error or _first_failure(ordered),
            run_dir=str(self._settings.run_dir) if self._settings.run_dir else None,
            metadata=dict(wf.metadata),
            started_at=self._settings.started_at,
        )

    def _log_path(self, step_id: str) -> Path | None:
        run_dir = self._settings.run_dir
        return None if run_dir is None else run_dir / f"{step_id}.log"

    def _existing_log(self, step_id: str) -> str | None:
        """The step's log, if it has one: executors create it at the first byte of output."""
        if self._run_dir_text is None:
            return None
        # Plain strings: this runs once per step on the loop's thread, where pathlib is costly.
        path = os.path.join(self._run_dir_text, step_id + ".log")
        return path if os.path.exists(path) else None

    def _emit(self, event: Event) -> None:
        self._delivery.post(event)


def _drain(inbox: queue.SimpleQueue[_Done | _Interrupt]) -> list[_Done | _Interrupt]:
    """Everything already waiting in the inbox, without blocking."""
    messages: list[_Done | _Interrupt] = []
    while True:
        try:
            messages.append(inbox.get_nowait())
        except queue.Empty:
            return messages


def _completion(outcome: StepOutcome, allowed: bool) -> Completion:
    status = outcome.status
    if status is StepStatus.SUCCEEDED:
        return Completion.SUCCEEDED
    if allowed:
        return Completion.ALLOWED_FAILURE
    if status in FAILED_STATUSES:
        return Completion.FATAL_FAILURE
    return Completion.CANCELLED


def _with_status(outcome: StepOutcome, status: StepStatus, reason: str | None) -> StepOutcome:
    from dataclasses import replace

    return replace(outcome, status=status, reason=reason or outcome.reason)


def _first_failure(results: Mapping[str, StepResult]) -> str | None:
    for step_id, result in results.items():
        if result.status in FAILED_STATUSES and not result.allowed_failure:
            return f"step '{step_id}' {result.status.value.replace('_', ' ')}: {result.reason}"
    return None
