"""`type: agent` steps (SPEC §6): a prompt sent to a declared agent program, its reply recorded."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wfrun.executors.base import StepContext
from wfrun.executors.environment import (
    new_output_file,
    step_environment,
    with_outputs,
    working_directory,
)
from wfrun.executors.process import ProcessRunner, ProcessSpec, process_status
from wfrun.executors.step_output import StepRun, outcome_of, run_step_process
from wfrun.model import Agent, AgentConfig, PromptMode
from wfrun.model import OutputFormat as Format
from wfrun.results import StepOutcome, StepStatus

_PLACEHOLDER = re.compile(r"\{(prompt|param\.([^{}]+))\}")
_SHOWN_PROMPT = 60


class AgentError(Exception):
    """The step cannot go on; the message is the step's reason."""


@dataclass(frozen=True, slots=True)
class AgentCall:
    """How one agent step is invoked: the real argv and a short form for display."""

    agent: Agent
    config: AgentConfig
    argv: list[str]
    command: str  # shlex-joined, with the prompt shortened
    parameters: dict[str, str]

    @property
    def timeout(self) -> float | None:
        return self.config.timeout if self.config.timeout is not None else self.agent.timeout


class AgentExecutor:
    """Runs an agent step's program with its runner; its stdout is the reply, stderr goes to
    the log only."""

    def __init__(self, runner: ProcessRunner | None = None) -> None:
        if runner is None:
            from wfrun.executors.local_runner import LocalProcessRunner

            runner = LocalProcessRunner()
        self.runner = runner

    def execute(self, context: StepContext) -> StepOutcome:
        try:
            call = agent_call(context)
        except AgentError as exc:
            return StepOutcome(StepStatus.FAILED, reason=str(exc), not_startable=True)
        try:
            output_file = new_output_file(context)
        except OSError as exc:
            return StepOutcome(StepStatus.FAILED, reason=f"cannot create its outputs file: {exc}")
        run = run_step_process(self.runner, agent_spec(context, call, output_file), context)
        return with_outputs(agent_outcome(run, context, call), output_file, context)

    def close(self) -> None:
        self.runner.close()


def agent_call(context: StepContext) -> AgentCall:
    """Resolve the agent, its parameters and argv; AgentError when the step is inconsistent."""
    config = context.step.config
    if not isinstance(config, AgentConfig):
        raise AgentError("an agent step needs an agent config")
    agent = context.workflow.agents.get(config.agent)
    if agent is None:
        known = ", ".join(sorted(context.workflow.agents)) or "none declared"
        raise AgentError(f"unknown agent {config.agent!r} (known: {known})")
    parameters = {**agent.parameters, **config.parameters}
    argv = build_argv(agent, parameters, config.prompt)
    shown = build_argv(agent, parameters, short_prompt(config.prompt))
    return AgentCall(agent, config, argv, shlex.join(shown), parameters)


def build_argv(agent: Agent, parameters: Mapping[str, str], prompt: str) -> list[str]:
    """Substitute `{prompt}` and `{param.NAME}` in one pass (a value is never re-expanded)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        if name is None:
            return prompt
        if name not in parameters:
            raise AgentError(f"agent {agent.name!r} needs parameter {name!r}, which has no value")
        return parameters[name]

    argv = [_PLACEHOLDER.sub(replace, part) for part in agent.command]
    if agent.prompt is PromptMode.ARGUMENT:
        argv.append(prompt)
    return argv


def short_prompt(prompt: str) -> str:
    """The prompt's first line, at most 60 characters, for commands shown to the user."""
    lines = prompt.strip().splitlines() or [""]
    first = lines[0]
    if len(first) > _SHOWN_PROMPT:
        return first[: _SHOWN_PROMPT - 1] + "…"
    return first + ("…" if len(lines) > 1 else "")


def agent_spec(
    context: StepContext, call: AgentCall, output_file: Path | None = None
) -> ProcessSpec:
    stdin = call.config.prompt.encode() if call.agent.prompt is PromptMode.STDIN else None
    return ProcessSpec(
        argv=call.argv,
        cwd=working_directory(context, call.config),
        env=step_environment(
            context,
            call.agent.env,
            call.config.env,
            parameter_env(call),
            output_file=output_file,
        ),
        stdin=stdin,
        timeout=call.timeout,
        capture_stdout=True,
        grace_period=context.grace_period,
    )


def parameter_env(call: AgentCall) -> dict[str, str]:
    """WFRUN_AGENT_PARAMETERS (a JSON object) and one WFRUN_PARAM_<NAME> per parameter."""
    env = {"WFRUN_AGENT_PARAMETERS": json.dumps(call.parameters)}
    for name, value in call.parameters.items():
        env["WFRUN_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()] = value
    return env


def agent_outcome(result: StepRun, context: StepContext, call: AgentCall) -> StepOutcome:
    status, reason = process_status(result.process, context.cancel, call.timeout)
    reply: Any = None
    if status is StepStatus.SUCCEEDED:
        try:
            reply = parse_reply(result, call.agent)
        except AgentError as exc:
            status, reason = StepStatus.FAILED, str(exc)
    outputs = {} if reply is None else {"result": reply_text(reply)}
    if context.masker and outputs:
        outputs = {"result": context.masker.text(outputs["result"])}
        reply = context.masker.text(reply) if isinstance(reply, str) else reply
    return outcome_of(result, status, reason, call.command, reply)._replace(outputs=outputs)


def reply_text(reply: Any) -> str:
    """The reply as the text `${{ steps.X.outputs.result }}` reads: JSON for a document."""
    return reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)


def parse_reply(result: StepRun, agent: Agent) -> Any:
    """TEXT: stdout without its trailing newline. JSON: the document, or its `result` key."""
    if agent.output is Format.TEXT:
        return result.stdout.decode("utf-8", "replace").rstrip("\r\n")
    if result.stdout_truncated:
        raise AgentError(f"agent {agent.name!r} printed more JSON than wfrun keeps (32 MiB)")
    try:
        document = json.loads(result.stdout.decode("utf-8"))
    except UnicodeDecodeError:
        raise AgentError(f"agent {agent.name!r} printed invalid JSON: it is not UTF-8") from None
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise AgentError(f"agent {agent.name!r} printed invalid JSON: {detail}") from None
    return document if agent.result is None else extract(document, agent.result)


def extract(document: Any, dotted: str) -> Any:
    """Follow a dotted key (`a.b.0.c`); a number indexes a list."""
    value = document
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and _is_index(part, value):
            value = value[int(part)]
        else:
            raise AgentError(f"agent reply has no key {dotted!r} ({_describe(value)})")
    return value


def _is_index(part: str, items: list[Any]) -> bool:
    return part.isdigit() and int(part) < len(items)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "keys: " + (", ".join(str(key) for key in value) or "none")
    if isinstance(value, list):
        return f"found a list of {len(value)} items"
    return f"found a {type(value).__name__}"
