"""Why a ready step does not start yet: decided by the dispatcher, shown by every view."""

import enum
from typing import NamedTuple


class WaitKind(enum.Enum):
    DEPENDENCY = "dependency"  # a dependency has not finished
    GLOBAL_CAP = "global_cap"  # the run's concurrency cap is reached
    RUNS_ALONE = "runs_alone"  # this step, or a running one, tolerates too few steps at once
    POOL = "pool"  # a pool it needs has too few free units
    STOPPING = "stopping"  # the run is stopping after a failure, timeout or interrupt
    RETRY = "retry"  # an attempt failed; the next one starts after a delay (holding nothing)


class WaitReason(NamedTuple):
    """Why a step that could otherwise start does not start yet."""

    kind: WaitKind
    pool: str | None = None
    in_use: int = 0
    capacity: int = 0
    held_by: tuple[str, ...] = ()  # the steps holding the pool, or the steps it needs
    limit_step: str | None = None  # RUNS_ALONE: the other step whose limit applies (None: own)
    attempt: int = 0  # RETRY: the attempt to come, of `attempts`, after `delay` seconds
    attempts: int = 0
    delay: float = 0.0
    due: float = 0.0  # RETRY: when it is due, in seconds from the run's start

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
        if self.kind is WaitKind.RETRY:
            return f"retry {self.attempt}/{self.attempts} in {_seconds(self.delay)}"
        return "run is stopping"


def _seconds(delay: float) -> str:
    """`4s`, `1.5s`, `2m5s`: short, for a countdown."""
    from wfrun.durations import format_duration

    if delay < 10:
        return f"{max(0.0, delay):.1f}".rstrip("0").rstrip(".") + "s"
    return format_duration(delay)
