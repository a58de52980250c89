"""Checks of the data flowing between steps (SPEC §10): `${{ }}` references, `if:` conditions and
matrices, each problem at its own line and column, inside the string where the reference is.

Like `checks`, these look at the plain data of the file after schema validation, only at the
parts the schema found sound, and return diagnostics; none raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wfrun.checks import Indexed, JsonPath, Source, _field, _value_at, step_label
from wfrun.errors import Diagnostic
from wfrun.expressions import ExpressionError, Function, FunctionCall, Reference
from wfrun.matrix import (
    EXCLUDE,
    MAX_INSTANCES,
    expand,
    instance_id,
    matrix_keys,
    raw_count,
    same_value,
    value_text,
)
from wfrun.suggest import closest, listed
from wfrun.templates import parse_condition, parse_template, template_problems

CONTEXTS = ("steps", "vars", "env", "matrix", "run", "workflow")
STEP_FIELDS = ("outputs", "status")
RUN_FIELDS = ("id", "dir")
WORKFLOW_FIELDS = ("name",)
# A reference to these in a shell command would paste a run-time value into shell code.
SHELL_UNSAFE = ("steps", "env")
_STATUS_FUNCTIONS = {Function.SUCCESS, Function.FAILURE, Function.ALWAYS}


@dataclass(frozen=True, slots=True)
class _Graph:
    """What reference checks need to know about the steps of the file."""

    ids: Mapping[str, int]  # step id and matrix instance id -> index of the step
    matrix_steps: Mapping[str, tuple[str, ...]]  # matrix step id -> its instance ids
    upstream: Mapping[int, frozenset[int]]  # index -> indices of its transitive dependencies


def templated_fields(step: Mapping[str, Any]) -> Iterator[tuple[JsonPath, str]]:
    """(path inside the step, text) of every string of the step that may hold references."""
    config = step.get("config")
    if not isinstance(config, dict):
        return
    keys = ("command", "workingDirectory", "prompt")
    for key in keys:
        if isinstance(config.get(key), str):
            yield ("config", key), config[key]
    args = config.get("args")
    for j, arg in enumerate(args if isinstance(args, list) else ()):
        if isinstance(arg, str):
            yield ("config", "args", j), arg
    for block in ("env", "parameters"):
        mapping = config.get(block)
        for name, value in (mapping if isinstance(mapping, dict) else {}).items():
            if isinstance(value, str):
                yield ("config", block, name), value


def check_data_flow(source: Source, steps: list[Indexed]) -> list[Diagnostic]:
    """Every problem of the references, conditions and matrices of the workflow in `source`."""
    found: list[Diagnostic] = []
    found += _unsubstituted(source, steps)
    found += _matrices(source, steps)
    graph = _graph(source, steps)
    declared = source.data.get("vars") if isinstance(source.data, dict) else None
    variables = sorted(declared) if isinstance(declared, dict) and source.ok(("vars",)) else []
    for index, step in steps:
        checker = _StepChecker(source, index, step, graph, variables)
        for path, text in templated_fields(step):
            full = ("steps", index, *path)
            if source.ok(full):
                found += checker.string(full, text)
        if isinstance(step.get("name"), str) and source.ok(("steps", index, "name")):
            found += checker.name(("steps", index, "name"), step["name"])
        condition = step.get("if")
        if isinstance(condition, str) and source.ok(("steps", index, "if")):
            found += checker.condition(("steps", index, "if"), condition)
    return found


# ---- where references are not substituted -----------------------------------------------------

_WHERE_REFERENCES_WORK = (
    "references are substituted in a step's config (command, args, env, workingDirectory, "
    "prompt, parameters) and its if"
)


def _unsubstituted(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    """`${{` where nothing substitutes it would reach a program or a display as written."""
    data = source.data if isinstance(source.data, dict) else {}
    places: list[JsonPath] = [("name",)]
    env = data.get("env")
    places += [("env", name) for name in (env if isinstance(env, dict) else {})]
    agents = data.get("agents")
    for name, agent in (agents if isinstance(agents, dict) else {}).items():
        if not isinstance(agent, dict):
            continue
        command = agent.get("command")
        places += [("agents", name, "command", j) for j in range(len(command or ()))]
        agent_env = agent.get("env")
        places += [("agents", name, "env", k) for k in (agent_env or {})]
    for index, step in steps:
        matrix = step.get("matrix")
        for key, values in (matrix if isinstance(matrix, dict) else {}).items():
            if key != EXCLUDE and isinstance(values, list):
                places += [("steps", index, "matrix", key, j) for j in range(len(values))]
    for path in places:
        value = _value_at(data, path)
        if isinstance(value, str) and "${{" in value and source.ok(path):
            where = "a matrix value" if "matrix" in path else source.name(path)
            message = f"{where} is used as written: {_WHERE_REFERENCES_WORK}, not here"
            yield source.inside(path, value.index("${{"), message)


# ---- matrices -------------------------------------------------------------------------------


def _matrices(source: Source, steps: list[Indexed]) -> Iterator[Diagnostic]:
    taken: dict[str, int] = {}  # id -> index of the step that has it
    for index, step in steps:
        step_id = _field(source, index, step, "id")
        if isinstance(step_id, str) and not isinstance(step.get("matrix"), dict):
            taken.setdefault(step_id, index)
    for index, step in steps:
        matrix = _field(source, index, step, "matrix")
        step_id = _field(source, index, step, "id")
        if not isinstance(matrix, dict) or not isinstance(step_id, str):
            continue
        path: JsonPath = ("steps", index, "matrix")
        label = step_label(source.data, index)
        keys = matrix_keys(matrix)
        if not keys:
            yield source.at(path, f"the matrix of {label} has no values, only 'exclude'")
            continue
        yield from _excludes(source, path, matrix, keys)
        expansion = expand(matrix)
        if expansion.too_many:
            message = (
                f"the matrix of {label} makes more than {MAX_INSTANCES:,} instances "
                f"({raw_count(matrix):,} combinations before exclude): split the step"
            )
            yield source.at(path, message)
            continue
        if not expansion.combinations:
            yield source.at(path, f"the matrix of {label} excludes every combination")
        for combination in expansion.combinations:
            instance = instance_id(step_id, combination)
            other = taken.get(instance)
            if other is not None:
                line = source.locate(("steps", other, "id")).line
                what = "the step" if other != index else "another instance of this step"
                message = (
                    f"the matrix of {label} makes an instance id {instance!r} that clashes "
                    f"with {what} at line {line}"
                )
                yield source.at(path, message)
                break
            taken[instance] = index


def _values(values: Any) -> list[Any]:
    return values if isinstance(values, list) else []


def _excludes(
    source: Source, path: JsonPath, matrix: Mapping[str, Any], keys: list[str]
) -> Iterator[Diagnostic]:
    for j, rule in enumerate(matrix.get(EXCLUDE) or ()):
        if not isinstance(rule, dict):
            continue
        for key, value in rule.items():
            if key not in keys:
                hint = closest(key, keys)
                suggestion = f" (did you mean {hint!r}?)" if hint else f" (keys: {listed(keys)})"
                message = f"exclude names {key!r}, which is not a key of the matrix{suggestion}"
                yield source.at((*path, EXCLUDE, j, key), message)
            elif isinstance(matrix[key], list) and not any(
                same_value(value, v) for v in matrix[key]
            ):
                shown = ", ".join(value_text(v) for v in matrix[key])
                message = (
                    f"exclude names {key}: {value_text(value)}, which is not one of its values "
                    f"({shown}): it leaves nothing out"
                )
                twin = next(
                    (
                        v
                        for v in matrix[key]
                        if type(v) is not type(value)
                        and value_text(v).lower() == value_text(value).lower()
                    ),
                    None,
                )
                if twin is not None:  # the same text, another YAML type: `"3.11"` and 3.11
                    message += (
                        f" (here it is {_typed(value)}, in the matrix {_typed(twin)}: quote both "
                        "or neither)"
                    )
                yield source.at_value((*path, EXCLUDE, j, key), message)


def _typed(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    kind = "boolean" if isinstance(value, bool) else "number" if value is not None else "null"
    return f"the {kind} {value_text(value)}"


# ---- the graph ------------------------------------------------------------------------------


def _graph(source: Source, steps: list[Indexed]) -> _Graph:
    ids: dict[str, int] = {}
    matrix_steps: dict[str, tuple[str, ...]] = {}
    for index, step in steps:
        step_id = _field(source, index, step, "id")
        if not isinstance(step_id, str):
            continue
        ids.setdefault(step_id, index)
        matrix = _field(source, index, step, "matrix")
        if isinstance(matrix, dict) and matrix_keys(matrix):
            expansion = expand(matrix)
            names = tuple(instance_id(step_id, c) for c in expansion.combinations)
            matrix_steps[step_id] = names
            for name in names:
                ids.setdefault(name, index)
    direct: dict[int, set[int]] = {}
    for index, step in steps:
        deps = _field(source, index, step, "dependsOn") or ()
        direct[index] = {ids[d] for d in deps if isinstance(d, str) and d in ids} - {index}
    upstream: dict[int, frozenset[int]] = {}
    for index in direct:
        upstream[index] = _closure(index, direct)
    return _Graph(ids, matrix_steps, upstream)


def _closure(start: int, direct: Mapping[int, set[int]]) -> frozenset[int]:
    seen: set[int] = set()
    stack = list(direct.get(start, ()))
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(direct.get(node, ()))
    return frozenset(seen)


# ---- references -----------------------------------------------------------------------------


class _StepChecker:
    """The reference checks of one step."""

    def __init__(
        self,
        source: Source,
        index: int,
        step: Mapping[str, Any],
        graph: _Graph,
        variables: list[str],
    ) -> None:
        self.source = source
        self.index = index
        self.step = step
        self.graph = graph
        self.variables = variables
        self.label = step_label(source.data, index)
        matrix = step.get("matrix")
        # A matrix the schema refused has keys nobody knows: its references are not judged.
        self.matrix_unknown = "matrix" in step and not (
            isinstance(matrix, dict) and source.ok(("steps", index, "matrix"))
        )
        self.matrix_keys = matrix_keys(matrix) if isinstance(matrix, dict) else None
        config = step.get("config")
        self.shell = isinstance(config, dict) and config.get("shell") is True

    def string(self, path: JsonPath, text: str) -> Iterator[Diagnostic]:
        problems = template_problems(text)
        for problem in problems:
            yield self._at(path, problem.offset, f"{self._where(path)}: {problem.message}")
        if problems:
            return
        template = parse_template(text)
        in_shell = self.shell and path[2:] == ("config", "command")
        for reference in template.references():
            yield from self.reference(path, reference, in_shell)
        for call in template.calls():
            yield from self._status_call(path, call)

    def name(self, path: JsonPath, text: str) -> Iterator[Diagnostic]:
        """A name may read the step's matrix values, which are known when the file loads."""
        problems = template_problems(text)
        for problem in problems:
            yield self._at(path, problem.offset, f"{self._where(path)}: {problem.message}")
        if problems:
            return
        for reference in parse_template(text).references():
            if reference.context != "matrix":
                message = (
                    f"{self._where(path)}: a name can only read matrix values "
                    f"(${{{{ matrix.NAME }}}}), not {reference.context}"
                )
                yield self._at(path, reference.offset, message)
            else:
                yield from self.reference(path, reference, False)

    def condition(self, path: JsonPath, text: str) -> Iterator[Diagnostic]:
        try:
            condition = parse_condition(text)
        except ExpressionError as error:
            yield self._at(path, error.offset, f"{self._where(path)}: {error.message}")
            return
        for reference in condition.references():
            yield from self.reference(path, reference, False)

    def reference(self, path: JsonPath, ref: Reference, in_shell: bool) -> Iterator[Diagnostic]:
        where = self._where(path)
        if ref.context not in CONTEXTS:
            hint = closest(ref.context, CONTEXTS)
            suggestion = f"did you mean {hint!r}? " if hint else ""
            message = (
                f"{where}: unknown context {ref.context!r} "
                f"({suggestion}contexts: {', '.join(CONTEXTS)})"
            )
            yield self._at(path, ref.offset, message)
            return
        if in_shell and ref.context in SHELL_UNSAFE:
            yield self._at(path, ref.offset, _shell_message(self.label, ref))
            return
        check = getattr(self, f"_{ref.context}")
        yield from check(path, ref)

    # One method per context: (path, reference) -> diagnostics.

    def _steps(self, path: JsonPath, ref: Reference) -> Iterator[Diagnostic]:
        if not ref.path or not isinstance(ref.path[0], str):
            return
        target = ref.path[0]
        offset = ref.part_offsets[0]
        where = self._where(path)
        index = self.graph.ids.get(target)
        if index is None:
            hint = closest(target, list(self.graph.ids))
            suggestion = f" (did you mean {hint!r}?)" if hint else ""
            yield self._at(path, offset, f"{where}: unknown step {target!r}{suggestion}")
            return
        if index == self.index:
            message = f"{where}: a step cannot read its own outputs or status"
            yield self._at(path, offset, message)
            return
        if index not in self.graph.upstream.get(self.index, frozenset()):
            base = self.source.data["steps"][index].get("id", target)
            message = (
                f"{where}: {self.label} reads steps.{target} but does not depend on it: "
                f"add {base!r} to dependsOn"
            )
            yield self._at(path, offset, message)
            return
        if len(ref.path) < 2:
            return
        field_name = ref.path[1]
        if field_name not in STEP_FIELDS:
            hint = closest(str(field_name), STEP_FIELDS)
            suggestion = f"did you mean {hint!r}? " if hint else ""
            message = (
                f"{where}: steps.{target} has no {field_name!r} ({suggestion}a step has "
                f"'outputs' and 'status')"
            )
            yield self._at(path, ref.part_offsets[1], message)
            return
        instances = self.graph.matrix_steps.get(target)
        if instances:
            example = instances[0]
            message = (
                f"{where}: steps.{target}.{field_name} is ambiguous: {target!r} is a matrix step "
                f"with {len(instances)} instances; read one of them, e.g. "
                f"steps.{example}.{field_name}"
            )
            yield self._at(path, offset, message)

    def _vars(self, path: JsonPath, ref: Reference) -> Iterator[Diagnostic]:
        if not ref.path or not isinstance(ref.path[0], str):
            return
        name = ref.path[0]
        if name in self.variables:
            return
        where = self._where(path)
        if not self.variables:
            message = (
                f"{where}: unknown variable {name!r}: no vars are declared (add a vars: section)"
            )
        else:
            hint = closest(name, self.variables)
            suggestion = f"did you mean {hint!r}? " if hint else ""
            message = (
                f"{where}: unknown variable {name!r} "
                f"({suggestion}declared: {listed(self.variables)})"
            )
        yield self._at(path, ref.part_offsets[0], message)

    def _env(self, path: JsonPath, ref: Reference) -> Iterator[Diagnostic]:
        return iter(())  # the process environment is only known when the run starts

    def _matrix(self, path: JsonPath, ref: Reference) -> Iterator[Diagnostic]:
        if not ref.path or not isinstance(ref.path[0], str):
            return
        name = ref.path[0]
        where = self._where(path)
        if self.matrix_unknown:
            return
        if self.matrix_keys is None:
            message = f"{where}: {self.label} has no matrix to read {name!r} from"
            yield self._at(path, ref.offset, message)
        elif name not in self.matrix_keys:
            hint = closest(name, self.matrix_keys)
            suggestion = f"did you mean {hint!r}? " if hint else ""
            message = (
                f"{where}: the matrix of {self.label} has no key {name!r} "
                f"({suggestion}keys: {listed(self.matrix_keys)})"
            )
            yield self._at(path, ref.part_offsets[0], message)

    def _run(self, path: JsonPath, ref: Reference) -> Iterator[Diagnostic]:
        yield from self._fields(path, ref, RUN_FIELDS)

    def _workflow(self, path: JsonPath, ref: Reference) -> Iterator[Diagnostic]:
        yield from self._fields(path, ref, WORKFLOW_FIELDS)

    def _fields(
        self, path: JsonPath, ref: Reference, known: tuple[str, ...]
    ) -> Iterator[Diagnostic]:
        if not ref.path or ref.path[0] in known:
            return
        field_name = str(ref.path[0])
        hint = closest(field_name, known)
        suggestion = f"did you mean {hint!r}? " if hint else ""
        message = (
            f"{self._where(path)}: {ref.context} has no {field_name!r} "
            f"({suggestion}it has {listed(list(known))})"
        )
        yield self._at(path, ref.part_offsets[0], message)

    def _status_call(self, path: JsonPath, call: FunctionCall) -> Iterator[Diagnostic]:
        if call.function in _STATUS_FUNCTIONS:
            message = (
                f"{self._where(path)}: {call.function.value}() can only be used in a step's 'if'"
            )
            yield self._at(path, call.offset, message)

    def _where(self, path: JsonPath) -> str:
        return f"in {self.source.name(path)}"

    def _at(self, path: JsonPath, offset: int, message: str) -> Diagnostic:
        return self.source.inside(path, offset, message)


def _shell_message(label: str, ref: Reference) -> str:
    name = _variable_name(ref)
    return (
        f"{label} runs its command through a shell (shell: true): a ${{{{ {ref.dotted} }}}} "
        f"value would become shell code. Pass it through the step's env "
        f"(env: {{{name}: '${{{{ {ref.dotted} }}}}'}}) and write \"${name}\" in the command"
    )


def _variable_name(ref: Reference) -> str:
    last = str(ref.path[-1]) if ref.path else ref.context
    cleaned = "".join(c if c.isalnum() else "_" for c in last).upper()
    return cleaned if cleaned and not cleaned[0].isdigit() else f"VALUE_{cleaned}"
