"""`type: script` steps: a command run from an argument list, or through /bin/sh with `shell`."""

from __future__ import annotations

from wfrun.executors.base import StepContext
from wfrun.executors.environment import step_environment, working_directory
from wfrun.executors.process import (
    ProcessResult,
    ProcessSpec,
    StartErrorKind,
    outcome_of,
    process_status,
    run_process,
)
from wfrun.model import ScriptConfig
from wfrun.results import StepOutcome, StepStatus

SHELL_HINT = "it contains a space: to run it through a shell, set shell: true"


class ScriptExecutor:
    """Runs a script step's process and turns how it ended into a StepOutcome."""

    def execute(self, context: StepContext) -> StepOutcome:
        config = context.step.config
        if not isinstance(config, ScriptConfig):
            return StepOutcome(StepStatus.FAILED, reason="a script step needs a script config")
        result = run_process(script_spec(context, config), context)
        return script_outcome(result, context, config)


def script_spec(context: StepContext, config: ScriptConfig) -> ProcessSpec:
    return ProcessSpec(
        argv=config.argv(),
        cwd=working_directory(context, config),
        env=step_environment(context, config.env),
        timeout=config.timeout,
    )


def script_outcome(
    result: ProcessResult, context: StepContext, config: ScriptConfig
) -> StepOutcome:
    status, reason = process_status(result, context.cancel, config.timeout)
    if status is StepStatus.FAILED and _needs_shell_hint(result, config):
        reason = f"{reason} ({SHELL_HINT})"
    return outcome_of(result, status, reason, config.display())


def _needs_shell_hint(result: ProcessResult, config: ScriptConfig) -> bool:
    error = result.start_error
    return (
        error is not None
        and error.kind is StartErrorKind.COMMAND_NOT_FOUND
        and not config.shell
        and " " in config.command
    )
