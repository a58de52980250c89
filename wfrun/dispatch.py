"""The dispatcher: which steps may start now, and why the others wait.

A pure state machine over the dependency graph, in the manner of Ninja's `Plan` and its pools:
no threads, no clock, no processes. The scheduler asks `startable()`, runs what it gets, and
reports back with `finish()`; a test can step it by hand.

Pools are bookkeeping, not blocking: a step that does not fit waits in the ready set as a state
(with a reason), never in a worker thread.

Cost. Ready steps are kept in classes of equal requirements (pools and units, step limit); each
class is a heap ordered by priority. A scan looks at class heads only, so one `startable()` costs
O(classes + started * log n), not O(ready steps), and a whole run stays O((steps + edges) log n).
A whole class shares one wait reason because its steps need exactly the same things.

Conditions (SPEC §10.3). A step without `if` needs every dependency to succeed, so it is skipped
as soon as one does not. A step whose `if` calls a status function waits until all of its
dependencies have ended and is then judged; one that calls `failure()` or `always()` may start
even after a failure stopped the run (cleanup, notification). Judging is the caller's: the
dispatcher knows how dependencies ended, not what they output.
"""

import enum
import heapq
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from wfrun.model import Requirement, Step
from wfrun.planner import Plan
from wfrun.results import StepStatus
from wfrun.waits import WaitKind, WaitReason

# The default of a record's mapping field: shared by every record, so it must not change.
_NO_ENTRIES: Mapping[str, Any] = MappingProxyType({})


class Completion(enum.Enum):
    """How a running step ended, as far as scheduling cares."""

    SUCCEEDED = "succeeded"
    ALLOWED_FAILURE = "allowed_failure"  # failed with continueOnError: dependents still run
    FATAL_FAILURE = "fatal_failure"
    CANCELLED = "cancelled"  # stopped by wfrun itself; its dependents cannot run
    SKIPPED = "skipped"  # never started (a dependency failed, a false condition, a stop)


_GOOD = (Completion.SUCCEEDED, Completion.ALLOWED_FAILURE)


class Dependencies(NamedTuple):
    """How a judged step's dependencies ended, the indirect ones too, as in GitHub Actions:
    `failure()` is true when any step before it failed, so a `notify` after `deploy` hears of
    a failed `build` that skipped `deploy`. `known` is how every step decided so far ended."""

    ended: Mapping[str, Completion]  # every dependency, direct or not
    known: Mapping[str, Completion] = _NO_ENTRIES

    def success(self) -> bool:
        return all(how in _GOOD for how in self.ended.values())

    def failure(self) -> bool:
        return any(how is Completion.FATAL_FAILURE for how in self.ended.values())

    def always(self) -> bool:
        return True


# Decides a step's `if` once its dependencies ended: True to run it. Raises ExpressionError
# when the condition cannot be evaluated (the step then fails without starting).
Judge = Callable[[Step, Dependencies], bool]


class _ConditionUse(NamedTuple):
    """What a step's `if:` asks of the dispatcher."""

    waits: bool  # calls a status function: judged only once every dependency ended
    exempt: bool  # calls failure() or always(): may start after a failure stopped the run


def _condition_use(step: Step) -> _ConditionUse:
    if step.condition is None:
        return _ConditionUse(False, False)
    from wfrun.expressions import ExpressionError, Function, calls
    from wfrun.templates import parse_condition

    try:
        functions = {c.function for c in calls(parse_condition(step.condition).expression)}
    except ExpressionError:
        return _ConditionUse(False, False)  # `validate` refuses it; judging will say why
    status = {Function.SUCCESS, Function.FAILURE, Function.ALWAYS} & functions
    return _ConditionUse(bool(status), bool(status - {Function.SUCCESS}))


class Skip(NamedTuple):
    """A step that will never start, with its final status and the reason."""

    step_id: str
    status: StepStatus
    reason: str


@dataclass(slots=True, eq=False)
class FinishEffects:
    """What `finish` changed, for the scheduler to act on."""

    ready: list[str] = field(default_factory=list)  # newly ready steps
    skipped: list[Skip] = field(default_factory=list)  # steps that will never start
    cancel: list[Skip] = field(default_factory=list)  # running steps the scheduler must stop


@dataclass(slots=True, eq=False)
class _ReadyClass:
    """Ready steps with identical requirements, by priority; they wait for the same reason."""

    requirement: Requirement
    heap: list[tuple[tuple[float, int], str]] = field(default_factory=list)
    reason: WaitReason | None = None
    reason_scan: int = 0  # the scan that last held the class back with `reason`
    announced: WaitReason | None = None  # the reason the scheduler was last told about
    unannounced: list[str] = field(default_factory=list)  # joined since the last announcement


def _reason_key(reason: WaitReason | None) -> tuple[WaitKind, str | None, str | None] | None:
    """Reasons are re-announced when their kind or pool changes, not on every count change."""
    if reason is None:
        return None
    return (reason.kind, reason.pool, reason.limit_step)


class Dispatcher:
    """Decides which ready steps start, under the global cap, step limits and pools (SPEC §3)."""

    def __init__(self, plan: Plan, keep_going: bool = False, judge: Judge | None = None) -> None:
        self._plan = plan
        self._steps: dict[str, Step] = {s.id: s for s in plan.workflow.steps}
        self._capacity: Mapping[str, int] = plan.workflow.parallel.resources
        self._cap = plan.max_concurrency
        self._keep_going = keep_going
        self._judge = judge
        self._deps_left: dict[str, int] = {s.id: len(s.depends_on) for s in plan.workflow.steps}
        self._ended: dict[str, Completion] = {}
        # A failure ran past by a cleanup step: only then may an ancestor further up fail a
        # step whose dependencies all succeeded (and the ancestors are worth walking).
        self._any_failed = False
        self._use_of: dict[str, _ConditionUse] = {
            s.id: _condition_use(s) for s in plan.workflow.steps if s.condition is not None
        }
        self._any_exempt = any(use.exempt for use in self._use_of.values())
        self._classes: dict[Requirement, _ReadyClass] = {}
        self._class_of: dict[str, Requirement] = {}
        self._removed: set[str] = set()  # lazily deleted from their class heap
        self._running: dict[str, Step] = {}
        self._paused: dict[str, Step] = {}  # between two attempts: holding nothing, not ready
        self._retried: set[str] = set()  # requeued after a pause: they go first when due
        self._limits: Counter[int] = Counter()  # step limits of the running steps
        self._use: Counter[str] = Counter()
        self._holders: dict[str, dict[str, None]] = {p: {} for p in self._capacity}
        self._done: set[str] = set()  # finished or never to start
        self._scan = 0  # scans of `startable` so far
        self._joined: dict[str, int] = {}  # ready step -> scans done when it became ready
        self._waited: dict[str, WaitReason] = {}  # why each step last waited, fixed at its start
        self._stop_reason: str | None = None
        self._stop_status = StepStatus.SKIPPED
        self._initial_ready: list[str] = []
        self._pending_effects = FinishEffects()
        for step in plan.workflow.steps:
            if not step.depends_on:
                self._resolve(step.id, self._pending_effects)
        self._initial_ready = self._pending_effects.ready
        self._pending_effects.ready = []

    # ---- queries -------------------------------------------------------------------------------

    @property
    def running(self) -> tuple[str, ...]:
        return tuple(self._running)

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def is_active(self) -> bool:
        """True while a step runs, or steps remain that may still start."""
        if self._running:
            return True
        if len(self._done) >= len(self._steps):
            return False
        return not self.stopping or self._cleanup_may_start()

    def _cleanup_may_start(self) -> bool:
        """After a failure stopped the run, `failure()`/`always()` steps still have their turn."""
        return self._stop_status is StepStatus.SKIPPED and self._any_exempt

    def take_initial_skips(self) -> list[Skip]:
        """Steps decided before anything ran: skipped or failed by their condition."""
        skipped, self._pending_effects.skipped = self._pending_effects.skipped, []
        return skipped

    def ended_statuses(self) -> Mapping[str, Completion]:
        """How each step that ended so far ended, as scheduling saw it."""
        return self._ended

    def pool_usage(self) -> dict[str, tuple[int, int]]:
        """Pool -> (units in use, capacity)."""
        return {p: (self._use[p], cap) for p, cap in self._capacity.items()}

    def initial_ready(self) -> list[str]:
        """Steps ready before anything ran (no dependencies)."""
        return list(self._initial_ready)

    @property
    def paused(self) -> tuple[str, ...]:
        """Steps between two attempts (see `pause`)."""
        return tuple(self._paused)

    def why(self, step_id: str) -> WaitReason | None:
        """Why a pending step has not started; None when it runs, ran, or may start now (or,
        paused, waits for a retry: the scheduler knows when)."""
        if step_id in self._running or step_id in self._done or step_id in self._paused:
            return None
        req = self._class_of.get(step_id)
        if req is None:
            pending = [d for d in self._steps[step_id].depends_on if d not in self._done]
            return WaitReason(WaitKind.DEPENDENCY, held_by=tuple(pending))
        return self._classes[req].reason

    def waited_for(self, step_id: str) -> WaitReason | None:
        """Why the step last waited before it started (or, for a step that never started, until
        the run gave up on it); None when it never waited once ready.

        Decided when the step leaves the ready set, from the reason that held it back in a scan
        it took part in, so it speaks of this step and of the holders at that moment.
        """
        return self._waited.get(step_id)

    # ---- the state machine ---------------------------------------------------------------------

    def startable(self) -> list[str]:
        """Take the resources of every ready step that may start now, in priority order."""
        if self.stopping and not self._cleanup_may_start():
            return []
        self._scan += 1
        started: list[str] = []
        heads = self._class_heads()
        short: set[str] = set()  # pools a higher-priority step waits for: no overtaking there
        while heads:
            if len(self._running) >= self._cap:
                self._mark_capped(heads, short)
                break
            _, req = heapq.heappop(heads)
            cls = self._classes[req]
            step_id = cls.heap[0][1]
            reason = self._blocker(self._steps[step_id], short)
            if reason is None:
                self._start(step_id, cls)
                started.append(step_id)
                if self._peek(cls) is not None:
                    heapq.heappush(heads, (cls.heap[0][0], req))
                continue
            self._hold(cls, reason)
            if reason.kind is WaitKind.RUNS_ALONE:
                # Reserve: nothing lower in priority starts, so the running steps drain and the
                # limited step gets its turn instead of starving behind a stream of small ones.
                self._mark_rest(
                    heads,
                    WaitReason(
                        WaitKind.RUNS_ALONE,
                        capacity=reason.capacity,
                        limit_step=reason.limit_step or step_id,
                    ),
                )
                break
            short.update(self._short_pools(self._steps[step_id]))
        return started

    def take_wait_changes(self) -> list[tuple[str, WaitReason]]:
        """What to tell about waiting steps since the last call: each step that starts to wait,
        with its reason, and for a changed reason one step of the requirement class.

        A reason belongs to the class (`StepParallel.requirement`): every waiting step with the
        same requirement waits for it. One event per change keeps a flip between "pool" and
        "global cap" O(1) instead of O(steps waiting), which matters at 10,000 steps.
        """
        changes: list[tuple[str, WaitReason]] = []
        for cls in self._classes.values():
            if cls.reason is None:
                continue
            members = [sid for sid in cls.unannounced if sid in self._class_of]  # still waiting
            cls.unannounced.clear()
            if not members and _reason_key(cls.reason) != _reason_key(cls.announced):
                head = self._peek(cls)
                members = [head] if head is not None else []
            cls.announced = cls.reason
            changes.extend((sid, cls.reason) for sid in members)
        return changes

    def pause(self, step_id: str) -> None:
        """A running step's attempt failed and it will be tried again: it gives back its pool
        units and its cap slot now, and waits outside the ready set until `requeue`."""
        step = self._running.pop(step_id)
        self._release(step)
        self._paused[step_id] = step

    def requeue(self, step_id: str) -> None:
        """A paused step's retry is due: it is ready again, before every step that is not a
        due retry itself (it became ready before them)."""
        step = self._paused.pop(step_id)
        self._retried.add(step_id)
        self._enqueue(step)

    def reuse(self, step_id: str) -> FinishEffects:
        """Take a ready step as succeeded without running it (`--resume` found it done in an
        earlier run); returns what followed (steps made ready, skipped by a condition)."""
        if step_id not in self._class_of:
            raise ValueError(f"step {step_id!r} is not ready: it cannot be reused")
        self._remove_ready(step_id)
        self._done.add(step_id)
        effects = FinishEffects()
        self._end(step_id, Completion.SUCCEEDED, "", effects)
        return effects

    def finish(
        self, step_id: str, completion: Completion, *, timed_out: bool = False
    ) -> FinishEffects:
        """Give back what the step held and work out what follows from how it ended
        (`timed_out`: a fatal failure that was its own timeout, for the wording). A paused
        step may be finished too (its retry will not come): it holds nothing to give back."""
        if step_id in self._paused:
            step = self._paused.pop(step_id)
        else:
            step = self._running.pop(step_id)
            self._release(step)
        self._done.add(step_id)
        effects = FinishEffects()
        if completion in _GOOD:
            self._end(step_id, completion, "", effects)
            return effects
        if completion is Completion.CANCELLED and self._stop_status is StepStatus.CANCELLED:
            self._ended[step_id] = completion
            return effects  # the whole run is being cancelled: `abandon` says so for the rest
        failed_how = (
            "was cancelled"
            if completion is Completion.CANCELLED
            else ("timed out" if timed_out else "failed")
        )
        self._end(step_id, completion, f"dependency '{step_id}' {failed_how}", effects)
        if completion is Completion.FATAL_FAILURE:
            if not step.parallel.isolate_errors:
                self._fail_group(step, effects)
            if not self._keep_going:
                self._stop_for_failure(
                    f"not started: '{step_id}' {failed_how} and stopped the run", effects
                )
        return effects

    def stop(self, reason: str, status: StepStatus = StepStatus.SKIPPED) -> None:
        """Start nothing more; steps not started yet end with `status` (see `abandon`)."""
        if self._stop_reason is None:
            self._stop_reason, self._stop_status = reason, status

    def _stop_for_failure(self, reason: str, effects: FinishEffects) -> None:
        """A fatal failure stops the run. When cleanup steps exist, every other step that has not
        started ends now, so that the cleanup steps' dependencies end and they can be judged."""
        if self._stop_reason is not None:
            return
        self.stop(reason)
        if not self._any_exempt:
            return
        for sid in self._steps:
            use = self._use_of.get(sid)
            if sid in self._done or sid in self._running or sid in self._paused:
                continue
            if use is not None and use.exempt:
                continue
            self._done.add(sid)
            self._remove_ready(sid)
            effects.skipped.append(Skip(sid, StepStatus.SKIPPED, reason))
            self._end(sid, Completion.SKIPPED, f"dependency '{sid}' was skipped", effects)

    def abandon(self) -> list[Skip]:
        """Every step that never started, once the run is over: skipped or cancelled."""
        reason = self._stop_reason or "not started"
        left = [
            s
            for s in self._steps
            if s not in self._done and s not in self._running and s not in self._paused
        ]
        for sid in left:
            self._remove_ready(sid)
        self._done.update(left)
        return [Skip(sid, self._stop_status, reason) for sid in left]

    # ---- internals -----------------------------------------------------------------------------

    def _end(self, step_id: str, how: Completion, bad_reason: str, effects: FinishEffects) -> None:
        """`step_id` ended (`how`): its dependents count it, and those it decides are decided.
        A dependent without a status function in its `if` cannot run once a dependency did not
        succeed: it is skipped at once, with `bad_reason`, and so are its own such dependents."""
        stack = [(step_id, how)]
        while stack:
            sid, ended = stack.pop()
            self._ended[sid] = ended
            if ended in (Completion.FATAL_FAILURE, Completion.CANCELLED) and self._any_exempt:
                self._any_failed = True
            for dep in self._plan.dependents[sid]:
                if dep in self._done or dep in self._running or dep in self._paused:
                    continue
                self._deps_left[dep] -= 1
                use = self._use_of.get(dep)
                if ended not in _GOOD and (use is None or not use.waits):
                    self._done.add(dep)
                    self._remove_ready(dep)
                    effects.skipped.append(Skip(dep, StepStatus.SKIPPED, bad_reason))
                    stack.append((dep, Completion.SKIPPED))
                elif self._deps_left[dep] == 0:
                    self._resolve(dep, effects)

    def _ancestors(self, step: Step) -> list[str]:
        """Every step `step` depends on, directly or not."""
        seen: dict[str, None] = {}
        stack = list(step.depends_on)
        while stack:
            sid = stack.pop()
            if sid not in seen:
                seen[sid] = None
                stack.extend(self._steps[sid].depends_on)
        return list(seen)

    def _resolve(self, step_id: str, effects: FinishEffects) -> None:
        """Every dependency of `step_id` has ended: judge its condition, then make it ready."""
        step = self._steps[step_id]
        use = self._use_of.get(step_id)
        if self._any_failed and (use is None or not use.waits):
            # Its implicit success() looks at every ancestor: a cleanup step that ran after a
            # failure does not make what follows it succeed-worthy.
            failed = next(
                (
                    d
                    for d in self._ancestors(step)
                    if self._ended.get(d) in (Completion.FATAL_FAILURE, Completion.CANCELLED)
                ),
                None,
            )
            if failed is not None:
                self._done.add(step_id)
                how = (
                    "failed" if self._ended[failed] is Completion.FATAL_FAILURE else "was cancelled"
                )
                effects.skipped.append(
                    Skip(step_id, StepStatus.SKIPPED, f"dependency '{failed}' {how}")
                )
                self._end(
                    step_id, Completion.SKIPPED, f"dependency '{step_id}' was skipped", effects
                )
                return
        if step.condition is not None and self._judge is not None:
            from wfrun.expressions import ExpressionError

            # An ancestor may still run: a stop ended its dependents before it.
            ended = {d: self._ended[d] for d in self._ancestors(step) if d in self._ended}
            try:
                runs = self._judge(step, Dependencies(ended, self._ended))
            except ExpressionError as error:
                self._done.add(step_id)
                effects.skipped.append(Skip(step_id, StepStatus.FAILED, f"if: {error}"))
                self._end(
                    step_id, Completion.FATAL_FAILURE, f"dependency '{step_id}' failed", effects
                )
                if not self._keep_going:
                    self._stop_for_failure(
                        f"not started: '{step_id}' failed and stopped the run", effects
                    )
                return
            if not runs:
                self._done.add(step_id)
                reason = f"condition false: {step.condition}"
                effects.skipped.append(Skip(step_id, StepStatus.SKIPPED, reason))
                self._end(
                    step_id, Completion.SKIPPED, f"dependency '{step_id}' was skipped", effects
                )
                return
        if self.stopping:
            use = self._use_of.get(step_id)
            if not (self._cleanup_may_start() and use is not None and use.exempt):
                return  # left for `abandon`
        self._enqueue(step)
        effects.ready.append(step_id)

    def _priority(self, step: Step) -> tuple[float, int]:
        # A due retry first (among retries, file order); then sequential runs go in file order
        # and parallel runs put the longest remaining chain first.
        if step.id in self._retried:
            return (-math.inf, step.index)
        if not self._plan.parallel:
            return (0.0, step.index)
        return (-self._plan.remaining[step.id], step.index)

    def _enqueue(self, step: Step) -> None:
        req = step.parallel.requirement
        cls = self._classes.get(req)
        if cls is None:
            cls = self._classes[req] = _ReadyClass(req)
        heapq.heappush(cls.heap, (self._priority(step), step.id))
        cls.unannounced.append(step.id)
        self._class_of[step.id] = req
        self._joined[step.id] = self._scan

    def _peek(self, cls: _ReadyClass) -> str | None:
        while cls.heap and cls.heap[0][1] in self._removed:
            self._removed.discard(heapq.heappop(cls.heap)[1])
        return cls.heap[0][1] if cls.heap else None

    def _class_heads(self) -> list[tuple[tuple[float, int], Requirement]]:
        heads = []
        for req, cls in self._classes.items():
            if self._peek(cls) is not None:
                heads.append((cls.heap[0][0], req))
            else:
                cls.reason = None
        heapq.heapify(heads)
        return heads

    def _hold(self, cls: _ReadyClass, reason: WaitReason) -> None:
        cls.reason, cls.reason_scan = reason, self._scan

    def _mark_rest(self, heads: Iterable[tuple[object, Requirement]], reason: WaitReason) -> None:
        for _, req in heads:
            self._hold(self._classes[req], reason)

    def _mark_capped(self, heads: Iterable[tuple[object, Requirement]], short: set[str]) -> None:
        """The global cap stopped the scan; a class whose pool is full anyway keeps saying so.

        Without this, a class would flip between "pool" and "global cap" on every scan, and each
        flip re-announces all of its steps.
        """
        capped = WaitReason(WaitKind.GLOBAL_CAP, in_use=len(self._running), capacity=self._cap)
        for _, req in heads:
            cls = self._classes[req]
            step = self._steps[cls.heap[0][1]]
            self._hold(cls, self._pool_blocker(step, short) or capped)

    def _blocker(self, step: Step, short: set[str]) -> WaitReason | None:
        """Why `step` cannot start now, or None when it can."""
        running = len(self._running)
        own = step.parallel.effective_max_concurrency
        if own is not None and running + 1 > own:
            return WaitReason(WaitKind.RUNS_ALONE, in_use=running, capacity=own)
        if self._limits:
            tightest = min(self._limits)
            if running + 1 > tightest:
                holder = next(
                    s.id
                    for s in self._running.values()
                    if s.parallel.effective_max_concurrency == tightest
                )
                return WaitReason(
                    WaitKind.RUNS_ALONE, in_use=running, capacity=tightest, limit_step=holder
                )
        return self._pool_blocker(step, short)

    def _pool_blocker(self, step: Step, short: set[str]) -> WaitReason | None:
        for pool, units in sorted(step.parallel.resources.items()):
            if pool in short or self._use[pool] + units > self._capacity[pool]:
                return WaitReason(
                    WaitKind.POOL,
                    pool=pool,
                    in_use=self._use[pool],
                    capacity=self._capacity[pool],
                    held_by=tuple(self._holders[pool]),
                )
        return None

    def _short_pools(self, step: Step) -> set[str]:
        return {
            pool
            for pool, units in step.parallel.resources.items()
            if self._use[pool] + units > self._capacity[pool]
        }

    def _start(self, step_id: str, cls: _ReadyClass) -> None:
        heapq.heappop(cls.heap)
        self._leave_ready(step_id)
        step = self._steps[step_id]
        self._running[step_id] = step
        limit = step.parallel.effective_max_concurrency
        if limit is not None:
            self._limits[limit] += 1
        for pool, units in step.parallel.resources.items():
            self._use[pool] += units
            self._holders[pool][step_id] = None

    def _release(self, step: Step) -> None:
        limit = step.parallel.effective_max_concurrency
        if limit is not None:
            self._limits[limit] -= 1
            if not self._limits[limit]:
                del self._limits[limit]
        for pool, units in step.parallel.resources.items():
            self._use[pool] -= units
            del self._holders[pool][step.id]

    def _remove_ready(self, step_id: str) -> None:
        if step_id in self._class_of:
            self._leave_ready(step_id)
            self._removed.add(step_id)

    def _leave_ready(self, step_id: str) -> None:
        """Fix why the step waited: its class's reason, if a scan held the class back while the
        step was in it (a reason set before the step joined is about other steps)."""
        cls = self._classes[self._class_of.pop(step_id)]
        joined = self._joined.pop(step_id)
        if cls.reason is not None and cls.reason_scan > joined:
            self._waited[step_id] = cls.reason

    def _fail_group(self, step: Step, effects: FinishEffects) -> None:
        """`isolateErrors: false`: the failing step takes its parallel group down with it."""
        group = self._plan.group_of[step.id]
        reason = f"group sibling '{step.id}' failed (isolateErrors: false)"
        for sid in self._plan.groups[group]:
            if sid in self._running or sid in self._paused:
                effects.cancel.append(Skip(sid, StepStatus.CANCELLED, reason))
            elif sid not in self._done:
                self._done.add(sid)
                self._remove_ready(sid)
                effects.skipped.append(Skip(sid, StepStatus.SKIPPED, reason))
                self._end(sid, Completion.SKIPPED, f"dependency '{sid}' was skipped", effects)
