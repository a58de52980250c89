"""AgentExecutor against the stand-in agent tests/agents/fake_agent.py (a real process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from wfrun.executors.agent import AgentError, AgentExecutor, extract, short_prompt
from wfrun.executors.base import CancelToken, StepContext
from wfrun.model import (
    Agent,
    AgentConfig,
    OutputFormat,
    PromptMode,
    ScriptConfig,
    Step,
    StepType,
    Workflow,
    frozen_map,
)
from wfrun.results import StepOutcome, StepStatus

FAKE = str(Path(__file__).parent / "agents" / "fake_agent.py")
PY = sys.executable


def make_agent(
    *extra: str,
    prompt: PromptMode = PromptMode.STDIN,
    output: OutputFormat = OutputFormat.TEXT,
    result: str | None = None,
    parameters: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    command: tuple[str, ...] | None = None,
) -> Agent:
    return Agent(
        name="reviewer",
        command=command or (PY, FAKE, *extra),
        prompt=prompt,
        output=output,
        result=result,
        parameters=frozen_map(parameters),
        env=frozen_map(env),
        timeout=timeout,
    )


def run_agent(
    tmp_path: Path,
    agent: Agent,
    prompt: str = "Review the diff",
    *,
    parameters: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> StepOutcome:
    config = AgentConfig(
        agent=agent.name,
        prompt=prompt,
        parameters=frozen_map(parameters),
        env=frozen_map(env),
        timeout=timeout,
    )
    step = Step(id="review", name="Review", type=StepType.AGENT, config=config)
    workflow = Workflow(
        name="ci",
        steps=(step,),
        env=frozen_map({"WF_VAR": "workflow"}),
        agents=frozen_map({agent.name: agent}),
        base_dir=tmp_path,
    )
    context = StepContext(
        run_id="run-7",
        workflow=workflow,
        step=step,
        env=dict(os.environ),
        cancel=CancelToken(),
        log_path=tmp_path / "review.log",
        grace_period=0.5,
    )
    return AgentExecutor().execute(context)


def test_prompt_on_stdin_with_parameters(tmp_path: Path) -> None:
    agent = make_agent("--model", "{param.model}", parameters={"model": "sonnet"})
    outcome = run_agent(tmp_path, agent, "Hello\nsecond line", parameters={"model": "opus"})
    assert outcome.status is StepStatus.SUCCEEDED
    assert outcome.output == "model=opus prompt=Hello\nsecond line"
    assert outcome.command == f"{PY} {FAKE} --model opus"


def test_parameter_defaults_apply(tmp_path: Path) -> None:
    agent = make_agent("--model", "{param.model}", parameters={"model": "sonnet"})
    assert run_agent(tmp_path, agent, "Hi").output == "model=sonnet prompt=Hi"


def test_prompt_as_argument(tmp_path: Path) -> None:
    agent = make_agent("--model", "m", prompt=PromptMode.ARGUMENT)
    long_prompt = "Summarise " + "x" * 100 + "\nand more"
    outcome = run_agent(tmp_path, agent, long_prompt)
    assert outcome.output == f"model=m prompt={long_prompt}"
    assert outcome.command is not None and outcome.command.endswith("xxx…'")
    assert "and more" not in outcome.command


def test_prompt_as_placeholder(tmp_path: Path) -> None:
    agent = make_agent(prompt=PromptMode.PLACEHOLDER, command=(PY, FAKE, "{prompt}", "--model=x"))
    outcome = run_agent(tmp_path, agent, "say {param.model} literally")
    assert outcome.status is StepStatus.SUCCEEDED
    assert outcome.output == "model=x prompt=say {param.model} literally"


def test_parameter_env_and_env_layers(tmp_path: Path) -> None:
    names = [
        "WFRUN_AGENT_PARAMETERS",
        "WFRUN_PARAM_MODEL",
        "WFRUN_PARAM_MAX_TOKENS",
        "WFRUN_STEP_ID",
        "WF_VAR",
        "AGENT_VAR",
        "SHARED",
    ]
    agent = make_agent(
        "--json",
        *(arg for name in names for arg in ("--env", name)),
        output=OutputFormat.JSON,
        result="env",
        parameters={"model": "sonnet", "max-tokens": "100"},
        env={"AGENT_VAR": "agent", "SHARED": "agent"},
    )
    outcome = run_agent(tmp_path, agent, parameters={"model": "opus"}, env={"SHARED": "step"})
    assert outcome.status is StepStatus.SUCCEEDED, outcome.reason
    env = outcome.output
    assert json.loads(env["WFRUN_AGENT_PARAMETERS"]) == {"model": "opus", "max-tokens": "100"}
    assert env["WFRUN_PARAM_MODEL"] == "opus" and env["WFRUN_PARAM_MAX_TOKENS"] == "100"
    assert env["WFRUN_STEP_ID"] == "review" and env["WF_VAR"] == "workflow"
    assert env["AGENT_VAR"] == "agent" and env["SHARED"] == "step"


def test_json_output_whole_document(tmp_path: Path) -> None:
    outcome = run_agent(tmp_path, make_agent("--json", output=OutputFormat.JSON), "Hi")
    assert outcome.output["prompt"] == "Hi" and outcome.output["model"] == "none"


def test_json_result_extraction_nested(tmp_path: Path) -> None:
    agent = make_agent("--json", output=OutputFormat.JSON, result="result.items.1.name")
    assert run_agent(tmp_path, agent).output == "b"
    agent = make_agent("--json", output=OutputFormat.JSON, result="result.text")
    assert run_agent(tmp_path, agent, "Hi").output == "reviewed: Hi"


def test_invalid_json_fails(tmp_path: Path) -> None:
    agent = make_agent("--raw", "not json", output=OutputFormat.JSON)
    outcome = run_agent(tmp_path, agent)
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == (
        "agent 'reviewer' printed invalid JSON: Expecting value at line 1 column 1"
    )
    assert outcome.output is None and outcome.output_tail == "not json"


def test_missing_result_key_fails(tmp_path: Path) -> None:
    agent = make_agent("--json", output=OutputFormat.JSON, result="answer")
    outcome = run_agent(tmp_path, agent)
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == "agent reply has no key 'answer' (keys: prompt, model, result, env)"


def test_non_zero_exit_fails_and_stderr_stays_out_of_the_reply(tmp_path: Path) -> None:
    agent = make_agent("--stderr", "quota exceeded", "--exit", "3")
    outcome = run_agent(tmp_path, agent, "Hi")
    assert outcome.status is StepStatus.FAILED and outcome.reason == "exited with code 3"
    assert outcome.exit_code == 3 and outcome.output is None
    assert "quota exceeded" in outcome.output_tail


def test_log_holds_stdout_and_stderr(tmp_path: Path) -> None:
    outcome = run_agent(tmp_path, make_agent("--stderr", "thinking..."), "Hi")
    assert outcome.output == "model=none prompt=Hi"
    log = (tmp_path / "review.log").read_text()
    assert "thinking..." in log and "model=none prompt=Hi" in log


def test_timeout_leaves_no_process_behind(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleeper.pid"
    agent = make_agent("--spawn-sleeper", str(pid_file), "--sleep", "60", timeout=0.5)
    started = time.monotonic()
    outcome = run_agent(tmp_path, agent)
    assert time.monotonic() - started < 4
    assert outcome.status is StepStatus.TIMED_OUT and outcome.reason == "timed out after 500ms"
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.02)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_step_timeout_overrides_the_agent_timeout(tmp_path: Path) -> None:
    agent = make_agent("--sleep", "60", timeout=600)
    outcome = run_agent(tmp_path, agent, timeout=0.3)
    assert outcome.status is StepStatus.TIMED_OUT and outcome.reason == "timed out after 300ms"


def test_unknown_agent_is_a_failure(tmp_path: Path) -> None:
    config = AgentConfig(agent="ghost", prompt="boo")
    step = Step(id="s", name="s", type=StepType.AGENT, config=config)
    workflow = Workflow(name="w", steps=(step,), agents=frozen_map({"a": make_agent()}))
    outcome = AgentExecutor().execute(StepContext("r", workflow, step, {}, CancelToken()))
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == "unknown agent 'ghost' (known: a)"


def test_missing_parameter_is_a_failure(tmp_path: Path) -> None:
    outcome = run_agent(tmp_path, make_agent("--model", "{param.model}"))
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == "agent 'reviewer' needs parameter 'model', which has no value"


def test_wrong_config_kind_is_a_failure() -> None:
    step = Step(id="s", name="s", type=StepType.AGENT, config=ScriptConfig("true"))
    outcome = AgentExecutor().execute(
        StepContext("r", Workflow("w", (step,)), step, {}, CancelToken())
    )
    assert outcome.status is StepStatus.FAILED


def test_extract_and_short_prompt() -> None:
    document = {"a": {"b": [{"c": 1}]}}
    assert extract(document, "a.b.0.c") == 1
    with pytest.raises(AgentError, match=r"no key 'a\.b\.3' \(found a list of 1 items\)"):
        extract(document, "a.b.3")
    assert short_prompt("short") == "short"
    assert short_prompt("one\ntwo") == "one…"
    assert len(short_prompt("y" * 200)) == 60


def _llm_has_echo() -> bool:
    if shutil.which("llm") is None:
        return False
    try:
        models = subprocess.run(["llm", "models"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "echo" in models.stdout


@pytest.mark.skipif(not _llm_has_echo(), reason="the llm CLI with the llm-echo plugin is absent")
def test_real_llm_echo_agent(tmp_path: Path) -> None:
    agent = make_agent(command=("llm", "-m", "echo", "--no-log"), prompt=PromptMode.STDIN)
    outcome = run_agent(tmp_path, agent, "ping from wfrun")
    assert outcome.status is StepStatus.SUCCEEDED, outcome.reason
    assert "ping from wfrun" in outcome.output
