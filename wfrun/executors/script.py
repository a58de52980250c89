"""`type: script` steps: a command run from an argument list, or through /bin/sh with `shell`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from wfrun.executors.base import StepContext
from wfrun.executors.environment import (
    new_output_file,
    step_environment,
    with_outputs,
    working_directory,
)
from wfrun.executors.process import (
    ProcessRunner,
    ProcessSpec,
    StartErrorKind,
    StartingRunner,
    process_status,
)
from wfrun.executors.step_output import StepRun, outcome_of, run_step_process, start_step_process
from wfrun.model import ScriptConfig
from wfrun.results import StepOutcome, StepStatus

SHELL_HINT = "it contains a space: to run it through a shell, set shell: true"

if TYPE_CHECKING:
    from wfrun.executors.supervisor import SupervisingLoop


class ScriptExecutor:
    """Runs a script step's process with its runner (here or elsewhere) and turns how it ended
    into a StepOutcome."""

    def __init__(self, runner: ProcessRunner | None = None) -> None:
        if runner is None:
            from wfrun.executors.local_runner import LocalProcessRunner

            runner = LocalProcessRunner()
        self.runner = runner

    def execute(self, context: StepContext) -> StepOutcome:
        config = context.step.config
        if not isinstance(config, ScriptConfig):
            return StepOutcome(StepStatus.FAILED, reason="a script step needs a script config")
        try:
            output_file = new_output_file(context)
        except OSError as exc:
            return StepOutcome(StepStatus.FAILED, reason=f"cannot create its outputs file: {exc}")
        run = run_step_process(self.runner, script_spec(context, config, output_file), context)
        return with_outputs(script_outcome(run, context, config), output_file, context)

    def start(self, context: StepContext, on_done: Callable[[StepOutcome], None]) -> bool:
        """Start the step and return at once, when the runner can (`execute` without a thread);
        `on_done` gets the outcome on the runner's thread. False: call `execute` instead."""
        config = context.step.config
        if not isinstance(config, ScriptConfig) or not hasattr(self.runner, "start"):
            return False
        runner = cast(StartingRunner, self.runner)
        try:
            output_file = new_output_file(context)
        except OSError as exc:
            on_done(StepOutcome(StepStatus.FAILED, reason=f"cannot create its outputs file: {exc}"))
            return True
        spec = script_spec(context, config, output_file)

        def finish(run: StepRun) -> StepOutcome:
            return with_outputs(script_outcome(run, context, config), output_file, context)

        start_step_process(runner, spec, context, finish, on_done)
        return True

    def drive(self) -> SupervisingLoop | None:
        """The runner's loop for the calling thread to run itself, if it has one (see
        `LocalProcessRunner.drive`); None otherwise."""
        drive = getattr(self.runner, "drive", None)
        return None if drive is None else drive()

    def close(self) -> None:
        self.runner.close()


def script_spec(
    context: StepContext, config: ScriptConfig, output_file: Path | None = None
) -> ProcessSpec:
    return ProcessSpec(
        argv=config.argv(),
        cwd=working_directory(context, config),
        env=step_environment(context, config.env, output_file=output_file),
        timeout=config.timeout,
        grace_period=context.grace_period,
    )


def script_outcome(run: StepRun, context: StepContext, config: ScriptConfig) -> StepOutcome:
    status, reason = process_status(run.process, context.cancel, config.timeout)
    if status is StepStatus.FAILED and _needs_shell_hint(run, config):
        reason = f"{reason} ({SHELL_HINT})"
    return outcome_of(run, status, reason, config.display())


def _needs_shell_hint(result: StepRun, config: ScriptConfig) -> bool:
    error = result.start_error
    return (
        error is not None
        and error.kind is StartErrorKind.COMMAND_NOT_FOUND
        and not config.shell
        and " " in config.command
    )
