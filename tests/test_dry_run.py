"""DryRunExecutor: runs nothing, succeeds at once, says what it would have run."""

from __future__ import annotations

from pathlib import Path

from wfrun.executors.base import CancelToken, StepContext
from wfrun.executors.dry_run import DryRunExecutor
from wfrun.model import Agent, AgentConfig, ScriptConfig, Step, StepType, Workflow, frozen_map
from wfrun.results import StepStatus

REVIEWER = Agent(
    name="reviewer",
    command=("claude", "-p", "--model", "{param.model}"),
    parameters=frozen_map({"model": "sonnet"}),
)


def make_context(step: Step, tmp_path: Path, token: CancelToken | None = None) -> StepContext:
    workflow = Workflow(
        name="ci", steps=(step,), agents=frozen_map({"reviewer": REVIEWER}), base_dir=tmp_path
    )
    return StepContext("run-1", workflow, step, {}, token or CancelToken(), tmp_path / "s.log")


def script_step(config: ScriptConfig) -> Step:
    return Step(id="build", name="build", type=StepType.SCRIPT, config=config)


def test_script_step_runs_nothing(tmp_path: Path) -> None:
    step = script_step(ScriptConfig("touch", args=("ran",)))
    outcome = DryRunExecutor().execute(make_context(step, tmp_path))
    assert outcome.status is StepStatus.SUCCEEDED
    assert outcome.output_tail == "dry run: would run touch ran"
    assert outcome.command == "touch ran"
    assert not (tmp_path / "ran").exists() and not (tmp_path / "s.log").exists()


def test_shell_step_shows_the_command(tmp_path: Path) -> None:
    step = script_step(ScriptConfig("npm run build && touch ran", shell=True))
    outcome = DryRunExecutor().execute(make_context(step, tmp_path))
    assert outcome.output_tail == "dry run: would run npm run build && touch ran"
    assert not (tmp_path / "ran").exists()


def test_agent_step(tmp_path: Path) -> None:
    config = AgentConfig("reviewer", "Review the diff", parameters=frozen_map({"model": "opus"}))
    step = Step(id="review", name="review", type=StepType.AGENT, config=config)
    outcome = DryRunExecutor().execute(make_context(step, tmp_path))
    assert outcome.status is StepStatus.SUCCEEDED
    assert outcome.output_tail == "dry run: would send prompt to agent 'reviewer'"
    assert outcome.command == "claude -p --model opus"


def test_unknown_agent_still_succeeds_without_a_command(tmp_path: Path) -> None:
    step = Step(id="r", name="r", type=StepType.AGENT, config=AgentConfig("ghost", "boo"))
    outcome = DryRunExecutor().execute(make_context(step, tmp_path))
    assert outcome.status is StepStatus.SUCCEEDED and outcome.command is None


def test_cancelled_token_wins(tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel("interrupted")
    outcome = DryRunExecutor().execute(
        make_context(script_step(ScriptConfig("true")), tmp_path, token)
    )
    assert outcome.status is StepStatus.CANCELLED and outcome.reason == "interrupted"
