"""What script and agent steps share: the environment and the working directory of a step."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from wfrun.executors.base import StepContext
from wfrun.masking import Masker
from wfrun.model import AgentConfig, ScriptConfig
from wfrun.outputs import (
    OUTPUTS_DIR,
    OutputError,
    create_output_file,
    left_empty,
    read_outputs,
)
from wfrun.results import StepOutcome, StepStatus


def step_environment(
    context: StepContext, *layers: Mapping[str, str], output_file: Path | None = None
) -> dict[str, str]:
    """Base env + workflow env + `layers` (later wins) + the WFRUN_* variables, which win."""
    env = dict(context.env)
    env.update(context.workflow.env)
    for layer in layers:
        env.update(layer)
    env["WFRUN_RUN_ID"] = context.run_id
    env["WFRUN_STEP_ID"] = context.step.id
    env["WFRUN_WORKFLOW"] = context.workflow.name
    # Absolute, with one getcwd at most for both (Path.absolute asks for every path).
    here: str | None = None
    for name, path in (("WFRUN_RUN_DIR", context.run_dir), ("WFRUN_OUTPUT", output_file)):
        if path is not None:
            if not path.is_absolute():
                here = here or os.getcwd()
                path = Path(here, path)
            env[name] = str(path)
    return env


def new_output_file(context: StepContext) -> Path | None:
    """This attempt's own empty outputs file (SPEC §10.1), under the run directory."""
    if context.run_dir is None:
        return None
    return create_output_file(context.run_dir / OUTPUTS_DIR, context.step.id)


def with_outputs(
    outcome: StepOutcome, output_file: Path | None, context: StepContext
) -> StepOutcome:
    """The outcome with the outputs the step wrote; a malformed file fails a step that succeeded."""
    if output_file is None or left_empty(output_file):
        return outcome  # most steps set nothing
    if context.masker:
        _mask_file(output_file, context.masker)
    if outcome.status is not StepStatus.SUCCEEDED:
        return outcome
    try:
        outputs = read_outputs(output_file)
    except OutputError as error:
        reason = f"{error}" if context.masker is None else context.masker.text(str(error))
        return outcome._replace(status=StepStatus.FAILED, reason=reason)
    if not outputs:
        return outcome
    if context.masker:
        outputs = {name: context.masker.text(value) for name, value in outputs.items()}
    return outcome._replace(outputs={**outputs, **outcome.outputs})


def _mask_file(path: Path, masker: Masker) -> None:
    """The step wrote the file, but it stays in the run directory: no secret may stay in it."""
    try:
        data = path.read_bytes()
        masked = masker.data(data)
        if masked != data:
            path.write_bytes(masked)
    except OSError:
        pass  # gone or unreadable: reading its outputs says so


def working_directory(context: StepContext, config: ScriptConfig | AgentConfig) -> Path:
    """The step's directory: relative to the workflow file's directory, which is the default."""
    base = context.workflow.base_dir
    if config.working_directory is None:
        return base
    return base / config.working_directory
