"""Facts the scheduler reports while a run goes on. Reporters fold them; the core never prints.

Every event carries `at`: seconds since the run started, from the scheduler's injected clock.
All events are delivered to reporters from one thread (the scheduler's loop), in order.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from wfrun.results import RunResult, StepResult

if TYPE_CHECKING:
    from wfrun.model import Workflow
    from wfrun.planner import Plan


class WaitKind(enum.Enum):
    DEPENDENCY = "dependency"  # a dependency has not finished
    GLOBAL_CAP = "global_cap"  # the run's concurrency cap is reached
    RUNS_ALONE = "runs_alone"  # this step, or a running one, tolerates too few steps at once
    POOL = "pool"  # a pool it needs has too few free units
    STOPPING = "stopping"  # the run is stopping after a failure, timeout or interrupt


@dataclass(frozen=True, slots=True)
class WaitReason:
    """Why a step that could otherwise start does not start yet."""

    kind: WaitKind
    pool: str | None = None
    in_use: int = 0
    capacity: int = 0
    held_by: tuple[str, ...] = ()  # the steps holding the pool, or the steps it needs
    limit_step: str | None = None  # RUNS_ALONE: the other step whose limit applies (None: own)

    def __str__(self) -> str:
        if self.kind is WaitKind.DEPENDENCY:
            return "needs " + ", ".join(self.held_by)
        if self.kind is WaitKind.GLOBAL_CAP:
            return f"global cap {self.in_use}/{self.capacity}"
        if self.kind is WaitKind.POOL:
            held = f" held by {', '.join(self.held_by)}" if self.held_by else ""
            return f"pool {self.pool} {self.in_use}/{self.capacity}{held}"
        if self.kind is WaitKind.RUNS_ALONE:
            if self.limit_step is None:
                if self.capacity <= 1:
                    return "runs alone"
                return f"runs with at most {self.capacity} steps ({self.in_use} running)"
            if self.capacity <= 1:
                return f"{self.limit_step} runs alone"
            return f"{self.limit_step} allows at most {self.capacity} running"
        return "run is stopping"


@dataclass(frozen=True, slots=True)
class RunStarted:
    workflow: Workflow
    plan: Plan
    run_id: str
    run_dir: str | None
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class StepReady:
    """All dependencies are done; the step may start as soon as the limits allow."""

    step_id: str
    at: float


@dataclass(frozen=True, slots=True)
class StepWaiting:
    """A ready step cannot start now.

    Sent when a step starts to wait, and when the reason of its class changes: then once, for
    one step, and the reason holds for every waiting step with the same
    `StepParallel.requirement` (pools, units and step limit), since they wait for the same thing.
    Numbers inside the reason (units in use, holders) may be stale by the time it is shown.
    """

    step_id: str
    reason: WaitReason
    at: float


@dataclass(frozen=True, slots=True)
class StepStarted:
    step_id: str
    group: int
    resources: Mapping[str, int]
    at: float
    log_file: str | None = None


@dataclass(frozen=True, slots=True)
class StepOutput:
    """Complete lines a running step printed (stdout and stderr combined), in one chunk."""

    step_id: str
    lines: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A step reached its final status (including skipped and cancelled steps that never ran)."""

    step_id: str
    result: StepResult
    at: float


@dataclass(frozen=True, slots=True)
class RunFinished:
    result: RunResult
    at: float
    notes: tuple[str, ...] = field(default=())


Event = RunStarted | StepReady | StepWaiting | StepStarted | StepOutput | StepFinished | RunFinished


class Reporter(Protocol):
    """Receives every event of a run, in order, from a single thread."""

    def handle(self, event: Event) -> None: ...
