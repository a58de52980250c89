"""The loop that drives the dispatcher: starts steps on a thread pool, collects their ends,
enforces the workflow deadline, handles interrupts, and reports every fact as an event.

Workers never touch scheduling state: they run one step and post its outcome on the loop's inbox,
which carries control only (step ends and interrupts), so the dispatcher needs no locks and
nothing a step prints can delay a decision. Output goes to a bounded per-step buffer and events
to a delivery thread (`wfrun.delivery`); the loop never waits on a display. The workflow deadline
is a clock check in every turn of the loop.

An executor that can start a step and call back when it ends (`start_executor`; the local
runner's single supervising thread) gets no worker thread for it: its end is posted to the same
inbox. An executor that can also be driven (`drive()`, the local runner's supervising loop)
is run by this loop itself: where it would wait on the inbox, it runs the supervising loop's
turn instead, so a step is started, supervised and ended on this one thread, and its end
reaches the dispatcher without a hand-off between threads. Other threads (workers, signal
handlers) still post to the inbox, and wake the turn.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast

from wfrun.delivery import EventDelivery
from wfrun.dispatch import Completion, Dependencies, Dispatcher, Skip
from wfrun.durations import format_duration
from wfrun.events import (
    Event,
    Reporter,
    RunFinished,
    RunStarted,
    RunStopping,
    StepFinished,
    StepReady,
    StepRetrying,
    StepStarted,
    StepWaiting,
)
from wfrun.executors.base import (
    DEFAULT_GRACE_PERIOD,
    CancelToken,
    Executor,
    StepContext,
    close_executor,
    start_executor,
)
from wfrun.journal import JournalWriter
from wfrun.masking import Masker
from wfrun.model import Step
from wfrun.outputs import OUTPUTS_DIR, discard_prepared, prepare_output_file
from wfrun.planner import Plan

if TYPE_CHECKING:
    import random
    from concurrent.futures import ThreadPoolExecutor

    from wfrun.expressions import Value
    from wfrun.substitution import RunFacts
from wfrun.results import (
    AttemptResult,
    RunResult,
    RunStatus,
    StepOutcome,
    StepResult,
    StepStatus,
)
from wfrun.retry import should_retry
from wfrun.stats import parallel_stats

FAILED_STATUSES = (StepStatus.FAILED, StepStatus.TIMED_OUT)
_UNKNOWN = "?"  # _Done.log when the thread that posted it did not look for the log


class RunSettings(NamedTuple):
    """What the scheduler needs besides the plan; everything that varies is passed in."""

    run_id: str
    env: Mapping[str, str]
    run_dir: Path | None = None  # an existing directory for the step logs; None keeps no logs
    keep_going: bool = False
    grace_period: float = DEFAULT_GRACE_PERIOD
    started_at: str | None = None
    masker: Masker | None = None  # the run's secrets, written as *** (SPEC §10.7)
    # --resume (SPEC §11.2): steps taken as succeeded without running, with their outputs;
    # the run they come from; what the summary says about it.
    reused: Mapping[str, Mapping[str, str]] | None = None
    resumed_from: str | None = None
    notes: tuple[str, ...] = ()
    seed: int | None = None  # of the retry delays' jitter; None: unpredictable


@dataclass(slots=True, eq=False)
class _Done:
    """A step's outcome, posted to the scheduler's loop."""

    step_id: str
    outcome: StepOutcome
    at: float
    # The step's log if it exists, looked for by the thread that posts the end: a stat on the
    # loop's thread for every step is a system call the loop would wait for.
    log: str | None = _UNKNOWN


@dataclass(slots=True, eq=False)
class _Interrupt:
    """A signal asked the run to stop, posted to the scheduler's loop."""

    status: RunStatus  # CANCELLED for SIGINT, also for SIGTERM (exit code tells them apart)


class Driver(Protocol):
    """A supervising loop the scheduler's thread runs itself (`SupervisingLoop`, driven)."""

    def turn(self, timeout: float | None) -> None:
        """Wait at most `timeout` (None: no limit) for the processes, act, call their ends."""
        ...

    def wake(self) -> None:
        """Make the current or next `turn` return; safe from any thread and signal handler."""
        ...

    def stop(self) -> None:
        """End what still runs, on the driving thread; then nothing more."""
        ...


def _driver_of(executor: object) -> Driver | None:
    drive = getattr(executor, "drive", None)
    return None if drive is None else cast("Driver | None", drive())


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
        self._masker = settings.masker if settings.masker else None
        self._scratch: Path | None = None  # outputs go here when the run keeps no directory
        self._root: Path | None = None  # the run directory, absolute
        self._facts: RunFacts | None = None
        self._results: dict[str, StepResult] = {}
        self._dispatcher = Dispatcher(plan, keep_going=settings.keep_going, judge=self._judge)
        self._tokens: dict[str, CancelToken] = {}
        self._ready_at: dict[str, float] = {}
        self._started_at: dict[str, float] = {}  # the first attempt's start
        self._attempt_start: dict[str, float] = {}
        self._attempts: dict[str, list[AttemptResult]] = {}
        self._retries: list[tuple[float, int, str]] = []  # (due, file index, step): a heap
        self._last: dict[str, _Done] = {}  # paused steps: how their last attempt ended
        self._rng: random.Random | None = None  # the retry delays' jitter, at the first retry
        self._journal: JournalWriter | None = None
        self._status: RunStatus | None = None  # set when the run is cut short
        self._error: str | None = None
        self._interrupts = 0
        self._run_dir_text = None if settings.run_dir is None else str(settings.run_dir)
        self._driver: Driver | None = None  # the executor's loop, run by this one (`_loop`)
        self._waiting: dict[str, None] = {}  # ready, not started: held back (the cap, units)
        self._prepared: set[str] = set()  # steps whose outputs file was made ahead
        self._unclaimed = 0  # of those, how many have not started yet
        self._thread = 0  # the loop's thread

    @property
    def reporter_errors(self) -> list[str]:
        """Reporters dropped because they raised (a closed pipe is not one)."""
        return self._delivery.errors

    # ---- public --------------------------------------------------------------------------------

    def interrupt(self, status: RunStatus = RunStatus.CANCELLED) -> None:
        """Ask the run to stop; safe from a signal handler or another thread. A second call kills
        the running steps at once instead of waiting for their grace period."""
        self._inbox.put(_Interrupt(status))
        driver = self._driver
        if driver is not None:
            # Even on the loop's own thread: a handler runs between any two steps of the loop,
            # which may have looked at the inbox already and be about to wait.
            driver.wake()

    def _post(self, message: _Done | _Interrupt) -> None:
        """Hand the loop a message from any thread; the loop's own posts need no waking."""
        self._inbox.put(message)
        driver = self._driver
        if driver is not None and threading.get_ident() != self._thread:
            driver.wake()

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
        if run_dir is not None:
            self._journal = JournalWriter(run_dir, self._settings.run_id, self._plan.workflow)
        workers = max(1, min(self._plan.max_concurrency, len(self._plan.steps)))
        pool = _Workers(workers)
        self._thread = threading.get_ident()
        try:
            self._driver = _driver_of(self._executor)
            for skip in self._dispatcher.take_initial_skips():
                self._finish_unstarted(skip)
            self._mark_ready(self._reuse(self._dispatcher.initial_ready()), 0.0)
            if self._journal is not None:
                # The reused steps' lines go first, before anything runs: a resume killed at
                # once still leaves a journal the next resume can reuse them from.
                self._journal.flush(force=True)
            self._loop(pool)
        finally:
            # Whatever happened (KeyboardInterrupt, a bug), no step outlives the run.
            for token in self._tokens.values():
                token.cancel("run aborted", force=True)
            pool.shutdown()
            # Ends the steps the executor started itself, which post their ends to the inbox
            # (a driven loop ends them on this thread).
            close_executor(self._executor)
            driver, self._driver = self._driver, None
            if driver is not None:
                driver.stop()  # closed with the executor already, unless that one forgot
            if self._prepared:
                discard_prepared(self._outputs_root() / OUTPUTS_DIR)
            for message in _drain(self._inbox):  # ends posted after the loop stopped
                if isinstance(message, _Done) and message.step_id in self._tokens:
                    self._complete(message)
            for step_id in self._dispatcher.paused:  # the run stopped before their retry
                if step_id in self._last:
                    self._give_up_retry(step_id)
            for skip in self._dispatcher.abandon():
                self._finish_unstarted(skip)
            result = self._result()
            notes = self._settings.notes
            if self._journal is not None:
                self._journal.close()
                if self._journal.error is not None:
                    notes = (*notes, f"wfrun: {self._journal.error}")
            self._emit(RunFinished(result, result.execution_time_s, notes))
            self._delivery.close()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
        return result

    # ---- the loop ------------------------------------------------------------------------------

    def _loop(self, pool: _Workers) -> None:
        timeout = self._plan.workflow.timeout
        deadline = None if timeout is None else self._t0 + timeout
        while self._dispatcher.is_active():
            if deadline is not None and self._clock() >= deadline:
                self._expire(timeout or 0.0)
                deadline = None
            self._requeue_due_retries()
            journal = self._journal
            if journal is not None:
                journal.flush()  # the lines of the steps that ended, once a batch is due
            for step_id in self._dispatcher.startable():
                if journal is not None and journal.unwritten(self._plan.step(step_id).depends_on):
                    journal.flush(force=True)  # a step's dependencies are journaled first
                self._start(pool, step_id)
            now = self.now()
            for step_id, reason in self._dispatcher.take_wait_changes():
                self._emit(StepWaiting(step_id, reason, now))
            if not self._dispatcher.is_active():
                break
            wait = None if deadline is None else max(0.0, deadline - self._clock())
            if self._retries:  # a due retry is a clock check too, like the deadline
                due = max(0.0, self._retries[0][0] - self.now())
                wait = due if wait is None else min(wait, due)
            pending = None if journal is None else journal.due()
            if pending is not None:  # the journal's next write or fsync, a clock check too
                wait = pending if wait is None else min(wait, pending)
            driver = self._driver
            if driver is not None:
                # The executor's loop waits for the processes, and for the inbox through its
                # wake-up; the ends it finds are posted to the inbox before `turn` returns.
                if self._inbox.empty():
                    if wait != 0.0 and self._prepare_ahead(driver):
                        continue  # then look at the clock and the starts again before waiting
                    driver.turn(wait)
                for message in _drain(self._inbox):
                    self._handle(message)
                continue
            try:
                message = self._inbox.get(timeout=wait)
            except queue.Empty:
                continue  # the deadline or a retry: checked at the top of the loop
            self._handle(message)
            # Take everything already waiting before planning again: one scan per batch.
            for message in _drain(self._inbox):
                self._handle(message)

    def _prepare_ahead(self, driver: Driver) -> bool:
        """About to wait with nothing to start: make the outputs files of the steps likely to
        start next (ready ones held back, the dependents of running ones), at most the cap's
        worth ahead, so that their starts do not wait for a file (as slow as a process start
        on some file systems). First a look at the processes: what has happened goes first.
        False: nothing to make, wait."""
        if self._settings.run_dir is None or self._dispatcher.stopping:
            return False
        room = self._plan.max_concurrency - self._unclaimed
        if room <= 0:
            return False
        chosen: list[str] = []
        for step_id in self._waiting:
            if step_id not in self._prepared:
                chosen.append(step_id)
                if len(chosen) >= room:
                    break
        if len(chosen) < room:
            for running in self._tokens:
                for step_id in self._plan.dependents[running]:
                    if (
                        step_id not in self._prepared
                        and step_id not in self._attempts
                        and step_id not in self._results
                        and step_id not in chosen
                    ):
                        chosen.append(step_id)
                if len(chosen) >= room:
                    break
        if not chosen:
            return False
        driver.turn(0.0)
        if not self._inbox.empty():
            return True
        directory = self._outputs_root() / OUTPUTS_DIR
        for step_id in chosen[:room]:
            self._prepared.add(step_id)
            self._unclaimed += 1
            with contextlib.suppress(OSError):  # its start makes it, or says why it cannot
                prepare_output_file(directory, step_id)
        return True

    def _handle(self, message: _Done | _Interrupt) -> None:
        if isinstance(message, _Done):
            self._complete(message)
        else:
            self._on_interrupt(message)

    def _start(self, pool: _Workers, step_id: str) -> None:
        step = self._plan.step(step_id)
        self._waiting.pop(step_id, None)
        if step_id in self._prepared and step_id not in self._attempts:
            self._unclaimed -= 1
        log_path = self._log_path(step_id)
        token = self._tokens[step_id] = CancelToken()
        unresolved: str | None = None
        if getattr(self._executor, "resolves_references", True) and step.config_has_references():
            from wfrun.expressions import ExpressionError
            from wfrun.substitution import resolve

            try:
                step = resolve(step, self._contexts(step))
            except ExpressionError as error:
                unresolved = str(error)
        attempt = len(self._attempts.get(step_id, ())) + 1
        context = StepContext(
            run_id=self._settings.run_id,
            workflow=self._plan.workflow,
            step=step,
            env=self._settings.env,
            cancel=token,
            log_path=log_path,
            on_output=self._delivery.output_for(step_id),
            grace_period=self._settings.grace_period,
            run_dir=self._outputs_root(),
            masker=self._masker,
            attempt=attempt,
        )
        at = self._attempt_start[step_id] = self.now()
        self._started_at.setdefault(step_id, at)
        self._emit(
            StepStarted(
                step_id,
                self._plan.group_of[step_id],
                step.parallel.resources,
                at,
                str(log_path) if log_path else None,
                attempt,
            )
        )
        if unresolved is not None:
            # Nothing starts: the step fails as it would have, before its process existed.
            failed = StepOutcome(StepStatus.FAILED, reason=unresolved, not_startable=True)
            self._post(_Done(step_id, failed, at))
            return
        # The executor starts it and calls back when it ends (the local runner's one supervising
        # thread); only an executor that cannot gets a worker thread for the step.
        if not start_executor(self._executor, context, functools.partial(self._ended, step_id)):
            pool.submit(self._work, context)

    def _ended(self, step_id: str, outcome: StepOutcome) -> None:
        """A step started with `start_executor` has ended: post it (on the executor's thread, or
        on this loop's when it drives the executor)."""
        self._post(_Done(step_id, outcome, self.now(), self._existing_log(step_id)))

    # ---- data between steps (SPEC §10) -----------------------------------------------------------

    def _outputs_root(self) -> Path:
        """The run directory, or a scratch directory for a run that keeps none (the API)."""
        if self._root is not None:
            return self._root
        if self._settings.run_dir is not None:
            # Absolute once per run: executors make paths under it absolute for every step,
            # which is a getcwd each (WFRUN_RUN_DIR, WFRUN_OUTPUT) for a relative one.
            self._root = self._settings.run_dir.absolute()
            return self._root
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="wfrun-run-"))
        return self._scratch

    def _run_facts(self) -> RunFacts:
        from wfrun.substitution import RunFacts

        if self._facts is None:
            workflow = self._plan.workflow
            self._facts = RunFacts(
                workflow=workflow,
                run_id=self._settings.run_id,
                run_dir=str(self._outputs_root().absolute()),
                env={**self._settings.env, **workflow.env},
            )
        return self._facts

    def _contexts(
        self, step: Step, known: Mapping[str, Completion] | None = None
    ) -> dict[str, Value]:
        """The contexts of `step`'s references; `known`: how the dispatcher saw steps end, for
        those decided in this same turn and not reported yet (while it is being built too)."""
        from wfrun.substitution import StepData, contexts, referenced_steps

        if known is None:
            known = self._dispatcher.ended_statuses()
        ended: dict[str, StepData] = {}
        for sid in referenced_steps(step):
            result = self._results.get(sid)
            if result is not None:
                ended[sid] = StepData(result.status.value, result.outputs)
                continue
            how = known.get(sid)
            if how is not None:
                ended[sid] = StepData(_STATUS_OF[how], {})
        return contexts(self._run_facts(), step, ended)

    def _judge(self, step: Step, dependencies: Dependencies) -> bool:
        """The dispatcher asks whether a step's `if` holds, once its dependencies ended."""
        from wfrun.substitution import holds

        return holds(step, self._contexts(step, dependencies.known), dependencies)

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
            step_id = context.step.id
            self._post(_Done(step_id, outcome, self.now(), self._existing_log(step_id)))

    def _complete(self, done: _Done) -> None:
        step = self._plan.step(done.step_id)
        token = self._tokens.pop(done.step_id)
        # Masked once, before anything keeps it: the attempts, the result, the events.
        outcome = self._masked(done.outcome)
        if token.cancelled and outcome.status is StepStatus.CANCELLED:
            # The executor saw a cancel: the token knows why (a timeout of the whole run, a
            # failing sibling, an interrupt).
            outcome = _with_status(outcome, token.status, token.reason)
        start = self._attempt_start[step.id]
        attempts = self._attempts.setdefault(step.id, [])
        attempts.append(
            AttemptResult(
                outcome.status, start, max(done.at, start), outcome.exit_code, outcome.reason
            )
        )
        stopping = token.cancelled or self._status is not None or self._dispatcher.stopping
        if not stopping and should_retry(step.retry, outcome, len(attempts)):
            self._retry_later(_Done(step.id, outcome, done.at, done.log), attempts[-1])
            return
        self._conclude(_Done(step.id, outcome, done.at, done.log), stopped_by_run=token.cancelled)

    def _masked(self, outcome: StepOutcome) -> StepOutcome:
        """The outcome with the run's secrets written as *** in every text it carries (the
        reason quotes a path or a command line built from a reference, say)."""
        masker = self._masker
        if masker is None:
            return outcome
        return outcome._replace(
            reason=masker.maybe(outcome.reason),
            command=masker.maybe(outcome.command),
            output_tail=masker.text(outcome.output_tail),
            output=masker.value(outcome.output),
            outputs={k: masker.text(v) for k, v in outcome.outputs.items()},
        )

    def _retry_later(self, done: _Done, failed: AttemptResult) -> None:
        """The attempt failed and another is due: give back its units and slot until then."""
        step = self._plan.step(done.step_id)
        self._dispatcher.pause(step.id)
        self._last[step.id] = done
        attempt = len(self._attempts[step.id]) + 1
        assert step.retry is not None
        if self._rng is None:
            import random

            self._rng = random.Random(self._settings.seed)
        delay = step.retry.delay_before(attempt, self._rng)
        now = self.now()
        heapq.heappush(self._retries, (now + delay, step.index, step.id))
        self._delivery.end_output(step.id)
        self._emit(StepRetrying(step.id, failed, attempt, step.max_attempts, delay, now))

    def _requeue_due_retries(self) -> None:
        if self._dispatcher.stopping:
            return  # nothing new starts: `run` ends them with their last attempt
        now = self.now()
        while self._retries and self._retries[0][0] <= now:
            step_id = heapq.heappop(self._retries)[2]
            if step_id in self._last:  # not given up on meanwhile
                del self._last[step_id]
                self._dispatcher.requeue(step_id)

    def _give_up_retry(self, step_id: str) -> None:
        """A paused step gets no more attempts (the run stops): it ends as its last one did."""
        done = self._last.pop(step_id)
        self._conclude(done, stopped_by_run=False)

    def _conclude(self, done: _Done, stopped_by_run: bool) -> None:
        """The step's last attempt is over: record its result and tell the dispatcher."""
        step = self._plan.step(done.step_id)
        outcome = done.outcome
        allowed = outcome.status in FAILED_STATUSES and step.continue_on_error
        log = self._existing_log(step.id) if done.log is _UNKNOWN else done.log
        self._results[step.id] = self._step_result(step.id, outcome, done.at, allowed, log)
        if self._journal is not None:
            self._journal.record(self._results[step.id])
        # A step the run itself stopped (deadline, interrupt) did not fail on its own: its
        # dependents are cancelled with the run, not skipped as if it had failed.
        stopped_by_run = stopped_by_run and self._status is not None
        completion = Completion.CANCELLED if stopped_by_run else _completion(outcome, allowed)
        effects = self._dispatcher.finish(
            step.id, completion, timed_out=outcome.status is StepStatus.TIMED_OUT
        )
        self._delivery.end_output(step.id)
        self._emit(StepFinished(step.id, self._results[step.id], self.now()))
        for cancel in effects.cancel:
            if cancel.step_id in self._last:  # between attempts: no retry comes
                self._give_up_retry(cancel.step_id)
            else:
                self._tokens[cancel.step_id].cancel(cancel.reason, cancel.status)
        for skip in effects.skipped:
            self._finish_unstarted(skip)
        self._mark_ready(effects.ready, done.at)

    def _reuse(self, ready: list[str]) -> list[str]:
        """`--resume`: take the reused steps as succeeded, in dependency order; the rest of
        `ready`, and the steps their reuse made ready, are returned."""
        reused = self._settings.reused or {}
        if not reused:
            return ready
        ready = list(ready)
        taken: set[str] = set()
        for step_id in self._plan.order:
            step = self._plan.step(step_id)
            if step_id not in reused or not all(d in taken for d in step.depends_on):
                continue
            taken.add(step_id)
            result = StepResult(
                step_id=step_id,
                status=StepStatus.SUCCEEDED,
                parallel_group=self._plan.group_of[step_id],
                reused=True,
                outputs=dict(reused[step_id]),  # restored: references read them
            )
            # Recorded before the dispatcher judges the dependents' conditions, which read it.
            self._results[step_id] = result
            effects = self._dispatcher.reuse(step_id)
            ready.extend(effects.ready)
            if self._journal is not None:
                self._journal.record(result)
            self._emit(StepFinished(step_id, result, 0.0))
            for skip in effects.skipped:
                self._finish_unstarted(skip)
        return [sid for sid in ready if sid not in taken]

    def _mark_ready(self, step_ids: list[str], at: float) -> None:
        for step_id in step_ids:
            self._ready_at[step_id] = at
            self._waiting[step_id] = None
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
        self, step_id: str, outcome: StepOutcome, end: float, allowed: bool, log: str | None
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
            log_file=log,
            output_tail=outcome.output_tail,
            output=outcome.output,
            command=outcome.command,
            log_error=outcome.log_error,
            outputs=dict(outcome.outputs),
            attempt_results=tuple(self._attempts.get(step_id, ())),
            worker=outcome.where,
        )

    def _finish_unstarted(self, skip: Skip) -> None:
        self._waiting.pop(skip.step_id, None)
        if skip.step_id in self._prepared:
            self._unclaimed -= 1  # its file, made ahead, is removed at the end
        result = StepResult(
            step_id=skip.step_id,
            status=skip.status,
            parallel_group=self._plan.group_of[skip.step_id],
            # A condition that failed to evaluate may quote a value: a secret, say.
            reason=self._masker.maybe(skip.reason) if self._masker else skip.reason,
            ready_time=self._ready_at.get(skip.step_id),
            wait=self._dispatcher.waited_for(skip.step_id),
        )
        self._results[skip.step_id] = result
        if self._journal is not None:
            self._journal.record(result)
        self._emit(StepFinished(skip.step_id, result, self.now()))

    def _result(self) -> RunResult:
        wall = self.now()
        ordered = {s.id: self._results[s.id] for s in self._plan.steps}
        # Skipped steps fail nothing by themselves: a false condition skips on purpose, and a
        # failure that skips its dependents failed the run already.
        status = self._status or (
            RunStatus.FAILED
            if any(
                r.status in (*FAILED_STATUSES, StepStatus.CANCELLED) and not r.allowed_failure
                for r in ordered.values()
            )
            else RunStatus.SUCCEEDED
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
            resumed_from=self._settings.resumed_from,
        )

    def _log_path(self, step_id: str) -> Path | None:
        run_dir = self._settings.run_dir
        return None if run_dir is None else run_dir / f"{step_id}.log"

    def _existing_log(self, step_id: str) -> str | None:
        """The step's log, if it has one: executors create it at the first byte of output.
        Called on the thread that posts the step's end, or the loop's when that one did not."""
        if self._run_dir_text is None:
            return None
        # Plain strings: this runs once per step on the loop's thread, where pathlib is costly.
        path = os.path.join(self._run_dir_text, step_id + ".log")
        return path if os.path.exists(path) else None

    def _emit(self, event: Event) -> None:
        self._delivery.post(event)


class _Workers:
    """Threads for the executors that cannot start a step and return (agent steps, dry runs):
    created at the first such step, so a run of scripts, which the supervising loop starts,
    does not even import concurrent.futures (start-up time)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, work: Callable[[StepContext], None], context: StepContext) -> None:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._size, thread_name_prefix="wfrun-step")
        self._pool.submit(work, context)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


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


_STATUS_OF = {
    Completion.SUCCEEDED: "succeeded",
    Completion.ALLOWED_FAILURE: "failed",
    Completion.FATAL_FAILURE: "failed",
    Completion.CANCELLED: "cancelled",
    Completion.SKIPPED: "skipped",
}


def _with_status(outcome: StepOutcome, status: StepStatus, reason: str | None) -> StepOutcome:
    return outcome._replace(status=status, reason=reason or outcome.reason)


def _first_failure(results: Mapping[str, StepResult]) -> str | None:
    for step_id, result in results.items():
        if result.status in FAILED_STATUSES and not result.allowed_failure:
            return f"step '{step_id}' {result.status.value.replace('_', ' ')}: {result.reason}"
    return None
