"""Semantic checks: what a JSON Schema cannot say about a workflow.

They run on the plain data of the file, after schema validation, and only look at the parts the
schema found sound, so that one mistake gives one message. Each check returns diagnostics; none
raises.
"""

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from wfrun.durations import parse_duration
from wfrun.errors import Diagnostic
from wfrun.model import STEP_ID, Position
from wfrun.suggest import Vocabulary, closest, listed

JsonPath = tuple[str | int, ...]

# A brace group that looks like a name is a placeholder; other braces (JSON, jq, shell) are text.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
PARAM_PLACEHOLDER = re.compile(r"param\.([A-Za-z0-9_-]+)")
# What the agent executor substitutes as a parameter: `{param.` up to the next brace.
ANY_PARAM_PLACEHOLDER = re.compile(r"\{param\.([^{}]*)\}")
PROMPT_PLACEHOLDER = "{prompt}"


class Source(NamedTuple):
    """One parsed file: its plain data, where each path stands, and where the schema objected."""

    file: str
    data: Any
    locate: Callable[[JsonPath], Position]
    kind: str = "workflow"  # what the file is, for messages about its top level
    broken: frozenset[JsonPath] = frozenset()  # paths of schema errors
    broken_prefixes: frozenset[JsonPath] = frozenset()  # those paths and all their ancestors
    locate_value: Callable[[JsonPath], Position] | None = None  # default: `locate`
    locate_inside: Callable[[JsonPath, int], Position] | None = None  # a character of a string

    @classmethod
    def validated(
        cls,
        file: str,
        data: Any,
        locate: Callable[[JsonPath], Position],
        broken: Iterable[JsonPath],
        kind: str = "workflow",
        locate_value: Callable[[JsonPath], Position] | None = None,
        locate_inside: Callable[[JsonPath, int], Position] | None = None,
    ) -> "Source":
        paths = frozenset(broken)
        prefixes = frozenset(path[:k] for path in paths for k in range(len(path) + 1))
        return cls(file, data, locate, kind, paths, prefixes, locate_value, locate_inside)

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

    def at_value(self, path: JsonPath, message: str) -> Diagnostic:
        """A diagnostic at the value of `path` rather than its key (a malformed duration)."""
        position = (self.locate_value or self.locate)(path)
        return Diagnostic(self.file, position.line, position.col, message)

    def inside(self, path: JsonPath, offset: int, message: str) -> Diagnostic:
        """A diagnostic at character `offset` of the string at `path` (a reference in it)."""
        if self.locate_inside is None:
            return self.at_value(path, message)
        position = self.locate_inside(path, offset)
        return Diagnostic(self.file, position.line, position.col, message)

    def name(self, path: JsonPath) -> str:
        """How messages name the value at `path` (see `value_name`)."""
        return value_name(path, self.data, f"the {self.kind}")

    def place(self, path: JsonPath) -> str:
        """Where a key of the mapping at `path` stands (see `place_phrase`)."""
        return place_phrase(path, self.data, f"the {self.kind}")


class DeclaredAgent(NamedTuple):
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
    instance_ids = matrix_instances(source, steps)
    found: list[Diagnostic] = []
    found += _malformed_ids(source, steps)
    found += _duplicate_ids(source, steps, ids)
    found += _dependencies(source, steps, {**instance_ids, **ids})
    found += _cycles(source, steps, {**instance_ids, **ids})
    found += _pools(source, steps)
    found += _shell_with_args(source, steps)
    found += _command_lines(source, steps)
    found += _empty_commands(source, steps)
    found += _agent_steps(source, steps, agents)
    found += _durations(source, steps)
    found += _env_names(source, [("env",)])
    found += _env_names(source, [("steps", index, "config", "env") for index, _ in steps])
    found += _finite_metadata(source)
    found += _backoffs(source, steps)
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
        found += _env_names(source, [(*agent.path, "env")])
        parameters = agent.field("parameters") or {}
        found += _parameter_clashes(source, (*agent.path, "parameters"), parameters, parameters)
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
        for name in ANY_PARAM_PLACEHOLDER.findall(arg):
            if not PARAM_PLACEHOLDER.fullmatch(f"param.{name}"):
                message = (
                    f"agent {agent.name!r} has a placeholder '{{param.{name}}}' whose name is not "
                    "a parameter name (letters, digits, '_' and '-')"
                )
                found.append(agent.source.at(path, message))
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


def sound_steps(source: Source) -> list[Indexed]:
    """The steps of `source` that are mappings, with their indices."""
    return _sound_steps(source)


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


def matrix_instances(source: Source, steps: list[Indexed]) -> dict[str, int]:
    """The instance ids of the sound matrix steps, each with the index of its step."""
    from wfrun.matrix import instances

    found: dict[str, int] = {}
    for index, step in steps:
        matrix = _field(source, index, step, "matrix")
        step_id = _field(source, index, step, "id")
        if isinstance(matrix, dict) and isinstance(step_id, str):
            for instance, _ in instances(step_id, matrix):
                found.setdefault(instance, index)
    return found


def _first_ids(source: Source, steps: list[Indexed]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for index, step in steps:
        step_id = _field(source, index, step, "id")
        if isinstance(step_id, str):
            ids.setdefault(step_id, index)
    return ids


def _malformed_ids(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    """Ids the schema's pattern lets through: its `$` also matches before a final newline."""
    for index, step in steps:
        step_id = _field(source, index, step, "id")
        if isinstance(step_id, str) and not STEP_ID.fullmatch(step_id):
            message = f"invalid step id {step_id!r}: use only letters, digits, '_' and '-'"
            yield source.at(("steps", index, "id"), message)


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
    vocabulary = Vocabulary(ids)  # one index for every misspelt dependency of the file
    for index, step in steps:
        label = step_label(source.data, index)
        for j, dep in enumerate(_field(source, index, step, "dependsOn") or ()):
            path = ("steps", index, "dependsOn", j)
            if dep == step.get("id"):
                yield source.at(path, f"{label} depends on itself")
            elif dep not in ids:
                hint = vocabulary.did_you_mean(dep)
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
            yield _cycle_diagnostic(source, cycle, ids)


def _cycle_diagnostic(source: Source, cycle: list[int], ids: dict[str, int]) -> Diagnostic:
    steps = source.data["steps"]
    names = [steps[i]["id"] for i in cycle]
    deps = steps[cycle[0]]["dependsOn"]
    # The edge may be written as the id of one instance of a matrix step.
    first_dep = next(j for j, dep in enumerate(deps) if ids.get(dep) == cycle[1])
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
    vocabulary = Vocabulary(declared)
    for index, step in steps:
        resource = _field(source, index, step, "parallel", "resource")
        for pool, units in requested_units(resource).items():
            path = _resource_path(index, resource, pool)
            label = step_label(data, index)
            if pool not in declared:
                hint = _known_hint(pool, vocabulary, declared, "declared", _NO_POOLS)
                yield source.at(path, f"{label} uses unknown pool {pool!r} ({hint})")
                continue
            capacity = declared[pool]
            if source.ok(("parallel", "resources", pool)) and units > capacity:
                message = (
                    f"{label} asks for {units} units of pool {pool!r}, whose capacity is {capacity}"
                )
                yield source.at(path, message)


def _known_hint(
    name: str, vocabulary: Vocabulary, known: Mapping[str, Any], label: str, when_none: str
) -> str:
    """`did you mean 'x'? declared: a, b` — or what to do when there is nothing to choose from."""
    if not known:
        return when_none
    match = vocabulary.closest(name)
    suggestion = f"did you mean {match!r}? " if match else ""
    return f"{suggestion}{label}: {listed(known)}"


_NO_POOLS = "no pools are declared under parallel.resources"
_NO_AGENTS = "no agents are declared: add an agents: section or pass --agents FILE"


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
    vocabulary = Vocabulary(agents)
    for index, step in steps:
        name = _field(source, index, step, "config", "agent")
        if step.get("type") != "agent" or not isinstance(name, str):
            continue
        path = ("steps", index, "config", "agent")
        label = step_label(source.data, index)
        agent = agents.get(name)
        if agent is None:
            hint = _known_hint(name, vocabulary, agents, "known", _NO_AGENTS)
            yield source.at(path, f"{label} uses unknown agent {name!r} ({hint})")
            continue
        given = _field(source, index, step, "config", "parameters")
        if given is None and not source.ok(("steps", index, "config", "parameters")):
            continue
        known = {**(agent.field("parameters") or {}), **(given or {})}
        if given:
            parameters_path = ("steps", index, "config", "parameters")
            yield from _parameter_clashes(source, parameters_path, known, given)
        for parameter in agent_parameters(agent):
            if parameter not in known:
                message = (
                    f"{label} gives no value for parameter {parameter!r} of agent {name!r} "
                    f"(set config.parameters.{parameter}, or a default in the agent's parameters)"
                )
                yield source.at(path, message)


def parameter_variable(name: str) -> str:
    """The environment variable an agent parameter is given as: `a-b` -> WFRUN_PARAM_A_B."""
    return "WFRUN_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _parameter_clashes(
    source: Source, path: JsonPath, parameters: Mapping[str, Any], own: Mapping[str, Any]
) -> Iterator[Diagnostic]:
    """Parameters that would be given as the same WFRUN_PARAM_<NAME> variable; only clashes
    with a name of `own` (those written at `path`) are reported there."""
    first: dict[str, str] = {}
    for name in parameters:
        variable = parameter_variable(name)
        if variable not in first:
            first[variable] = name
        elif name in own or first[variable] in own:
            message = (
                f"parameters {first[variable]!r} and {name!r} would both be given to the agent "
                f"as {variable}: rename one"
            )
            yield source.at(path, message)


_WORD = re.compile(r"(?:\$\{\{.*?\}\}|\S)+")


def _command_lines(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    """A whole command line in `command` without `shell: true` names no program that exists."""
    for index, step in steps:
        if step.get("type", "script") != "script":
            continue
        command = _field(source, index, step, "config", "command")
        if not isinstance(command, str) or _field(source, index, step, "config", "shell"):
            continue
        # A `${{ … }}` reference is one value, spaces inside it or not.
        words = _WORD.findall(command)
        if len(words) < 2 or ("/" in words[0] and not any(w.startswith("-") for w in words)):
            continue  # one word, or a path with a space in it (`/opt/My Tools/bin/tool`)
        args = ", ".join(words[1:])
        message = (
            f"{step_label(source.data, index)} runs {_shortened(command)!r} without a shell, "
            f"which looks for a program of that whole name: write command: {words[0]} and "
            f"args: [{_shortened(args)}], or set shell: true"
        )
        yield source.at(("steps", index, "config", "command"), message)


def _empty_commands(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    """An empty command names no program (and with shell: true runs nothing and succeeds)."""
    for index, step in steps:
        if step.get("type", "script") != "script":
            continue
        command = _field(source, index, step, "config", "command")
        if isinstance(command, str) and not command.strip():
            path: JsonPath = ("steps", index, "config", "command")
            yield source.at_value(path, f"{source.name(path)} is empty: name the program to run")


def _shortened(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _env_names(source: Source, paths: Iterable[JsonPath]) -> Iterator[Diagnostic]:
    """Names a process environment cannot hold (empty, or with `=` in them), and names no
    shell or program could read back (with whitespace or control characters)."""
    for path in paths:
        env = _value_at(source.data, path)
        if not isinstance(env, dict) or not source.ok(path):
            continue
        for name in env:
            problem = _env_name_problem(name)
            if problem is not None:
                message = f"environment variable name {name!r} in {source.name(path)} {problem}"
                yield source.at((*path, name), message)


def _env_name_problem(name: str) -> str | None:
    if name == "":
        return "is empty"
    if "=" in name:
        return "contains '='"
    if any(char.isspace() for char in name):
        return "contains whitespace"
    if not name.isprintable():
        return "contains a control character"
    return None


def _finite_metadata(source: Source) -> Iterator[Diagnostic]:
    """`.nan` and `.inf` (or a number too long to hold) in `metadata`: the report is JSON, which
    has no such numbers."""
    metadata = _value_at(source.data, ("metadata",))
    if not isinstance(metadata, dict):
        return
    work: list[tuple[JsonPath, Any]] = [(("metadata",), metadata)]
    seen: set[int] = set()  # aliases share values: each is walked once
    while work:
        path, value = work.pop()
        if isinstance(value, float) and not math.isfinite(value):
            message = f"{source.name(path)} is not a finite number (quote it to keep it as text)"
            yield source.at_value(path, message)
        elif isinstance(value, dict | list) and id(value) not in seen:
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            work += [((*path, key), item) for key, item in items]


MAX_BACKOFF = 100


def _backoffs(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    """`retry.backoff` below 1 would shrink the waits; the schema cannot word that well for a
    fractional number."""
    paths: list[JsonPath] = [("defaults", "retry", "backoff")]
    paths += [("steps", index, "retry", "backoff") for index, _ in steps]
    for path in paths:
        value = _value_at(source.data, path)
        if isinstance(value, bool) or not isinstance(value, int | float) or not source.ok(path):
            continue
        if not (1 <= value <= MAX_BACKOFF):  # also NaN
            message = (
                f"{source.name(path)} must be from 1 to {MAX_BACKOFF} (the factor each wait is "
                f"multiplied by; 1 keeps the delay the same), got {value}"
            )
            yield source.at_value(path, message)


def _durations(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    paths: list[JsonPath] = [("timeout",)]
    paths += [("steps", index, "config", "timeout") for index, _ in steps]
    retries: list[JsonPath] = [("defaults", "retry")]
    retries += [("steps", index, "retry") for index, _ in steps]
    paths += [(*retry, key) for retry in retries for key in ("delay", "maxDelay")]
    yield from duration_problems(source, paths)


def duration_problems(source: Source, paths: Iterable[JsonPath]) -> Iterator[Diagnostic]:
    """Durations the schema's pattern lets through but that make no sense, such as `0s`."""
    for path in paths:
        value = _value_at(source.data, path)
        if isinstance(value, str) and source.ok(path):
            try:
                parse_duration(value)
            except ValueError as error:
                yield source.at_value(path, f"{source.name(path)}: {error}")


def _value_at(data: Any, path: JsonPath) -> Any:
    for part in path:
        if isinstance(part, int):
            data = data[part] if isinstance(data, list) and part < len(data) else None
        else:
            data = data.get(part) if isinstance(data, dict) else None
    return data
