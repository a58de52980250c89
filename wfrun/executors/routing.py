"""Routes each step to the executor for its type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from wfrun.executors.base import Executor, StepContext, close_executor, start_executor
from wfrun.executors.process import ProcessRunner
from wfrun.executors.script import ScriptExecutor
from wfrun.model import StepType
from wfrun.results import StepOutcome, StepStatus

if TYPE_CHECKING:
    from wfrun.executors.supervisor import SupervisingLoop


class TypedExecutor:
    """An Executor that hands each step to the executor registered for its StepType."""

    def __init__(self, executors: Mapping[StepType, Executor]) -> None:
        self.executors = dict(executors)

    def execute(self, context: StepContext) -> StepOutcome:
        executor = self.executors.get(context.step.type)
        if executor is None:
            reason = f"no executor for steps of type {context.step.type.value!r}"
            return StepOutcome(StepStatus.FAILED, reason=reason)
        return executor.execute(context)

    def start(self, context: StepContext, on_done: Callable[[StepOutcome], None]) -> bool:
        """Start the step without a thread if its type's executor can (see `start_executor`)."""
        executor = self.executors.get(context.step.type)
        return executor is not None and start_executor(executor, context, on_done)

    def drive(self) -> SupervisingLoop | None:
        """A loop the scheduler's thread may run itself (`LocalProcessRunner.drive`): the script
        executor's, the one that `start`s steps."""
        drive = getattr(self.executors.get(StepType.SCRIPT), "drive", None)
        return None if drive is None else drive()

    def close(self) -> None:
        for executor in self.executors.values():
            close_executor(executor)


class _AgentsOnFirstUse:
    """The AgentExecutor, built (and its module imported) for the first agent step: a run of
    scripts only does not pay for it at start-up."""

    def __init__(self, runner: ProcessRunner) -> None:
        self._runner = runner
        self._executor: Executor | None = None

    def execute(self, context: StepContext) -> StepOutcome:
        if self._executor is None:
            from wfrun.executors.agent import AgentExecutor

            self._executor = AgentExecutor(self._runner)
        return self._executor.execute(context)

    def close(self) -> None:
        if self._executor is not None:
            close_executor(self._executor)


def default_executor(runner: ProcessRunner | None = None) -> TypedExecutor:
    """Script steps to ScriptExecutor, agent steps to AgentExecutor, both with one runner
    (a LocalProcessRunner unless another is given)."""
    if runner is None:
        from wfrun.executors.local_runner import LocalProcessRunner

        runner = LocalProcessRunner()
    return TypedExecutor(
        {StepType.SCRIPT: ScriptExecutor(runner), StepType.AGENT: _AgentsOnFirstUse(runner)}
    )
