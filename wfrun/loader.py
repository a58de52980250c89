"""Loading workflow and agents files: YAML -> JSON Schema -> semantic checks -> frozen model.

The public API. The stages live in their own modules: `yaml_source` reads the file and turns its
nodes into plain values with positions, `schema_errors` validates them against the JSON Schema,
`checks` runs the semantic checks; this module chains them and builds the model. Every problem
found in one pass is collected, and `load_workflow` raises a single `WorkflowError` carrying all
of them, each pointing at the offending key as FILE:LINE:COL.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from wfrun.checks import (
    DeclaredAgent,
    JsonPath,
    Source,
    check_agents,
    check_workflow,
    declared_agents,
    requested_units,
    sound_steps,
)
from wfrun.durations import parse_duration
from wfrun.errors import Diagnostic, WorkflowError
from wfrun.matrix import instance_id, instance_name, matrix_keys
from wfrun.model import (
    DEFAULT_MAX_CONCURRENCY,
    Agent,
    AgentConfig,
    OutputFormat,
    ParallelConfig,
    PromptMode,
    ScriptConfig,
    Step,
    StepParallel,
    StepType,
    Workflow,
    frozen_map,
)
from wfrun.retry import DEFAULT_BACKOFF, DEFAULT_DELAY, DEFAULT_ON, FailureKind, RetryPolicy
from wfrun.schema_errors import (
    agents_quickly_valid,
    agents_validator,
    quickly_valid,
    validate,
    workflow_validator,
)
from wfrun.yaml_source import Problem, gc_paused, parse, read_text

# ---- public API ------------------------------------------------------------------------------


class AgentsFile(NamedTuple):
    """A parsed `--agents` file: its agents, and the problems found in it."""

    source: Source | None
    diagnostics: tuple[Diagnostic, ...] = ()
    base_dir: Path | None = None  # the agents file's directory: its relative paths start there


def load_workflow(path: str | os.PathLike[str], *, agents_file: str | None = None) -> Workflow:
    """Read, validate and build the workflow at `path`; raise WorkflowError with every problem.

    `agents_file` names an `--agents` file whose agents are merged under the workflow's own.
    A file that cannot be read at all raises UnreadableFileError.
    """
    extra = read_agents_file(agents_file) if agents_file is not None else None
    return load_workflow_text(
        read_text(path), str(path), base_dir=Path(path).absolute().parent, extra_agents=extra
    )


def load_workflow_text(
    text: str,
    file: str = "<string>",
    base_dir: Path | None = None,
    extra_agents: AgentsFile | None = None,
) -> Workflow:
    """Validate and build a workflow from YAML text; raise WorkflowError with every problem.

    `file` is the name diagnostics carry (and the default workflow name, by its stem);
    `base_dir` defaults to its folder; `extra_agents` come from `read_agents_file`.
    """
    with gc_paused():
        # The node tree dies with `_load`'s frame, before the collector is back to scan it.
        workflow, found = _load(text, file, base_dir, extra_agents)
    if workflow is None:
        raise WorkflowError(found)
    return workflow


def _load(
    text: str, file: str, base_dir: Path | None, extra_agents: AgentsFile | None
) -> tuple[Workflow | None, list[Diagnostic]]:
    data, problems, tree = parse(text, file, _empty_workflow_message)
    if not quickly_valid(data):
        problems += validate(data, tree, file, "workflow", workflow_validator())
    source = Source.validated(
        file,
        data,
        tree.locate,
        _broken_paths(problems),
        locate_value=tree.locate_value,
        locate_inside=tree.locate_inside,
    )
    found = [p.diagnostic for p in problems]
    agents = declared_agents(source)
    base_dirs: dict[str, Path] = {}
    if extra_agents is not None:
        found += extra_agents.diagnostics
        if extra_agents.source is not None:
            shared = declared_agents(extra_agents.source)
            if extra_agents.base_dir is not None:
                base_dirs = dict.fromkeys(set(shared) - set(agents), extra_agents.base_dir)
            # The workflow's own agents win over those of the agents file.
            agents = {**shared, **agents}
    if data is not None:
        found += check_workflow(source, agents) + check_agents(source)
        steps = sound_steps(source)
        if _uses_data_flow(text, steps):
            # Most files have no reference, condition or matrix: they skip the expression
            # parser's import altogether (start-up time, issue 10).
            from wfrun.flow_checks import check_data_flow

            found += check_data_flow(source, steps)
    if found:
        return None, list(dict.fromkeys(found))  # aliases can repeat a problem: once is enough
    return _build_workflow(source, agents, file, base_dir, base_dirs), []


def _uses_data_flow(text: str, steps: list[tuple[int, dict[str, Any]]]) -> bool:
    """Whether the file may hold references (`${{`, or the origin's `{{`), conditions or
    matrices: what `flow_checks` checks."""
    return "{{" in text or any("if" in step or "matrix" in step for _, step in steps)


def read_agents_file(path: str | os.PathLike[str]) -> AgentsFile:
    """Read an `--agents` file: a YAML mapping with one top-level key, `agents:`, laid out like
    the workflow's own `agents:` section. Its problems are returned, not raised, so that they are
    reported together with the workflow's."""
    return parse_agents_text(read_text(path), str(path), Path(path).absolute().parent)


def parse_agents_text(
    text: str, file: str = "<agents>", base_dir: Path | None = None
) -> AgentsFile:
    """Parse and validate the text of an agents file (see `read_agents_file`); `base_dir` is
    where the relative paths in its agents' commands start."""
    with gc_paused():
        data, problems, tree = parse(text, file, _empty_agents_message)
        if not agents_quickly_valid(data):
            problems += validate(data, tree, file, "agents file", agents_validator())
        source = Source.validated(
            file,
            data,
            tree.locate,
            _broken_paths(problems),
            "agents file",
            locate_value=tree.locate_value,
        )
    found = [p.diagnostic for p in problems]
    if data is not None:
        found += check_agents(source)
    return AgentsFile(source if data is not None else None, tuple(found), base_dir)


def _broken_paths(problems: list[Problem]) -> list[JsonPath]:
    return [problem.path for problem in problems if problem.path is not None]


def _empty_workflow_message() -> str:
    return "the file is empty: a workflow needs at least a 'steps' list"


def _empty_agents_message() -> str:
    return "the file is empty: an agents file needs an 'agents' mapping"


# ---- the model -------------------------------------------------------------------------------


def _resolved(command: tuple[str, ...], base_dir: Path) -> tuple[str, ...]:
    """An agents file's command with each relative path naming a file next to the agents file
    made absolute (`[python3, fake_llm.py]`), since it is shared by workflows in other
    directories; the agent still runs in the step's working directory, on the workflow's files."""
    resolved = []
    for part in command:
        usable = part and "{" not in part and not part.startswith("-")
        resolved.append(str(base_dir / part) if usable and _is_file(base_dir / part) else part)
    return tuple(resolved)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system is no file of ours
        return False


def _seconds(value: str | None) -> float | None:
    return parse_duration(value) if value is not None else None


def _build_workflow(
    source: Source,
    agents: Mapping[str, DeclaredAgent],
    file: str,
    base_dir: Path | None,
    agent_dirs: Mapping[str, Path],
) -> Workflow:
    data: dict[str, Any] = source.data
    anonymous = file.startswith("<")
    if base_dir is None:
        base_dir = Path(file).parent
    built_agents = {
        name: _build_agent(agent, agent_dirs.get(name)) for name, agent in agents.items()
    }
    default_retry = _retry_policy(data.get("defaults", {}).get("retry"))
    return Workflow(
        name=data.get("name", "workflow" if anonymous else Path(file).stem),
        steps=_expanded(
            [
                _build_step(source, index, built_agents, default_retry)
                for index in range(len(data["steps"]))
            ],
            data["steps"],
        ),
        version=data.get("version"),
        description=data.get("description"),
        env=frozen_map(data.get("env")),
        timeout=_seconds(data.get("timeout")),
        metadata=frozen_map(data.get("metadata")),
        parallel=_build_parallel(data.get("parallel", {})),
        agents=frozen_map(built_agents),
        file=None if anonymous else Path(file),
        base_dir=base_dir,
        vars=frozen_map(data.get("vars")),
        secrets=tuple(data.get("secrets", ())),
    )


def _expanded(steps: list[Step], data: list[dict[str, Any]]) -> tuple[Step, ...]:
    """Each matrix step becomes one step per combination (SPEC §10.5), in place; `dependsOn` a
    matrix step means all of its instances."""

    out: list[Step] = []
    instances: dict[str, list[str]] = {}
    for step, raw in zip(steps, data, strict=True):
        matrix = raw.get("matrix")
        if not isinstance(matrix, dict) or not matrix_keys(matrix):
            out.append(step)
            continue
        from wfrun.matrix import expand
        from wfrun.templates import OPEN, substitute

        for combination in expand(matrix).combinations:
            values = frozen_map(combination)
            name = (
                substitute(step.name, {"matrix": dict(combination)})
                if OPEN in step.name
                else instance_name(step.name, combination)
            )
            new_id = instance_id(step.id, combination)
            instances.setdefault(step.id, []).append(new_id)
            out.append(step._replace(id=new_id, name=name, base_id=step.id, matrix=values))
    if instances:
        out = [
            step._replace(
                depends_on=tuple(
                    dict.fromkeys(i for dep in step.depends_on for i in instances.get(dep, [dep]))
                ),
            )
            for step in out
        ]
    return tuple(step._replace(index=i) if step.index != i else step for i, step in enumerate(out))


def _build_parallel(data: dict[str, Any]) -> ParallelConfig:
    return ParallelConfig(
        enabled=data.get("enabled", True),
        default_max_concurrency=data.get("defaultMaxConcurrency", DEFAULT_MAX_CONCURRENCY),
        resources=frozen_map(data.get("resources")),
    )


def _retry_policy(data: dict[str, Any] | None) -> RetryPolicy | None:
    """`retry:` as a policy; the `on` words and exit codes are told apart by type."""
    if data is None:
        return None
    on = data.get("on")
    words = [w for w in on or () if isinstance(w, str)]
    return RetryPolicy(
        max_attempts=data.get("maxAttempts", 1),
        delay=_seconds(data.get("delay")) or DEFAULT_DELAY,
        backoff=float(data.get("backoff", DEFAULT_BACKOFF)),
        max_delay=_seconds(data.get("maxDelay")),
        kinds=DEFAULT_ON if on is None else frozenset(map(FailureKind, words)),
        exit_codes=frozenset(c for c in on or () if isinstance(c, int)),
    )


def _build_step(
    source: Source,
    index: int,
    agents: Mapping[str, Agent],
    default_retry: RetryPolicy | None = None,
) -> Step:
    data: dict[str, Any] = source.data["steps"][index]
    step_type = StepType(data.get("type", "script"))
    config = data["config"]
    parallel = data.get("parallel", {})
    return Step(
        id=data["id"],
        name=data.get("name", data["id"]),
        type=step_type,
        config=(
            _agent_config(config, agents[config["agent"]])
            if step_type is StepType.AGENT
            else _script_config(config)
        ),
        depends_on=tuple(data.get("dependsOn", ())),
        parallel=StepParallel(
            enabled=parallel.get("enabled", True),
            max_concurrency=parallel.get("maxConcurrency"),
            resources=frozen_map(requested_units(parallel.get("resource"))),
            isolate_errors=parallel.get("isolateErrors", True),
        ),
        continue_on_error=data.get("continueOnError", False),
        condition=_condition_text(data.get("if")),
        index=index,
        position=source.locate(("steps", index, "id")),
        retry=_retry_policy(data["retry"]) if "retry" in data else default_retry,
        estimate=_seconds(data.get("estimate")),
    )


def _condition_text(value: str | bool | None) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _script_config(data: dict[str, Any]) -> ScriptConfig:
    return ScriptConfig(
        command=data["command"],
        args=tuple(data.get("args", ())),
        shell=data.get("shell", False),
        working_directory=data.get("workingDirectory"),
        env=frozen_map(data.get("env")),
        timeout=_seconds(data.get("timeout")),
    )


def _agent_config(data: dict[str, Any], agent: Agent) -> AgentConfig:
    timeout = _seconds(data.get("timeout"))
    return AgentConfig(
        agent=data["agent"],
        prompt=data["prompt"],
        parameters=frozen_map({**agent.parameters, **data.get("parameters", {})}),
        working_directory=data.get("workingDirectory"),
        env=frozen_map(data.get("env")),
        # The agent's timeout is the default of its steps, so `step.timeout` is the one to apply.
        timeout=timeout if timeout is not None else agent.timeout,
    )


def _build_agent(agent: DeclaredAgent, base_dir: Path | None) -> Agent:
    """`base_dir` is set for an agent of an `--agents` file: the file's directory."""
    data: dict[str, Any] = agent.data
    command = tuple(data["command"])
    return Agent(
        name=agent.name,
        command=command if base_dir is None else _resolved(command, base_dir),
        base_dir=base_dir,
        prompt=PromptMode(data.get("prompt", "stdin")),
        output=OutputFormat(data.get("output", "text")),
        result=data.get("result"),
        parameters=frozen_map(data.get("parameters")),
        env=frozen_map(data.get("env")),
        timeout=_seconds(data.get("timeout")),
        position=agent.source.locate(agent.path),
    )
