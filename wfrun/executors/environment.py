"""What script and agent steps share: the environment and the working directory of a step."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from wfrun.executors.base import StepContext
from wfrun.model import AgentConfig, ScriptConfig


def step_environment(context: StepContext, *layers: Mapping[str, str]) -> dict[str, str]:
    """Base env + workflow env + `layers` (later wins) + the WFRUN_* variables, which win."""
    env = dict(context.env)
    env.update(context.workflow.env)
    for layer in layers:
        env.update(layer)
    env["WFRUN_RUN_ID"] = context.run_id
    env["WFRUN_STEP_ID"] = context.step.id
    env["WFRUN_WORKFLOW"] = context.workflow.name
    return env


def working_directory(context: StepContext, config: ScriptConfig | AgentConfig) -> Path:
    """The step's directory: relative to the workflow file's directory, which is the default."""
    base = context.workflow.base_dir
    if config.working_directory is None:
        return base
    return base / config.working_directory
