"""The workflow as the user declared it: frozen, typed, and free of run-time state."""

import enum
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from wfrun.retry import RetryPolicy

DEFAULT_MAX_CONCURRENCY = 4

# What a step id may be (SPEC §2). Always used with `fullmatch`: `$` would let "a\n" through.
STEP_ID = re.compile(r"[A-Za-z0-9_-]+")

Requirement = tuple[tuple[tuple[str, int], ...], int | None]  # (sorted pool units, step limit)

# A matrix value as the file wrote it (SPEC §10.5).
MatrixValue = str | int | float | bool


def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only mapping, so the frozen model cannot be changed through its dict fields."""
    return MappingProxyType(dict(items or {}))


# The default of the model's mapping fields: one read-only empty mapping, shared.
_EMPTY: Mapping[str, Any] = frozen_map()


class StepType(enum.Enum):
    SCRIPT = "script"
    AGENT = "agent"


class PromptMode(enum.Enum):
    """How an agent program receives its prompt."""

    STDIN = "stdin"
    ARGUMENT = "argument"  # appended to the argv
    PLACEHOLDER = "{prompt}"  # substituted where `{prompt}` stands in the command


class OutputFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


class Position(NamedTuple):
    """1-based line and column of a node in the workflow file."""

    line: int
    col: int


class ScriptConfig(NamedTuple):
    """`type: script`: a process, run from an argument list unless `shell` is set."""

    command: str
    args: tuple[str, ...] = ()
    shell: bool = False
    working_directory: str | None = None  # relative to the workflow file's directory
    env: Mapping[str, str] = _EMPTY
    timeout: float | None = None  # seconds

    def argv(self) -> list[str]:
        """The argument list the process is started with."""
        if self.shell:
            return ["/bin/sh", "-c", self.command]
        return [self.command, *self.args]

    def display(self) -> str:
        """The command as a user would type it, for summaries and digests."""
        import shlex

        if self.shell:
            return self.command
        return shlex.join([self.command, *self.args])


class AgentConfig(NamedTuple):
    """`type: agent`: a prompt sent to a declared agent program."""

    agent: str
    prompt: str
    parameters: Mapping[str, str] = _EMPTY
    working_directory: str | None = None
    env: Mapping[str, str] = _EMPTY
    timeout: float | None = None


class Agent(NamedTuple):
    """An entry of the `agents:` section: a non-interactive program that answers a prompt."""

    name: str
    command: tuple[str, ...]
    prompt: PromptMode = PromptMode.STDIN
    output: OutputFormat = OutputFormat.TEXT
    result: str | None = None  # dotted key of the reply when output is json
    parameters: Mapping[str, str] = _EMPTY
    env: Mapping[str, str] = _EMPTY
    timeout: float | None = None
    position: Position = Position(1, 1)
    # Set for an agent of an `--agents` file: that file's directory, against which the loader
    # made absolute the relative paths of files in `command` (None: the workflow's own agent).
    base_dir: Path | None = None


class StepParallel(NamedTuple):
    """A step's `parallel:` block."""

    enabled: bool = True
    max_concurrency: int | None = None
    resources: Mapping[str, int] = _EMPTY  # pool -> units
    isolate_errors: bool = True

    @property
    def effective_max_concurrency(self) -> int | None:
        """`enabled: false` means the step runs alone, the same as `maxConcurrency: 1`."""
        if not self.enabled:
            return 1
        return self.max_concurrency

    @property
    def requirement(self) -> Requirement:
        """What the step needs to start. Ready steps with equal requirements wait for the same
        reason, which is how the scheduler can say why a thousand steps wait in one event."""
        return (tuple(sorted(self.resources.items())), self.effective_max_concurrency)


class Step(NamedTuple):
    """One entry of `steps:` (after matrix expansion: one instance), as the file declared it."""

    id: str
    name: str
    type: StepType
    config: ScriptConfig | AgentConfig
    depends_on: tuple[str, ...] = ()
    parallel: StepParallel = StepParallel()
    continue_on_error: bool = False
    # Its position in the file, the tie-breaker that keeps runs deterministic. (It hides
    # tuple.index, which no one calls on a step.)
    index: int = 0  # type: ignore[assignment]
    position: Position = Position(1, 1)
    condition: str | None = None  # `if:` as written (SPEC §10.3); None behaves as success()
    # A matrix instance (SPEC §10.5): the id of the step it was expanded from, and its values.
    base_id: str | None = None
    matrix: Mapping[str, MatrixValue] = _EMPTY
    retry: RetryPolicy | None = None  # its own `retry:`, else the workflow's `defaults.retry`
    estimate: float | None = None  # seconds `plan --simulate` assumes without an earlier run

    @property
    def max_attempts(self) -> int:
        return 1 if self.retry is None else self.retry.max_attempts

    @property
    def timeout(self) -> float | None:
        return self.config.timeout

    def config_texts(self) -> list[str]:
        """The strings of its config that `${{ }}` references may stand in (SPEC §10.2)."""
        config = self.config
        texts = [*config.env.values(), config.working_directory or ""]
        if isinstance(config, ScriptConfig):
            texts += [config.command, *config.args]
        else:
            texts += [config.prompt, *config.parameters.values()]
        return texts

    def config_has_references(self) -> bool:
        """Whether a string of its config holds `${{` (most do not: they run as written, and
        the expression modules are not even imported for them)."""
        return any("${{" in text for text in self.config_texts())


class ParallelConfig(NamedTuple):
    """The workflow's top-level `parallel:` block."""

    enabled: bool = True
    default_max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    resources: Mapping[str, int] = _EMPTY  # pool -> capacity


class Workflow(NamedTuple):
    """A loaded workflow file: its steps in file order and its top-level settings."""

    name: str
    steps: tuple[Step, ...]
    version: str | None = None
    description: str | None = None
    env: Mapping[str, str] = _EMPTY
    timeout: float | None = None
    metadata: Mapping[str, Any] = _EMPTY
    parallel: ParallelConfig = ParallelConfig()
    agents: Mapping[str, Agent] = _EMPTY
    file: Path | None = None  # where it was loaded from; None when built in code
    vars: Mapping[str, str] = _EMPTY  # after `--set` (SPEC §10.6)
    secrets: tuple[str, ...] = ()  # names of env variables whose values are masked (§10.7)
    base_dir: Path = Path(".")  # working directories are relative to this

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(step.id for step in self.steps)
