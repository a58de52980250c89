"""Semantic checks: what a JSON Schema cannot say about a workflow.

They run on the plain data of the file, after schema validation, and only look at the parts the
schema found sound, so that one mistake gives one message. Each check returns diagnostics; none
raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wfrun.durations import parse_duration
from wfrun.errors import Diagnostic
from wfrun.model import Position
from wfrun.suggest import closest, did_you_mean

JsonPath = tuple[str | int, ...]

# A brace group that looks like a name is a placeholder; other braces (JSON, jq, shell) are text.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
PARAM_PLACEHOLDER = re.compile(r"param\.([A-Za-z0-9_-]+)")
PROMPT_PLACEHOLDER = "{prompt}"


@dataclass(frozen=True, slots=True)
class Source:
    """One parsed file: its plain data, where each path stands, and where the schema objected."""

    file: str
    data: Any
    locate: Callable[[JsonPath], Position]
    kind: str = "workflow"  # what the file is, for messages about its top level
    broken: frozenset[JsonPath] = frozenset()  # paths of schema errors
    broken_prefixes: frozenset[JsonPath] = frozenset()  # those paths and all their ancestors

    @classmethod
    def validated(
        cls,
        file: str,
        data: Any,
        locate: Callable[[JsonPath], Position],
        broken: Iterable[JsonPath],
        kind: str = "workflow",
    ) -> Source:
        paths = frozenset(broken)
        prefixes = frozenset(path[:k] for path in paths for k in range(len(path) + 1))
        return cls(file, data, locate, kind, paths, prefixes)

    def ok(self, path: JsonPath) -> bool:
        """True when the schema found no problem at, inside or above `path`."""
        if not self.broken:
            return True
        if path in self.broken_prefixes:
            return False
        return not any(path[:k] in self.broken for k in range(len(path)))

    def at(self, path: JsonPath, message: str) -> Diagnostic:
        position = self.locate(path)
        return Diagnostic(self.file, position.line, position.col, message)

    def name(self, path: JsonPath) -> str:
        """How messages name the value at `path` (see `value_name`)."""
        return value_name(path, self.data, f"the {self.kind}")

    def place(self, path: JsonPath) -> str:
        """Where a key of the mapping at `path` stands (see `place_phrase`)."""
        return place_phrase(path, self.data, f"the {self.kind}")


@dataclass(frozen=True, slots=True)
class DeclaredAgent:
    """An entry of an `agents:` section, in the workflow or in an agents file."""

    name: str
    source: Source
    path: JsonPath  # ("agents", name)

    @property
    def data(self) -> Any:
        return self.source.data["agents"][self.name]

    def field(self, key: str) -> Any:
        """The value of `key` when present and sound, else None."""
        data = self.data
        if isinstance(data, dict) and self.source.ok((*self.path, key)):
            return data.get(key)
        return None


# ---- naming things in messages -------------------------------------------------------------


def step_label(data: Any, index: int) -> str:
    """`step 'build'`, or `step 3` (1-based) when the step has no usable id."""
    steps = data.get("steps") if isinstance(data, dict) else None
    step = steps[index] if isinstance(steps, list) and index < len(steps) else None
    step_id = step.get("id") if isinstance(step, dict) else None
    if isinstance(step_id, str) and step_id:
        return f"step {step_id!r}"
    return f"step {index + 1}"


def split_owner(path: JsonPath, data: Any) -> tuple[str | None, JsonPath]:
    """Split a path into the step or agent it belongs to, and the rest of it."""
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        return step_label(data, path[1]), path[2:]
    if len(path) >= 2 and path[0] == "agents":
        return f"agent {path[1]!r}", path[2:]
    return None, path


def dotted(path: JsonPath) -> str:
    """`config.args[0]`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def value_name(path: JsonPath, data: Any, root: str = "the workflow") -> str:
    """How a message names the value at `path`: `'config.timeout' of step 'build'`, `'env.PORT'`."""
    owner, rest = split_owner(path, data)
    if owner is None:
        return f"'{dotted(rest)}'" if rest else root
    return f"'{dotted(rest)}' of {owner}" if rest else owner


def place_phrase(path: JsonPath, data: Any, root: str = "the workflow") -> str:
    """Where a key of the mapping at `path` is: `in step 'build'`, `at the top level`."""
    if not path:
        return "at the top level"
    return f"in {value_name(path, data, root)}"


# ---- the checks ----------------------------------------------------------------------------


def check_workflow(source: Source, agents: Mapping[str, DeclaredAgent]) -> list[Diagnostic]:
    """Every semantic problem of the workflow in `source`; `agents` are all agents it can use."""
    steps = _sound_steps(source)
    ids = _first_ids(source, steps)
    found: list[Diagnostic] = []
    found += _duplicate_ids(source, steps, ids)
    found += _dependencies(source, steps, ids)
    found += _cycles(source, steps, ids)
    found += _pools(source, steps)
    found += _shell_with_args(source, steps)
    found += _agent_steps(source, steps, agents)
    found += _durations(source, steps)
    return found


def declared_agents(source: Source) -> dict[str, DeclaredAgent]:
    """The agents of the `agents:` section of `source`, by name (none when it is not a mapping)."""
    agents = source.data.get("agents") if isinstance(source.data, dict) else None
    if not isinstance(agents, dict):
        return {}
    return {name: DeclaredAgent(name, source, ("agents", name)) for name in agents}


def check_agents(source: Source) -> list[Diagnostic]:
    """The problems of the agents declared in `source`: placeholders, prompt mode, timeout."""
    found: list[Diagnostic] = []
    for agent in declared_agents(source).values():
        found += _agent_command(agent)
        found += duration_problems(source, [(*agent.path, "timeout")])
    return found


def _agent_command(agent: DeclaredAgent) -> list[Diagnostic]:
    command = agent.field("command")
    if not isinstance(command, list):
        return []
    found: list[Diagnostic] = []
    mode = agent.field("prompt") or "stdin"
    defaults = agent.field("parameters") or {}
    # A slip may be in the placeholder's form (`{params.model}`) or its name alone (`{modle}`).
    candidates = {"prompt": "prompt"}
    for parameter in defaults:
        candidates[parameter] = candidates[f"param.{parameter}"] = f"param.{parameter}"
    has_prompt = False
    for j, arg in enumerate(command):
        path = (*agent.path, "command", j)
        for name in PLACEHOLDER.findall(arg):
            if name == "prompt":
                has_prompt = True
            elif not PARAM_PLACEHOLDER.fullmatch(name):
                hint = closest(name, candidates)
                suggestion = candidates[hint] if hint is not None else None
                found.append(
                    agent.source.at(path, _unknown_placeholder(agent.name, name, suggestion))
                )
    if has_prompt and mode != PROMPT_PLACEHOLDER:
        message = (
            f"agent {agent.name!r} has a {{prompt}} placeholder in its command but prompt: {mode} "
            '(write prompt: "{prompt}")'
        )
        found.append(agent.source.at((*agent.path, "command"), message))
    if mode == PROMPT_PLACEHOLDER and not has_prompt:
        message = (
            f'agent {agent.name!r} has prompt: "{{prompt}}" but no {{prompt}} placeholder '
            "in its command"
        )
        found.append(agent.source.at((*agent.path, "prompt"), message))
    return found


def _unknown_placeholder(agent: str, name: str, hint: str | None) -> str:
    suggestion = f"did you mean '{{{hint}}}'? " if hint else ""
    return (
        f"agent {agent!r} has an unknown placeholder '{{{name}}}' in its command "
        f"({suggestion}allowed: {{prompt}}, {{param.NAME}})"
    )


def agent_parameters(agent: DeclaredAgent) -> list[str]:
    """The NAMEs of the `{param.NAME}` placeholders in the agent's command, in order."""
    command = agent.field("command")
    names: list[str] = []
    for arg in command if isinstance(command, list) else ():
        for placeholder in PLACEHOLDER.findall(arg):
            match = PARAM_PLACEHOLDER.fullmatch(placeholder)
            if match and match.group(1) not in names:
                names.append(match.group(1))
    return names


# A step the checks may look at: its index and its mapping.
Indexed = tuple[int, dict[str, Any]]


def _sound_steps(source: Source) -> list[Indexed]:
    steps = source.data.get("steps") if isinstance(source.data, dict) else None
    if not isinstance(steps, list):
        return []
    return [(i, step) for i, step in enumerate(steps) if isinstance(step, dict)]


def _field(source: Source, index: int, step: dict[str, Any], *keys: str) -> Any:
    """The value at step.keys... when present and sound, else None."""
    value: Any = step
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if value is not None and source.ok(("steps", index, *keys)) else None


def _first_ids(source: Source, steps: list[Indexed]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for index, step in steps:
        step_id = _field(source, index, step, "id")
        if isinstance(step_id, str):
            ids.setdefault(step_id, index)
    return ids


def _duplicate_ids(
    source: Source, steps: list[Indexed], ids: dict[str, int]
) -> Iterator[Diagnostic]:
    for index, step in steps:
        step_id = _field(source, index, step, "id")
        if isinstance(step_id, str) and ids[step_id] != index:
            first = source.locate(("steps", ids[step_id], "id")).line
            message = f"duplicate step id {step_id!r} (first at line {first})"
            yield source.at(("steps", index, "id"), message)


def _dependencies(
    source: Source, steps: list[Indexed], ids: dict[str, int]
) -> Iterator[Diagnostic]:
    for index, step in steps:
        label = step_label(source.data, index)
        for j, dep in enumerate(_field(source, index, step, "dependsOn") or ()):
            path = ("steps", index, "dependsOn", j)
            if dep == step.get("id"):
                yield source.at(path, f"{label} depends on itself")
            elif dep not in ids:
                hint = did_you_mean(dep, ids)
                yield source.at(path, f"{label} depends on unknown step {dep!r}{hint}")


def _cycles(source: Source, steps: list[Indexed], ids: dict[str, int]) -> Iterator[Diagnostic]:
    graph: dict[int, list[int]] = {}
    for index, step in steps:
        step_id = step.get("id")
        if not isinstance(step_id, str) or ids.get(step_id) != index:
            continue
        deps = _field(source, index, step, "dependsOn") or ()
        graph[index] = [ids[d] for d in deps if d in ids and ids[d] != index]
    for component in strongly_connected(graph):
        if len(component) > 1:
            cycle = shortest_cycle(min(component), graph, set(component))
            yield _cycle_diagnostic(source, cycle)


def _cycle_diagnostic(source: Source, cycle: list[int]) -> Diagnostic:
    steps = source.data["steps"]
    names = [steps[i]["id"] for i in cycle]
    first_dep = steps[cycle[0]]["dependsOn"].index(names[1])
    message = "dependency cycle: " + " -> ".join(names)
    return source.at(("steps", cycle[0], "dependsOn", first_dep), message)


def strongly_connected(graph: Mapping[int, list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative so that a 10,000-step chain does not overflow the stack."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    components: list[list[int]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, edge = work.pop()
            if edge == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = graph[node]
            if edge < len(successors):
                work.append((node, edge + 1))
                successor = successors[edge]
                if successor not in index:
                    work.append((successor, 0))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def shortest_cycle(start: int, graph: Mapping[int, list[int]], within: set[int]) -> list[int]:
    """The shortest path start -> ... -> start inside one strongly connected component (BFS)."""
    came_from: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following: list[int] = []
        for node in frontier:
            for successor in graph[node]:
                if successor == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = came_from[node]
                    return [start, *reversed(path[1:]), start]
                if successor in within and successor not in came_from:
                    came_from[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError("a strongly connected component always has a cycle")


def requested_units(resource: Any) -> dict[str, int]:
    """A step's `parallel.resource` as pool -> units: `cpu`, `[cpu, io]` or `{cpu: 2}`."""
    if isinstance(resource, str):
        return {resource: 1}
    if isinstance(resource, list):
        return dict.fromkeys(resource, 1)
    if isinstance(resource, dict):
        return dict(resource)
    return {}


def _resource_path(index: int, resource: Any, pool: str) -> JsonPath:
    path: JsonPath = ("steps", index, "parallel", "resource")
    if isinstance(resource, list):
        return (*path, resource.index(pool))
    if isinstance(resource, dict):
        return (*path, pool)
    return path


def _pools(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    data = source.data
    parallel = data.get("parallel") if isinstance(data, dict) else None
    declared = parallel.get("resources", {}) if isinstance(parallel, dict) else {}
    if not isinstance(declared, dict):
        return
    for index, step in steps:
        resource = _field(source, index, step, "parallel", "resource")
        for pool, units in requested_units(resource).items():
            path = _resource_path(index, resource, pool)
            label = step_label(data, index)
            if pool not in declared:
                yield source.at(
                    path, f"{label} uses unknown pool {pool!r} ({_pools_hint(pool, declared)})"
                )
                continue
            capacity = declared[pool]
            if source.ok(("parallel", "resources", pool)) and units > capacity:
                message = (
                    f"{label} asks for {units} units of pool {pool!r}, whose capacity is {capacity}"
                )
                yield source.at(path, message)


def _known_hint(name: str, known: Mapping[str, Any], label: str, when_none: str) -> str:
    """`did you mean 'x'? declared: a, b` — or what to do when there is nothing to choose from."""
    if not known:
        return when_none
    match = closest(name, known)
    suggestion = f"did you mean {match!r}? " if match else ""
    return f"{suggestion}{label}: {', '.join(known)}"


def _pools_hint(pool: str, declared: Mapping[str, Any]) -> str:
    return _known_hint(pool, declared, "declared", "no pools are declared under parallel.resources")


def _shell_with_args(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    for index, step in steps:
        if step.get("type", "script") != "script":
            continue
        args = _field(source, index, step, "config", "args")
        if _field(source, index, step, "config", "shell") is True and args:
            message = (
                f"{step_label(source.data, index)} sets both shell: true and args "
                "(with a shell, write the whole command line in 'command')"
            )
            yield source.at(("steps", index, "config", "args"), message)


def _agent_steps(
    source: Source, steps: list[Indexed], agents: Mapping[str, DeclaredAgent]
) -> Iterator[Diagnostic]:
    for index, step in steps:
        name = _field(source, index, step, "config", "agent")
        if step.get("type") != "agent" or not isinstance(name, str):
            continue
        path = ("steps", index, "config", "agent")
        label = step_label(source.data, index)
        agent = agents.get(name)
        if agent is None:
            yield source.at(
                path, f"{label} uses unknown agent {name!r} ({_agents_hint(name, agents)})"
            )
            continue
        given = _field(source, index, step, "config", "parameters")
        if given is None and not source.ok(("steps", index, "config", "parameters")):
            continue
        known = {**(agent.field("parameters") or {}), **(given or {})}
        for parameter in agent_parameters(agent):
            if parameter not in known:
                message = (
                    f"{label} gives no value for parameter {parameter!r} of agent {name!r} "
                    f"(set config.parameters.{parameter}, or a default in the agent's parameters)"
                )
                yield source.at(path, message)


def _agents_hint(name: str, agents: Mapping[str, DeclaredAgent]) -> str:
    none = "no agents are declared: add an agents: section or pass --agents FILE"
    return _known_hint(name, agents, "known", none)


def _durations(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    paths: list[JsonPath] = [("timeout",)]
    paths += [("steps", index, "config", "timeout") for index, _ in steps]
    yield from duration_problems(source, paths)


def duration_problems(source: Source, paths: Iterable[JsonPath]) -> Iterator[Diagnostic]:
    """Durations the schema's pattern lets through but that make no sense, such as `0s`."""
    for path in paths:
        value = _value_at(source.data, path)
        if isinstance(value, str) and source.ok(path):
            try:
                parse_duration(value)
            except ValueError as error:
                yield source.at(path, f"{source.name(path)}: {error}")


def _value_at(data: Any, path: JsonPath) -> Any:
    for part in path:
        if isinstance(part, int):
            data = data[part] if isinstance(data, list) and part < len(data) else None
        else:
            data = data.get(part) if isinstance(data, dict) else None
    return data
