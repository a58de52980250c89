"""RunState: the events of one run folded into what the views show.

Every event is folded in O(1) (RunStarted in O(steps)), so a 1,000-step run costs nothing per
event; the queries return only as many rows as a view asks for. Events arrive on the scheduler's
thread while a live display may read from its refresh thread: `handle` holds `lock`, and a reader
on another thread holds it too while it builds a frame (the frame copies what it shows).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, ClassVar

from wfrun.events import (
    Event,
    RunFinished,
    RunStarted,
    RunStopping,
    StepFinished,
    StepOutput,
    StepReady,
    StepRetrying,
    StepStarted,
    StepWaiting,
    WaitKind,
    WaitReason,
)
from wfrun.model import AgentConfig, Requirement, Step, Workflow
from wfrun.output_text import printable
from wfrun.planner import Plan
from wfrun.results import RunResult, StepResult, StepStatus


@dataclass(slots=True)
class RunningStep:
    """A step that is running now."""

    step_id: str
    name: str
    group: int
    resources: Mapping[str, int]
    started_at: float
    log_file: str | None
    last_line: str = ""
    prompt: str | None = None  # an agent step's prompt, first line: what it is working on
    attempt: str | None = None  # "2/3" for a retry, shown next to the step


@dataclass(frozen=True, slots=True)
class WaitingStep:
    """A step that has not started: `ready` when only a limit holds it back."""

    step_id: str
    reason: str
    ready: bool


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """A pool now: units in use, its capacity, and who holds units, in start order."""

    name: str
    in_use: int
    capacity: int
    holders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Counts:
    """How many steps there are, by what has become of them so far."""

    total: int = 0
    finished: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    skipped: int = 0
    cancelled: int = 0
    allowed_failures: int = 0  # failed steps with continueOnError (also counted in `failed`)
    running: int = 0
    ready: int = 0  # dependencies done, held back by a limit
    not_ready: int = 0  # waiting for dependencies

    @property
    def waiting(self) -> int:
        return self.ready + self.not_ready


class RunState:
    """The fold of one run's events. Build one per run; `handle` every event in order."""

    _folds: ClassVar[Mapping[type, Callable[[RunState, Any], None]]]

    def __init__(self, now: Callable[[], float] | None = None) -> None:
        self.lock = threading.RLock()
        self._now = now
        self._t0: float | None = None
        self.workflow: Workflow | None = None
        self.plan: Plan | None = None
        self.run_id: str | None = None
        self.run_dir: str | None = None
        self.run_result: RunResult | None = None
        self.notes: tuple[str, ...] = ()
        self.finished_at: float | None = None
        self.stopping: RunStopping | None = None  # the run was told to stop, and how
        self._steps: dict[str, Step] = {}
        self._status_counts: dict[StepStatus, int] = dict.fromkeys(StepStatus, 0)
        self._allowed_failures = 0
        self._results: dict[str, StepResult] = {}
        self._running: dict[str, RunningStep] = {}  # start order
        self._ready: dict[str, WaitReason | None] = {}  # ready order; None: no reason reported
        self._class_reason: dict[Requirement, WaitReason] = {}
        self._not_ready: dict[str, None] = {}  # file order; an ordered set
        self._pool_in_use: dict[str, int] = {}
        self._pool_holders: dict[str, dict[str, int]] = {}  # pool -> step -> units, start order
        self.retries: dict[str, StepRetrying] = {}  # each step's latest retry, if it had one

    # -- folding ---------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        fold = self._folds.get(type(event))
        if fold is None:
            return
        with self.lock:
            fold(self, event)

    def _run_started(self, event: RunStarted) -> None:
        self._t0 = time.monotonic() - event.at
        self.workflow, self.plan = event.workflow, event.plan
        self.run_id, self.run_dir = event.run_id, event.run_dir
        self._steps = {s.id: s for s in event.workflow.steps}
        self._not_ready = dict.fromkeys(self._steps)
        self._pool_in_use = dict.fromkeys(event.workflow.parallel.resources, 0)
        self._pool_holders = {pool: {} for pool in event.workflow.parallel.resources}

    def _step_ready(self, event: StepReady) -> None:
        self._not_ready.pop(event.step_id, None)
        self._ready.setdefault(event.step_id, None)

    def _step_waiting(self, event: StepWaiting) -> None:
        self._not_ready.pop(event.step_id, None)
        self._ready[event.step_id] = event.reason
        step = self._steps.get(event.step_id)
        if step is not None and event.reason.kind is not WaitKind.RETRY:
            # The reason holds for every waiting step with the same requirement (see events).
            self._class_reason[step.parallel.requirement] = event.reason

    def _step_started(self, event: StepStarted) -> None:
        sid = event.step_id
        self._not_ready.pop(sid, None)
        self._ready.pop(sid, None)
        step = self._steps.get(sid)
        self._running[sid] = RunningStep(
            step_id=sid,
            name=step.name if step else sid,
            group=event.group,
            resources=dict(event.resources),
            started_at=event.at,
            log_file=event.log_file,
            prompt=_prompt_line(step),
            attempt=self._attempt_text(sid, event.attempt),
        )
        for pool, units in event.resources.items():
            self._pool_in_use[pool] = self._pool_in_use.get(pool, 0) + units
            self._pool_holders.setdefault(pool, {})[sid] = units

    def _step_retrying(self, event: StepRetrying) -> None:
        """Between two attempts a step holds nothing and waits, with its own reason."""
        sid = event.step_id
        self._release(sid)
        self.retries[sid] = event
        self._ready[sid] = event.reason

    def _release(self, sid: str) -> None:
        running = self._running.pop(sid, None)
        if running is not None:
            for pool, units in running.resources.items():
                self._pool_in_use[pool] = self._pool_in_use.get(pool, 0) - units
                self._pool_holders.get(pool, {}).pop(sid, None)

    def _attempt_text(self, sid: str, attempt: int) -> str | None:
        retry = self.retries.get(sid)
        return None if attempt <= 1 or retry is None else f"{attempt}/{retry.max_attempts}"

    def _step_output(self, event: StepOutput) -> None:
        running = self._running.get(event.step_id)
        if running is None:
            return
        for line in reversed(event.lines):
            shown = printable(line).strip()
            if shown:
                running.last_line = shown
                return

    def _step_finished(self, event: StepFinished) -> None:
        sid, result = event.step_id, event.result
        self._not_ready.pop(sid, None)
        self._ready.pop(sid, None)
        self._release(sid)
        if sid not in self._results:
            self._status_counts[result.status] += 1
            self._allowed_failures += result.allowed_failure and not result.success
        self._results[sid] = result

    def _run_finished(self, event: RunFinished) -> None:
        self.run_result = event.result
        self.notes = event.notes
        self.finished_at = event.at

    # -- queries (hold `lock` when calling from another thread than the one handling events) --

    @property
    def started(self) -> bool:
        return self.plan is not None

    @property
    def finished(self) -> bool:
        return self.run_result is not None

    def elapsed(self) -> float:
        """Seconds since the run started; frozen at the end of the run."""
        if self.finished_at is not None:
            return self.finished_at
        if self._now is not None:
            return self._now()
        if self._t0 is None:
            return 0.0
        return time.monotonic() - self._t0

    def counts(self) -> Counts:
        c = self._status_counts
        return Counts(
            total=len(self._steps),
            finished=len(self._results),
            succeeded=c[StepStatus.SUCCEEDED],
            failed=c[StepStatus.FAILED],
            timed_out=c[StepStatus.TIMED_OUT],
            skipped=c[StepStatus.SKIPPED],
            cancelled=c[StepStatus.CANCELLED],
            allowed_failures=self._allowed_failures,
            running=len(self._running),
            ready=len(self._ready),
            not_ready=len(self._not_ready),
        )

    def step(self, step_id: str) -> Step | None:
        return self._steps.get(step_id)

    @property
    def results(self) -> Mapping[str, StepResult]:
        """Finished steps' results, in finishing order."""
        return self._results

    def running(self, limit: int | None = None) -> list[RunningStep]:
        """Running steps in start order, copied so a frame can be rendered after the lock."""
        rows = islice(self._running.values(), limit)
        return [replace(r, resources=dict(r.resources)) for r in rows]

    def waiting(self, limit: int | None = None) -> list[WaitingStep]:
        """Steps not started: first the ready ones held back by a limit, then the not-ready ones."""
        rows = [
            WaitingStep(sid, self._describe(sid, self._reason_of(sid)), ready=True)
            for sid in islice(self._ready, limit)
        ]
        rest = None if limit is None else max(0, limit - len(rows))
        rows += [
            WaitingStep(sid, _needs(self.unfinished_dependencies(sid)), ready=False)
            for sid in islice(self._not_ready, rest)
        ]
        return rows

    def unfinished_dependencies(self, step_id: str) -> tuple[str, ...]:
        step = self._steps.get(step_id)
        if step is None:
            return ()
        return tuple(d for d in step.depends_on if d not in self._results)

    def pools(self) -> list[PoolUsage]:
        """Every declared pool (and any other a step took units from), in declaration order."""
        declared = self.workflow.parallel.resources if self.workflow else {}
        return [
            PoolUsage(
                name=pool,
                in_use=in_use,
                capacity=declared.get(pool, 0),
                holders=tuple(self._pool_holders.get(pool, {})),
            )
            for pool, in_use in self._pool_in_use.items()
        ]

    def wait_text(self, step_id: str) -> str | None:
        """Why a ready step waits, with live numbers; None when it is not waiting ready."""
        if step_id not in self._ready:
            return None
        return self._describe(step_id, self._reason_of(step_id))

    def wait_kind(self, step_id: str) -> WaitKind | None:
        reason = self._reason_of(step_id)
        return None if reason is None else reason.kind

    def _reason_of(self, step_id: str) -> WaitReason | None:
        """A waiting step's reason is its class's latest: one event speaks for the class."""
        own = self._ready.get(step_id)
        step = self._steps.get(step_id)
        if own is None or step is None or own.kind is WaitKind.RETRY:
            return own
        return self._class_reason.get(step.parallel.requirement, own)

    def _describe(self, step_id: str, reason: WaitReason | None) -> str:
        """The reason a ready step waits, with the numbers as they are now.

        The scheduler reports a reason only when its kind or pool changes, so its numbers and
        holders may be stale; the live ones come from the steps this state saw start and finish.
        """
        if reason is None:
            return "ready"
        live = self._live_numbers(step_id, reason)
        return str(live)

    def _live_numbers(self, step_id: str, reason: WaitReason) -> WaitReason:
        if reason.kind is WaitKind.POOL and reason.pool is not None:
            declared = self.workflow.parallel.resources if self.workflow else {}
            return reason._replace(
                in_use=self._pool_in_use.get(reason.pool, reason.in_use),
                capacity=declared.get(reason.pool, reason.capacity),
                held_by=tuple(self._pool_holders.get(reason.pool, {})),
            )
        if reason.kind is WaitKind.GLOBAL_CAP and self.plan is not None:
            return reason._replace(in_use=len(self._running), capacity=self.plan.max_concurrency)
        if reason.kind is WaitKind.RUNS_ALONE:
            return reason._replace(in_use=len(self._running))
        if reason.kind is WaitKind.DEPENDENCY:
            return reason._replace(held_by=self.unfinished_dependencies(step_id))
        if reason.kind is WaitKind.RETRY:  # a countdown
            return reason._replace(delay=max(0.0, reason.due - self.elapsed()))
        return reason


def _stopping(state: RunState, event: RunStopping) -> None:
    state.stopping = event


# Each kind of event's fold, found by its type: one look-up per event, not a chain of tests.
RunState._folds = {
    RunStarted: RunState._run_started,
    StepReady: RunState._step_ready,
    StepWaiting: RunState._step_waiting,
    StepStarted: RunState._step_started,
    StepOutput: RunState._step_output,
    StepRetrying: RunState._step_retrying,
    StepFinished: RunState._step_finished,
    RunStopping: _stopping,
    RunFinished: RunState._run_finished,
}


def _needs(dependencies: tuple[str, ...]) -> str:
    # Before the scheduler's first pass, steps without dependencies are not yet ready.
    return "needs " + ", ".join(dependencies) if dependencies else "about to start"


def _prompt_line(step: Step | None) -> str | None:
    if step is None or not isinstance(step.config, AgentConfig):
        return None
    lines = step.config.prompt.strip().splitlines()
    return printable(lines[0]) if lines else None
