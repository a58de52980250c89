"""The loader: every scenario file in workflows/invalid gives exactly the diagnostics it expects,
and the valid files come out as the right model."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from wfrun.errors import Diagnostic, UnreadableFileError, WorkflowError
from wfrun.loader import load_workflow, load_workflow_text, parse_agents_text
from wfrun.model import (
    DEFAULT_MAX_CONCURRENCY,
    AgentConfig,
    OutputFormat,
    Position,
    PromptMode,
    ScriptConfig,
    StepType,
    Workflow,
)

TESTS = Path(__file__).parent
WORKFLOWS = TESTS / "workflows"
INVALID = sorted((WORKFLOWS / "invalid").glob("*.yaml"))
VALID = sorted((WORKFLOWS / "valid").glob("*.yaml"))
SAMPLES = sorted((TESTS.parent / "sample-workflows").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (.+)$", re.MULTILINE)


def expected_diagnostics(path: Path) -> list[str]:
    """The `# expect: LINE:COL: message` lines of a scenario, as `FILE:LINE:COL: message`."""
    return [f"{path}:{line}" for line in EXPECT.findall(path.read_text(encoding="utf-8"))]


def diagnostics_of(path: Path, agents_file: str | None = None) -> list[Diagnostic]:
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path, agents_file=agents_file)
    return caught.value.diagnostics


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ---- invalid files ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", INVALID, ids=lambda path: path.stem)
def test_invalid_workflow_gives_exactly_its_expected_diagnostics(path: Path) -> None:
    found = [str(diagnostic) for diagnostic in diagnostics_of(path)]
    assert sorted(found) == sorted(expected_diagnostics(path))


def test_every_scenario_states_what_it_expects() -> None:
    assert len(INVALID) >= 26
    assert all(expected_diagnostics(path) for path in INVALID)


def test_one_file_reports_all_its_problems_in_one_run_in_file_order() -> None:
    found = diagnostics_of(WORKFLOWS / "invalid" / "several-problems.yaml")
    assert len(found) == 9
    assert found == sorted(found, key=lambda d: (d.line, d.col))


def test_diagnostics_carry_the_path_as_the_user_gave_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "ci.yaml", "steps: []\n")
    monkeypatch.chdir(tmp_path)
    assert [str(d) for d in diagnostics_of(Path("ci.yaml"))] == [
        "ci.yaml:1:1: 'steps' must not be empty"
    ]


def test_text_without_a_file_is_named_string() -> None:
    with pytest.raises(WorkflowError) as caught:
        load_workflow_text("steps:\n  - id: a\n")
    assert str(caught.value) == "<string>:2:5: step 'a' is missing required key 'config'"


# ---- unreadable files ------------------------------------------------------------------------


def test_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="no such file"):
        load_workflow(tmp_path / "nope.yaml")


def test_a_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="is a directory"):
        load_workflow(tmp_path)


def test_a_file_that_is_not_utf8_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\nsteps: []\n".encode("latin-1"))
    with pytest.raises(UnreadableFileError, match=r"not UTF-8 text \(invalid byte at offset 9\)"):
        load_workflow(path)


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfsteps: [{id: a, config: {command: x}}]\n")
    assert load_workflow(path).step_ids == ("a",)


# ---- valid files -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID + SAMPLES, ids=lambda path: path.name)
def test_valid_workflow_loads(path: Path) -> None:
    workflow = load_workflow(path)
    assert workflow.steps
    assert workflow.file == path
    assert workflow.base_dir == path.absolute().parent


def test_minimal_workflow_gets_the_defaults() -> None:
    workflow = load_workflow(WORKFLOWS / "valid" / "minimal.yaml")
    assert workflow.name == "minimal"
    assert (workflow.version, workflow.description, workflow.timeout) == (None, None, None)
    assert (
        dict(workflow.env) == {} and dict(workflow.metadata) == {} and dict(workflow.agents) == {}
    )
    assert workflow.parallel.enabled is True
    assert workflow.parallel.default_max_concurrency == DEFAULT_MAX_CONCURRENCY
    assert dict(workflow.parallel.resources) == {}
    (step,) = workflow.steps
    assert (step.id, step.name, step.type, step.index) == ("only", "only", StepType.SCRIPT, 0)
    assert step.config == ScriptConfig(command="true")
    assert step.depends_on == ()
    assert step.parallel.enabled and step.parallel.isolate_errors
    assert step.parallel.max_concurrency is None and dict(step.parallel.resources) == {}
    assert step.continue_on_error is False
    assert step.position == Position(2, 5)


@pytest.fixture(scope="module")
def full() -> Workflow:
    return load_workflow(WORKFLOWS / "valid" / "full.yaml")


def test_full_workflow_top_level(full: Workflow) -> None:
    assert full.name == "Full Workflow"
    assert full.version == "2.1"
    assert full.description == "Every key of the format."
    assert dict(full.env) == {"STAGE": "ci", "RETRIES": "3"}
    assert full.timeout == 5400.0
    assert dict(full.metadata) == {
        "author": "ci-team",
        "tags": ["nightly", "release"],
        "created": "2026-11-26",  # a YAML timestamp keeps its text: the report is JSON
    }
    assert (full.parallel.enabled, full.parallel.default_max_concurrency) == (False, 6)
    assert dict(full.parallel.resources) == {"cpu": 2, "network": 4, "database": 1}
    assert full.step_ids == ("setup", "build-frontend", "fetch", "migrate", "review", "summarize")
    assert [step.index for step in full.steps] == [0, 1, 2, 3, 4, 5]


def test_full_workflow_script_steps(full: Workflow) -> None:
    build = full.step("build-frontend")
    assert build.name == "Build Frontend"
    assert build.position == Position(41, 5)
    assert build.config == ScriptConfig(
        command="npm",
        args=("run", "build:frontend"),
        shell=False,
        working_directory="frontend",
        env={"NODE_ENV": "production"},
        timeout=600.0,
    )
    assert build.depends_on == ("setup",)
    assert build.parallel.max_concurrency == 3
    assert build.parallel.isolate_errors is False
    assert build.continue_on_error is True


def test_resources_are_normalized_to_units_per_pool(full: Workflow) -> None:
    assert dict(full.step("build-frontend").parallel.resources) == {"cpu": 1}
    assert dict(full.step("fetch").parallel.resources) == {"network": 1, "cpu": 1}
    assert dict(full.step("migrate").parallel.resources) == {"database": 1, "cpu": 2}
    assert full.step("migrate").parallel.effective_max_concurrency == 1


def test_aliases_and_merge_keys(full: Workflow) -> None:
    assert full.step("setup").config == ScriptConfig(command="./setup.sh", timeout=0.5)
    assert full.step("migrate").config == full.step("setup").config
    fetch = full.step("fetch").config
    assert isinstance(fetch, ScriptConfig)
    assert (fetch.command, fetch.shell, fetch.timeout) == (
        "curl -fsS https://example.com | tee out.html",
        True,
        0.5,
    )


def test_full_workflow_agents(full: Workflow) -> None:
    reviewer = full.agents["reviewer"]
    assert reviewer.command == (
        "claude",
        "-p",
        "--output-format",
        "json",
        "--model",
        "{param.model}",
    )
    assert (reviewer.prompt, reviewer.output, reviewer.result) == (
        PromptMode.STDIN,
        OutputFormat.JSON,
        "result",
    )
    assert dict(reviewer.parameters) == {"model": "sonnet", "effort": "low"}
    assert dict(reviewer.env) == {"CLAUDE_CONFIG_DIR": "./.claude"}
    assert reviewer.timeout == 600.0
    assert reviewer.position == Position(22, 3)
    assert full.agents["inline"].prompt is PromptMode.PLACEHOLDER
    assert full.agents["appended"].prompt is PromptMode.ARGUMENT
    assert full.agents["appended"].output is OutputFormat.TEXT


def test_agent_steps_merge_parameters_and_inherit_the_agent_timeout(full: Workflow) -> None:
    review = full.step("review")
    assert review.type is StepType.AGENT
    assert review.config == AgentConfig(
        agent="reviewer",
        prompt="Review the diff in out/diff.txt",
        parameters={"model": "opus", "effort": "low"},
        working_directory="review",
        env={"REVIEW": "1"},
        timeout=600.0,
    )
    summarize = full.step("summarize")
    assert isinstance(summarize.config, AgentConfig)
    assert summarize.config.timeout == 120.0
    assert dict(summarize.config.parameters) == {"system": "terse"}


def test_flow_style_file(tmp_path: Path) -> None:
    workflow = load_workflow(WORKFLOWS / "valid" / "flow-style.yaml")
    assert workflow.name == "flow"
    assert workflow.step("b").depends_on == ("a",)
    assert workflow.step("b").position == Position(4, 4)


def test_the_model_is_read_only(full: Workflow) -> None:
    with pytest.raises(TypeError):
        full.env["STAGE"] = "prod"  # type: ignore[index]


def test_text_gets_a_generic_name_and_the_given_base_dir(tmp_path: Path) -> None:
    workflow = load_workflow_text("steps: [{id: a, config: {command: x}}]", base_dir=tmp_path)
    assert (workflow.name, workflow.file, workflow.base_dir) == ("workflow", None, tmp_path)


# ---- the --agents file -----------------------------------------------------------------------

AGENTS_FILE = """\
    agents:
      reviewer:
        command: [from-the-agents-file]
      writer:
        command: [llm, "{param.style}"]
        parameters: {style: plain}
    """

USES_AGENTS = """\
    agents:
      reviewer:
        command: [from-the-workflow]
    steps:
      - id: review
        type: agent
        config: {agent: reviewer, prompt: Review}
      - id: write
        type: agent
        config: {agent: writer, prompt: Write}
    """


def test_agents_file_is_merged_under_the_workflow(tmp_path: Path) -> None:
    agents = write(tmp_path, "agents.yaml", AGENTS_FILE)
    workflow = load_workflow(write(tmp_path, "wf.yaml", USES_AGENTS), agents_file=str(agents))
    assert workflow.agents["reviewer"].command == ("from-the-workflow",)
    assert workflow.agents["writer"].command == ("llm", "{param.style}")
    write_step = workflow.step("write").config
    assert isinstance(write_step, AgentConfig)
    assert dict(write_step.parameters) == {"style": "plain"}


def test_without_the_agents_file_its_agents_are_unknown(tmp_path: Path) -> None:
    found = diagnostics_of(write(tmp_path, "wf.yaml", USES_AGENTS))
    assert [f"{d.line}:{d.col}: {d.message}" for d in found] == [
        "10:14: step 'write' uses unknown agent 'writer' (known: reviewer)"
    ]


def test_agents_file_problems_carry_its_own_name(tmp_path: Path) -> None:
    agents = write(
        tmp_path,
        "agents.yaml",
        """\
        agents:
          writer:
            command: [llm, "{style}"]
            timeout: 600
        models: {}
        """,
    )
    workflow = write(tmp_path, "wf.yaml", USES_AGENTS.replace("Write}", "Write, extra: 1}"))
    found = [str(d) for d in diagnostics_of(workflow, agents_file=str(agents))]
    assert found == [
        f"{agents}:3:20: agent 'writer' has an unknown placeholder '{{style}}' in its command "
        "(allowed: {prompt}, {param.NAME})",
        f"{agents}:4:14: 'timeout' of agent 'writer': duration 600 has no unit: "
        "write 600s, 10m or 600000ms (a bare number is ambiguous)",
        f"{agents}:5:1: unknown top-level key 'models'",
        f"{workflow}:10:44: unknown key 'extra' in 'config' of step 'write'",
    ]


def test_agents_file_needs_the_agents_key() -> None:
    found = parse_agents_text("reviewer: {command: [claude]}\n", "a.yaml").diagnostics
    assert [str(d) for d in found] == [
        "a.yaml:1:1: unknown top-level key 'reviewer'",
        "a.yaml:1:1: the agents file is missing required key 'agents'",
    ]


def test_an_empty_agents_file_is_reported(tmp_path: Path) -> None:
    agents = write(tmp_path, "agents.yaml", "")
    workflow = write(tmp_path, "wf.yaml", "steps: [{id: a, config: {command: x}}]\n")
    assert [str(d) for d in diagnostics_of(workflow, agents_file=str(agents))] == [
        f"{agents}:1:1: the file is empty: an agents file needs an 'agents' mapping"
    ]


def test_a_missing_agents_file_is_unreadable(tmp_path: Path) -> None:
    workflow = write(tmp_path, "wf.yaml", "steps: [{id: a, config: {command: x}}]\n")
    with pytest.raises(UnreadableFileError, match="no such file"):
        load_workflow(workflow, agents_file=str(tmp_path / "agents.yaml"))


# ---- the compiled pre-check of large files ------------------------------------------------------


def _documents() -> list[Path]:
    root = Path(__file__).parent
    return sorted(
        [*(root / "workflows").rglob("*.yaml"), *(root.parent / "sample-workflows").glob("*.yaml")]
    )


@pytest.mark.parametrize("path", _documents(), ids=lambda p: p.name)
def test_the_compiled_check_agrees_with_jsonschema(path: Path) -> None:
    import fastjsonschema
    import jsonschema
    import yaml

    from wfrun.schemas import workflow_schema

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        pytest.skip("not YAML: the schema never sees it")
    schema = workflow_schema()
    expected = jsonschema.Draft7Validator(schema).is_valid(data)
    try:
        fastjsonschema.compile(schema)(data)
        compiled = True
    except fastjsonschema.JsonSchemaException:
        compiled = False
    assert compiled == expected


def _big_workflow(steps: int, broken: int | None = None) -> str:
    lines = ["steps:"]
    for i in range(steps):
        lines.append(f"  - id: s{i}")
        lines.append("    config: {command: 'true', timeout: 5s}")
        if i:
            lines.append(f"    dependsOn: [s{i - 1}]")
        if i == broken:
            lines.append("    parallel: {maxConcurrency: 0}")
    return "\n".join(lines) + "\n"


def test_a_large_valid_file_takes_the_quick_path_to_the_same_model() -> None:
    wf = load_workflow_text(_big_workflow(400), "big.yaml")
    assert len(wf.steps) == 400 and wf.steps[399].depends_on == ("s398",)
    assert wf.steps[0].config.timeout == 5.0


def test_a_large_file_with_an_error_still_gets_its_positioned_diagnostic() -> None:
    with pytest.raises(WorkflowError) as err:
        load_workflow_text(_big_workflow(400, broken=350), "big.yaml")
    (diagnostic,) = err.value.diagnostics
    expected = "'parallel.maxConcurrency' of step 's350' must be at least 1, got 0"
    assert diagnostic.message == expected
    assert diagnostic.line == 3 * 350 + 4
