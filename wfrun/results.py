"""What a run produced: step outcomes, step results, run statistics, and the report of SPEC §5.

Times inside the core are seconds (floats, offsets from the run's start); the report converts them
to whole milliseconds because that is the JSON format's convention.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from wfrun.bottleneck import Bottleneck
from wfrun.waits import WaitKind, WaitReason

# The default of a record's mapping field: shared by every record, so it must not change.
_NO_ENTRIES: Mapping[str, Any] = MappingProxyType({})

REPORT_SCHEMA_VERSION = 1


class StepStatus(enum.Enum):
    """The one final status every step ends with."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class RunStatus(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class StepOutcome(NamedTuple):
    """What an executor returns for one step that it started. A failure is a value, not an error."""

    status: StepStatus
    reason: str | None = None  # human text when the step did not succeed
    exit_code: int | None = None  # None when killed by a signal or never started
    signal: int | None = None  # the signal that ended the process, if any
    output_tail: str = ""  # the last lines (up to 50) of combined stdout+stderr
    output: Any = None  # an agent step's reply; None for script steps
    command: str | None = None  # what was run, for failure digests
    where: str | None = None  # where it ran, when not on this machine
    log_error: str | None = None  # why its log is missing or incomplete
    outputs: Mapping[str, str] = _NO_ENTRIES  # what it wrote to WFRUN_OUTPUT
    # The command could not be started, or a referenced output was unset: never retried
    # (`wfrun.retry.FailureKind.NOT_STARTABLE`).
    not_startable: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status is StepStatus.SUCCEEDED


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


class AttemptResult(NamedTuple):
    """One attempt of a step that ran (SPEC §11.1). Times are seconds from the run's start."""

    status: StepStatus
    start_time: float
    end_time: float
    exit_code: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "exitCode": self.exit_code,
            "startTime": ms(self.start_time),
            "endTime": ms(self.end_time),
            "reason": self.reason,
        }


@dataclass(slots=True, eq=False)
class StepResult:
    """A step's part of the run result. Times are seconds from the run's start."""

    step_id: str
    status: StepStatus
    parallel_group: int
    reason: str | None = None
    allowed_failure: bool = False
    ready_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    wait_reason: str | None = None  # the last reason it waited before starting, as shown
    exit_code: int | None = None
    signal: int | None = None
    log_file: str | None = None
    output_tail: str = ""
    output: Any = None
    command: str | None = None
    wait: WaitReason | None = None  # the same reason, as the dispatcher decided it
    log_error: str | None = None  # why its log is missing or incomplete (a full disk, say)
    outputs: dict[str, str] = field(default_factory=dict)  # SPEC §10.1
    # Every attempt, the last one included (empty for a step that never ran); start_time is the
    # first attempt's start and end_time the last one's end.
    attempt_results: tuple[AttemptResult, ...] = ()
    reused: bool = False  # taken from an earlier run by --resume, not run (SPEC §11.2)
    worker: str | None = None  # the Dask worker that ran it (--executor dask)

    def __post_init__(self) -> None:
        if self.wait is not None and self.wait_reason is None:
            self.wait_reason = str(self.wait)

    @property
    def waited_on_pool(self) -> str | None:
        """The pool it last waited for, if that is why it waited."""
        if self.wait is not None and self.wait.kind is WaitKind.POOL:
            return self.wait.pool
        return None

    @property
    def success(self) -> bool:
        return self.status is StepStatus.SUCCEEDED

    @property
    def attempts(self) -> int:
        return len(self.attempt_results)

    @property
    def duration(self) -> float | None:
        """Seconds it ran, or None when it never started."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    @property
    def execution_time(self) -> int | None:
        """Milliseconds it ran (the name the original API uses)."""
        return ms(self.duration)

    @property
    def wait_time(self) -> float | None:
        """Seconds between ready and started."""
        if self.ready_time is None or self.start_time is None:
            return None
        return max(0.0, self.start_time - self.ready_time)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "status": self.status.value,
            "success": self.success,
            "reason": self.reason,
            "allowedFailure": self.allowed_failure,
            "parallelGroup": self.parallel_group,
        }
        if self.start_time is not None:
            d["executionTime"] = self.execution_time
            d["startTime"] = ms(self.start_time)
            d["endTime"] = ms(self.end_time)
        d["readyTime"] = ms(self.ready_time)
        d["waitTime"] = ms(self.wait_time)
        d["waitReason"] = self.wait_reason
        d["exitCode"] = self.exit_code
        d["signal"] = self.signal
        d["command"] = self.command
        d["logFile"] = self.log_file
        if self.log_error is not None:
            d["logError"] = self.log_error
        d["outputTail"] = self.output_tail
        d["output"] = self.output
        d["outputs"] = dict(self.outputs)
        d["attempts"] = self.attempts
        d["attemptResults"] = [a.to_dict() for a in self.attempt_results]
        d["reused"] = self.reused
        if self.worker is not None:
            d["worker"] = self.worker
        return d


class PoolStats(NamedTuple):
    """How a resource pool was used during a run (the report's `parallelStats.resources`)."""

    capacity: int
    peak: int
    busy_time: float  # unit-seconds in use
    wait_time: float  # step-seconds spent waiting on this pool
    utilization: float  # time-weighted mean units in use / capacity, 0..1
    usage: tuple[tuple[float, int], ...] = ()  # (seconds, units in use from then on)

    def to_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "peak": self.peak,
            "busyTime": ms(self.busy_time),
            "waitTime": ms(self.wait_time),
            "utilization": round(self.utilization, 4),
            "usage": [[ms(at), units] for at, units in self.usage],
        }


class ParallelStats(NamedTuple):
    """Measured statistics of a run: groups, peak concurrency, pools, critical path, speedup."""

    total_groups: int
    max_concurrent_steps: int
    resource_utilization: dict[str, float]
    resources: dict[str, PoolStats]
    critical_path: list[str]
    critical_path_time: float  # seconds
    sequential_time: float  # seconds: the sum of every step's execution time
    speedup: float  # sequential_time / wall time
    bottleneck: Bottleneck | None = None  # what held up the run's end most (wfrun.bottleneck)

    def to_dict(self) -> dict[str, Any]:
        return {
            "totalGroups": self.total_groups,
            "maxConcurrentSteps": self.max_concurrent_steps,
            "resourceUtilization": {k: round(v, 4) for k, v in self.resource_utilization.items()},
            "resources": {k: v.to_dict() for k, v in self.resources.items()},
            "criticalPath": list(self.critical_path),
            "criticalPathTime": ms(self.critical_path_time),
            "sequentialTime": ms(self.sequential_time),
            "speedup": round(self.speedup, 3),
            "bottleneck": self.bottleneck.to_dict() if self.bottleneck else None,
        }


@dataclass(slots=True, eq=False)
class RunResult:
    """The outcome of `WorkflowRunner.execute` and the source of report.json."""

    run_id: str
    workflow_name: str
    workflow_version: str | None
    workflow_file: str | None
    status: RunStatus
    parallel: bool
    max_concurrency: int
    execution_time_s: float
    step_results: dict[str, StepResult]
    parallel_stats: ParallelStats | None
    error: str | None = None
    run_dir: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None  # ISO 8601 wall-clock time the run started
    resumed_from: str | None = None  # the run id `--resume` took finished steps from

    @property
    def success(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    @property
    def execution_time(self) -> int:
        """Milliseconds the whole run took."""
        return round(self.execution_time_s * 1000)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schemaVersion": REPORT_SCHEMA_VERSION,
            "runId": self.run_id,
            "workflow": {
                "name": self.workflow_name,
                "version": self.workflow_version,
                "file": self.workflow_file,
                "metadata": dict(self.metadata),
            },
            "status": self.status.value,
            "success": self.success,
            "error": self.error,
            "startedAt": self.started_at,
            "parallel": self.parallel,
            "maxConcurrency": self.max_concurrency,
            "executionTime": self.execution_time,
            "runDir": self.run_dir,
            "stepResults": {k: v.to_dict() for k, v in self.step_results.items()},
            "parallelStats": self.parallel_stats.to_dict() if self.parallel_stats else None,
            "resumedFrom": self.resumed_from,
        }
