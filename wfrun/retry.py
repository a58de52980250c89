"""Retries (SPEC §11.1): which failures a step's `retry:` policy takes another attempt at, and
how long it waits first. Pure: the scheduler holds the clock and the random source.
"""

import enum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import random

    from wfrun.results import StepOutcome

DEFAULT_DELAY = 1.0
DEFAULT_BACKOFF = 2.0
JITTER = 0.1  # up to 10% more than the computed delay, so retries of many steps spread out


class FailureKind(enum.Enum):
    """How an attempt failed, as far as retrying cares (the words of `retry.on`)."""

    FAILED = "failed"  # a non-zero exit or a signal
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"  # stopped by wfrun: never retried
    # The command could not be started, or a referenced output was unset: the same again would
    # fail the same way, so it is never retried.
    NOT_STARTABLE = "not_startable"


DEFAULT_ON = frozenset({FailureKind.FAILED, FailureKind.TIMED_OUT})
NEVER_RETRIED = frozenset({FailureKind.CANCELLED, FailureKind.NOT_STARTABLE})
# The words `retry.on` accepts besides exit codes.
RETRY_ON_WORDS = (FailureKind.FAILED.value, FailureKind.TIMED_OUT.value)


class RetryPolicy(NamedTuple):
    """A step's effective `retry:` (its own, or the workflow's `defaults.retry`)."""

    max_attempts: int = 1  # every attempt counts: 1 means no retry
    delay: float = DEFAULT_DELAY  # seconds before the second attempt
    backoff: float = DEFAULT_BACKOFF  # each further delay is this many times the one before
    max_delay: float | None = None  # no delay is longer than this
    kinds: frozenset[FailureKind] = DEFAULT_ON
    exit_codes: frozenset[int] = frozenset()  # set: only these exits

    def retries(self, kind: FailureKind, exit_code: int | None) -> bool:
        """Whether a failure of this kind (and exit code) is worth another attempt."""
        if kind is FailureKind.FAILED and exit_code is not None and self.exit_codes:
            # Exit codes listed: an exit is retried only when it is one of them (a signal is
            # still covered by `failed`).
            return exit_code in self.exit_codes
        return kind in self.kinds and kind not in NEVER_RETRIED

    def delay_before(self, attempt: int, rng: "random.Random | None" = None) -> float:
        """Seconds to wait before attempt `attempt` (2 for the first retry), jitter included."""
        base = self.delay * self.backoff ** max(0, attempt - 2)
        if self.max_delay is not None:
            base = min(base, self.max_delay)
        if rng is None:
            import random  # only a run with retries needs it: spared at start-up

            rng = random.Random()
        return base * (1.0 + JITTER * rng.random())


def failure_kind(outcome: "StepOutcome") -> FailureKind | None:
    """How the attempt failed; None when it succeeded."""
    from wfrun.results import StepStatus  # not at import: validate needs no results

    if outcome.status is StepStatus.SUCCEEDED:
        return None
    if outcome.not_startable:
        return FailureKind.NOT_STARTABLE
    if outcome.status is StepStatus.TIMED_OUT:
        return FailureKind.TIMED_OUT
    if outcome.status is StepStatus.FAILED:
        return FailureKind.FAILED
    return FailureKind.CANCELLED


def should_retry(policy: RetryPolicy | None, outcome: "StepOutcome", attempt: int) -> bool:
    """Whether attempt `attempt` (1-based), which ended with `outcome`, gets another one."""
    if policy is None or attempt >= policy.max_attempts:
        return False
    kind = failure_kind(outcome)
    return kind is not None and policy.retries(kind, outcome.exit_code)
