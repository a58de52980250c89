"""Executors run one step each: one module per step kind, plus the dry run."""

from wfrun.executors.base import CancelToken, Executor, StepContext

__all__ = ["CancelToken", "Executor", "StepContext"]
