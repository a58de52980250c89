"""Facts the scheduler reports while a run goes on. Reporters fold them; the core never prints.

Every event carries `at`: seconds since the run started, from the scheduler's injected clock; the
`at` of successive events never decreases. All events are delivered to reporters from one thread,
in order: not the scheduler's loop, but a delivery thread of its own (`wfrun.delivery`), so that no
display, however slow, can hold up a step's end, a timeout or Ctrl-C.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

from wfrun.results import AttemptResult, RunResult, StepResult
from wfrun.waits import WaitKind, WaitReason

if TYPE_CHECKING:
    from wfrun.model import Workflow
    from wfrun.planner import Plan


class RunStarted(NamedTuple):
    """The run begins: the workflow, its plan, and where its logs and report go."""

    workflow: "Workflow"
    plan: "Plan"
    run_id: str
    run_dir: str | None
    at: float = 0.0


class StepReady(NamedTuple):
    """All dependencies are done; the step may start as soon as the limits allow."""

    step_id: str
    at: float


class StepWaiting(NamedTuple):
    """A ready step cannot start now.

    Sent when a step starts to wait, and when the reason of its class changes: then once, for
    one step, and the reason holds for every waiting step with the same
    `StepParallel.requirement` (pools, units and step limit), since they wait for the same thing.
    Numbers inside the reason (units in use, holders) may be stale by the time it is shown.
    """

    step_id: str
    reason: WaitReason
    at: float


class StepStarted(NamedTuple):
    """A step's process (or attempt) started, holding `resources` from its pools."""

    step_id: str
    group: int
    resources: Mapping[str, int]
    at: float
    log_file: str | None = None
    attempt: int = 1  # 2 and up for a retry (of `step.max_attempts`)


class StepRetrying(NamedTuple):
    """An attempt of a step failed and it will be tried again: it holds no pool units and no
    cap slot until its next attempt, `attempt` of `max_attempts`, is due `delay` seconds on."""

    step_id: str
    failed: AttemptResult  # the attempt that just failed
    attempt: int
    max_attempts: int
    delay: float
    at: float

    @property
    def reason(self) -> WaitReason:
        """What the step waits for until the retry is due (`retry 2/3 in 4s`)."""
        return WaitReason(
            WaitKind.RETRY,
            attempt=self.attempt,
            attempts=self.max_attempts,
            delay=self.delay,
            due=self.at + self.delay,
        )


class StepOutput(NamedTuple):
    """Complete lines a running step printed (stdout and stderr combined), in one chunk.

    Output is coalesced for displays: a chunk holds the lines printed since the last one, at most
    a bounded number of them, each cut to a bounded length. `dropped` counts the lines printed in
    between that no display will see (every byte is still in the step's log).
    """

    step_id: str
    lines: tuple[str, ...]
    at: float
    dropped: int = 0


class StepFinished(NamedTuple):
    """A step reached its final status (including skipped and cancelled steps that never ran)."""

    step_id: str
    result: StepResult
    at: float


class RunStopping(NamedTuple):
    """The run was told to stop (Ctrl-C, SIGTERM, SIGHUP, its deadline): nothing new starts, and
    the running steps get SIGTERM, then SIGKILL after `grace_period` (at once when `forced`)."""

    reason: str
    running: tuple[str, ...]
    grace_period: float
    forced: bool
    at: float


class RunFinished(NamedTuple):
    """The run is over: its result, and notes for the user (a journal that broke, say)."""

    result: RunResult
    at: float
    notes: tuple[str, ...] = ()


Event = (
    RunStarted
    | StepReady
    | StepWaiting
    | StepStarted
    | StepRetrying
    | StepOutput
    | StepFinished
    | RunStopping
    | RunFinished
)

__all__ = [
    "Event",
    "Reporter",
    "RunFinished",
    "RunStarted",
    "RunStopping",
    "StepFinished",
    "StepOutput",
    "StepReady",
    "StepRetrying",
    "StepStarted",
    "StepWaiting",
    "WaitKind",
    "WaitReason",
]


class Reporter(Protocol):
    """Receives every event of a run, in order, from a single thread."""

    def handle(self, event: Event) -> None: ...
