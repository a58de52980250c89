"""`--dry-run`: walks the schedule without running anything (Ninja's DryRunCommandRunner)."""

from __future__ import annotations

from collections.abc import Callable

from wfrun.executors.agent import AgentError, agent_call
from wfrun.executors.base import StepContext
from wfrun.model import AgentConfig, ScriptConfig
from wfrun.results import StepOutcome, StepStatus


class DryRunExecutor:
    """Succeeds at once for every step, saying what it would have run."""

    # Nothing runs, so no output is ever set: references are shown as written.
    resolves_references = False

    def start(self, context: StepContext, on_done: Callable[[StepOutcome], None]) -> bool:
        """Ends the step at once, on the scheduler's thread: a worker thread per step would
        cost more than the step (`start_executor`)."""
        on_done(self.execute(context))
        return True

    def execute(self, context: StepContext) -> StepOutcome:
        if context.cancel.cancelled:
            return StepOutcome(context.cancel.status, reason=context.cancel.reason)
        config = context.step.config
        if isinstance(config, ScriptConfig):
            command = config.display()
            return _would(f"would run {command}", command)
        if isinstance(config, AgentConfig):
            return _would(f"would send prompt to agent {config.agent!r}", _agent_command(context))
        return StepOutcome(StepStatus.FAILED, reason="unknown step config")


def _would(what: str, command: str | None) -> StepOutcome:
    return StepOutcome(StepStatus.SUCCEEDED, output_tail=f"dry run: {what}", command=command)


def _agent_command(context: StepContext) -> str | None:
    try:
        return agent_call(context).command
    except AgentError:
        return None  # validation reports an unknown agent; a dry run has nothing to add
