"""Hostile and broken workflow files, and what wfrun must do with each: never raise anything but
WorkflowError, give every diagnostic a place in the file, and plan and dry-run what it accepts.

Shared by tests/test_fuzz.py (a few hundred cases in CI) and bench/fuzz.py (10,000 cases, each
in a worker process under a time and memory limit).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console

from wfrun.errors import WorkflowError
from wfrun.executors.dry_run import DryRunExecutor
from wfrun.loader import load_workflow_text, parse_agents_text
from wfrun.planner import make_plan
from wfrun.reporters.plain import PlainReporter
from wfrun.reporters.plan_view import plan_dot, plan_mermaid, plan_view
from wfrun.runner import WorkflowRunner

TESTS = Path(__file__).parent
SEED_FILES = sorted(
    [*(TESTS.parent / "sample-workflows").glob("*.yaml"), *(TESTS / "workflows").rglob("*.yaml")]
)

# Values that broke wfrun once, or could: numbers out of every range, unhashable types, tags,
# control characters, ids that are paths.
ATTACK_VALUES = [
    ".nan",
    ".inf",
    "-.inf",
    "9" * 400,
    "9" * 5000,
    "-" + "9" * 120,
    "1e400",
    "{}",
    "[]",
    "~",
    "!!python/object/apply:os.system [echo hi]",
    "!!binary aGk=",
    "!custom x",
    "3000000h",
    "0s",
    "168h",
    "169h",
    "300000",
    '"a\\n"',
    '"a\\0b"',
    '"\\e[2J"',
    '"../../x"',
    '"{param.a b}"',
    "*nowhere",
    "&anchor [*anchor]",
    '""',
    '"="',
    "python3 -m tabnanny packages",
    "yes",
    "0x10",
    "2001-01-01",
]
CHARACTERS = list("\x00\x01\x07\x1b\x7f\t\n\r :-{}[]&*!|>'\"#%@`,?~\\é€\u2028\ufeff\U0001f600")


def seed_texts() -> list[str]:
    return [path.read_text(encoding="utf-8") for path in SEED_FILES]


def mutate(text: str, rng: random.Random) -> str:
    """One to three random edits of `text`: characters, lines, indentation, attack values."""
    for _ in range(rng.randint(1, 3)):
        lines = text.split("\n")
        kind = rng.randrange(7)
        at = rng.randrange(len(text) + 1)
        if kind == 0:
            text = text[:at] + rng.choice(CHARACTERS) + text[at:]
        elif kind == 1:
            text = text[:at] + text[at + rng.randint(1, 20) :]
        elif kind == 2 and lines:
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif kind == 3 and len(lines) > 1:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif kind == 4 and lines:
            i = rng.randrange(len(lines))
            lines[i] = " " * rng.choice([1, 2, 4]) + lines[i]
            text = "\n".join(lines)
        elif kind == 5:
            text = _replace_a_value(text, rng)
        else:
            text = text[:at]
    return text


def _replace_a_value(text: str, rng: random.Random) -> str:
    """Put an attack value after one `key:` of the text."""
    colons = [i for i, char in enumerate(text) if char == ":" and text[i + 1 : i + 2] == " "]
    if not colons:
        return text + "\n" + rng.choice(["timeout", "steps", "env", "x"]) + ": "
    at = rng.choice(colons) + 2
    end = text.find("\n", at)
    end = len(text) if end == -1 else end
    return text[:at] + rng.choice(ATTACK_VALUES) + text[end:]


def alias_bomb(levels: int) -> str:
    lines = ["steps: [{id: a, config: {command: 'true'}}]", "metadata:", "  a0: &a0 [x, x, x]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"  a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int) -> str:
    lines = ["steps: [{id: a, config: {command: 'true'}}]", "x-base:", "  m0: &m0 {k: v}"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*m{level - 1}"] * 10)
        lines.append(f"  m{level}: &m{level} {{<<: [{refs}], k{level}: v}}")
    return "\n".join(lines) + "\n"


def attacks() -> Iterator[str]:
    """Hand-made hostile files: each broke wfrun, or would break a careless loader."""
    step = "steps: [{id: a, config: {command: 'true'}}]\n"
    yield alias_bomb(6)
    yield alias_bomb(9)
    yield merge_bomb(8)
    yield "a: &a [*a]\n" + step
    for depth in (150, 600, 2_000, 20_000):
        yield step + "metadata: " + "[" * depth + "]" * depth + "\n"
    for depth in (150, 600, 2_000):
        yield step + "metadata:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, depth))
    yield from ("~", "null", "", "---", "--- ~", "[]", "42", "'text'", "{}")
    for character in "\x00\x01\x1b\x7f\ufffe":
        yield f"steps: [{{id: a, config: {{command: 'tr{character}ue'}}}}]\n"
    for value in ATTACK_VALUES:
        yield f"timeout: {value}\n" + step
        yield f"steps: [{{id: a, type: {value}, config: {{command: x}}}}]\n"
        yield f"parallel: {{resources: {{cpu: {value}}}}}\n" + step
        yield f"steps: [{{id: {value}, config: {{command: x}}}}]\n"
        yield f"steps: [{{id: a, config: {{command: x, env: {{{value}: v}}, args: [{value}]}}}}]\n"
    yield "agents: {b: {command: ['{param.a b}']}}\n" + step
    yield (
        "agents: {b: {command: [x, '{param.a-b}'], parameters: {a-b: '1', a_b: '2'}}}\n"
        "steps: [{id: s, type: agent, config: {agent: b, prompt: p}}]\n"
    )
    yield "x-defaults: &d {command: 'true'}\nsteps: [{id: a, config: *d}]\n"
    yield "steps:\n" + "".join(f"  - {{id: s{i}, config: {{command: x}}}}\n" for i in range(50))


def workflow_values() -> object:
    """A hypothesis strategy of workflow-shaped documents with arbitrary values in them."""
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(["30s", "5m", "1h30m", "0s", "900", "cpu", "a", "b", "script", "agent"]),
    )
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )
    ids = st.one_of(st.sampled_from(["a", "b", "c", "a-b", "a_b"]), st.text(max_size=6))
    config = st.fixed_dictionaries(
        {"command": st.one_of(st.just("true"), values)},
        optional={
            "args": values,
            "shell": values,
            "env": values,
            "timeout": values,
            "agent": values,
            "prompt": values,
        },
    )
    step = st.fixed_dictionaries(
        {"id": st.one_of(ids, values), "config": st.one_of(config, values)},
        optional={
            "type": st.one_of(st.sampled_from(["script", "agent"]), values),
            "dependsOn": st.one_of(st.lists(ids, max_size=3), values),
            "parallel": st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={"resource": values, "maxConcurrency": values, "enabled": values},
                ),
                values,
            ),
            "continueOnError": values,
            "name": values,
        },
    )
    return st.fixed_dictionaries(
        {"steps": st.one_of(st.lists(step, min_size=1, max_size=4), values)},
        optional={
            "timeout": values,
            "env": values,
            "parallel": st.one_of(
                st.fixed_dictionaries(
                    {}, optional={"resources": values, "defaultMaxConcurrency": values}
                ),
                values,
            ),
            "agents": values,
            "metadata": values,
            "x-extra": values,
            "name": values,
        },
    )


def dump(document: object) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one file: accepted (and planned and dry-run) or refused."""

    valid: bool
    diagnostics: int
    unpositioned: tuple[str, ...] = ()  # diagnostics without a usable place in the file


def exercise(text: str, base_dir: Path, file: str = "fuzz.yaml") -> Outcome:
    """validate, plan (every format) and run --dry-run `text` in-process. Anything raised but a
    WorkflowError escapes: that is the traceback a user would have seen."""
    try:
        workflow = load_workflow_text(text, file, base_dir=base_dir)
    except WorkflowError as error:
        return Outcome(False, len(error.diagnostics), _unpositioned(error, text, file))
    plan = make_plan(workflow)
    console = Console(file=io.StringIO(), width=100)
    console.print(plan_view(plan))
    json.dumps(plan.to_dict())
    plan_mermaid(plan)
    plan_dot(plan)
    runner = WorkflowRunner(
        executor=DryRunExecutor(),
        reporters=[PlainReporter(io.StringIO(), color=False)],
        handle_signals=False,
        # Declared secrets must be set for a run to start: a stand-in value each.
        env={**os.environ, **dict.fromkeys(workflow.secrets, "stand-in")},
    )
    runner.execute(workflow)
    return Outcome(True, 0)


def exercise_agents_file(text: str) -> Outcome:
    """An `--agents` file goes through the same YAML stage; its problems are returned."""
    found = parse_agents_text(text, "agents.yaml")
    bad = tuple(str(d) for d in found.diagnostics if d.line < 1 or d.col < 1)
    return Outcome(not found.diagnostics, len(found.diagnostics), bad)


def _unpositioned(error: WorkflowError, text: str, file: str) -> tuple[str, ...]:
    # YAML also breaks lines at \r, NEL, U+2028 and U+2029, and positions count them; one line
    # more is where an unclosed bracket or quote is found missing.
    last_line = len(re.findall("\r\n|[\n\r\x85\u2028\u2029]", text)) + 2
    return tuple(
        str(d)
        for d in error.diagnostics
        if d.file != file or not 1 <= d.line <= last_line or d.col < 1 or not d.message
    )
