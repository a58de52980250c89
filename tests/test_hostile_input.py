"""Issue 9 and issue 10's loading slips, one regression test per cause: hostile or huge input
gives positioned diagnostics (never a traceback), bounded work, and no file where it should not
be; and the rules issue 10 asked for (command lines, x-* keys, agents-file paths)."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest
from builders import step, workflow
from conftest import wfrun
from fuzzing import alias_bomb, merge_bomb

from wfrun.errors import WorkflowError
from wfrun.executors.dry_run import DryRunExecutor
from wfrun.loader import load_workflow, load_workflow_text
from wfrun.planner import make_plan
from wfrun.runner import RunDirectoryError, WorkflowRunner, new_run_id
from wfrun.suggest import Vocabulary
from wfrun.yaml_source import ALIAS_GROWTH, MAX_DEPTH

STEP = "steps: [{id: a, config: {command: 'true'}}]\n"


def problems(text: str) -> list[str]:
    """Every diagnostic of `text` as `LINE:COL: message`."""
    with pytest.raises(WorkflowError) as caught:
        load_workflow_text(text, "w.yaml")
    return [f"{d.line}:{d.col}: {d.message}" for d in caught.value.diagnostics]


# ---- the reader ---------------------------------------------------------------------------------


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\x7f"])
def test_a_raw_control_character_is_a_positioned_diagnostic(character: str) -> None:
    text = f"steps:\n  - id: a\n    config: {{command: 'tr{character}ue'}}\n"
    code = ord(character)
    assert problems(text) == [
        f"3:26: control character U+{code:04X} is not allowed in YAML "
        f'(to mean it, write "\\x{code:02x}" inside a double-quoted string)'
    ]


def test_validate_of_several_files_reports_a_control_character_with_the_others(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.yaml").write_text("steps: [{id: a, config: {command: 'a\x01'}}]\n")
    (tmp_path / "ok.yaml").write_text(STEP)
    done = wfrun("validate", "bad.yaml", "ok.yaml", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "bad.yaml:1:37: control character U+0001" in done.stdout
    assert "ok.yaml: ok" in done.stdout


def test_a_nul_written_as_an_escape_is_refused_where_it_stands() -> None:
    text = 'steps: [{id: a, config: {command: x, args: ["a\\0b"]}}]\n'
    assert problems(text) == [
        "1:45: a NUL character (\\0) cannot be passed to a program or its environment: remove it"
    ]


def test_a_document_that_is_only_null_is_reported_like_an_empty_file() -> None:
    message = "the file is empty: a workflow needs at least a 'steps' list"
    assert problems("~\n") == [f"1:1: {message}"]
    assert problems("--- null\n") == [f"1:5: {message}"]


def test_python_tags_build_nothing_and_say_so() -> None:
    text = "steps: [{id: a, config: {command: !!python/object/apply:os.system [x]}}]\n"
    assert problems(text) == [
        "1:26: 'config.command' of step 'a' must be a string, got a list",
        "1:35: unsupported YAML tag '!!python/object/apply:os.system': wfrun never builds "
        "Python objects from a file (remove the tag)",
    ]


# ---- depth and aliases --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 600, 2_000, 100_000])
def test_nesting_is_bounded_with_a_message(depth: int) -> None:
    found = problems(STEP + "metadata: {k: " + "[" * depth + "]" * depth + "}\n")
    assert any(f"nested more than {MAX_DEPTH} levels deep" in p for p in found)


def test_nesting_within_the_bound_is_fine() -> None:
    depth = MAX_DEPTH - 3
    workflow = load_workflow_text(STEP + "metadata: {k: " + "[" * depth + "]" * depth + "}\n")
    assert "k" in workflow.metadata


def test_an_alias_bomb_is_refused_quickly() -> None:
    started = time.perf_counter()
    found = problems(alias_bomb(9))
    assert time.perf_counter() - started < 5  # generous: it used to take minutes and 1 GB
    assert found == [
        "1:1: aliases expand this document to 4,567,901,240 values from its 20: more than "
        f"{ALIAS_GROWTH:,} added values is refused (an alias bomb?)"
    ]


def test_a_merge_key_bomb_is_resolved_once_per_mapping() -> None:
    started = time.perf_counter()
    workflow = load_workflow_text(merge_bomb(12))
    assert time.perf_counter() - started < 5
    assert workflow.step_ids == ("a",)


def test_aliases_within_the_limit_are_shared_not_refused() -> None:
    steps = "".join(f"  - {{id: s{i}, config: *c}}\n" for i in range(2_000))
    workflow = load_workflow_text("x-c: &c {command: make, args: [a, b, c]}\nsteps:\n" + steps)
    assert len(workflow.steps) == 2_000
    assert workflow.steps[-1].config.argv() == ["make", "a", "b", "c"]  # type: ignore[union-attr]


# ---- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "9" * 400, "9" * 5_000])
def test_a_timeout_out_of_every_range_gets_a_message(value: str) -> None:
    [found] = problems(f"timeout: {value}\n" + STEP)
    assert found.startswith("1:10: 'timeout': duration ")
    assert "has no unit and is out of range" in found and "(at most 168h)" in found


def test_a_duration_above_a_week_is_refused_by_validate() -> None:
    assert problems("timeout: 3000000h\n" + STEP) == [
        "1:10: 'timeout': duration '3000000h' is too long: at most 168h (a week)"
    ]
    assert load_workflow_text("timeout: 168h\n" + STEP).timeout == 7 * 24 * 3600


def test_a_top_level_duration_error_points_at_the_value() -> None:
    assert problems("timeout: 10 minutes\n" + STEP)[0].startswith("1:10: 'timeout': ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "parallel: {resources: {cpu: 2000000}}\n",
            "1:24: 'parallel.resources.cpu' must be at most 1,000,000, got 2000000",
        ),
        (
            f"parallel: {{defaultMaxConcurrency: {'9' * 300}}}\n",
            "1:12: 'parallel.defaultMaxConcurrency' must be an integer, got number "
            "999999999999999999999999999999… (300 characters)",
        ),
        (
            "parallel: {defaultMaxConcurrency: .nan}\n",
            "1:12: 'parallel.defaultMaxConcurrency' must be an integer, got number .nan",
        ),
    ],
)
def test_counts_are_range_checked(text: str, expected: str) -> None:
    assert problems(text + STEP) == [expected]


def test_metadata_numbers_must_be_finite_for_the_json_report() -> None:
    assert problems(STEP + "metadata: {ratio: .inf}\n") == [
        "2:19: 'metadata.ratio' is not a finite number (quote it to keep it as text)"
    ]


@pytest.mark.parametrize("value", ["{}", "[]"])
def test_an_unhashable_step_type_is_explained(value: str) -> None:
    kind = "a mapping" if value == "{}" else "a list"
    text = f"steps: [{{id: a, type: {value}, config: {{command: x, bogus: 1}}}}]\n"
    assert problems(text) == [f"1:17: 'type' of step 'a' must be one of script, agent, got {kind}"]


# ---- ids, env, parameters -----------------------------------------------------------------------


def test_an_id_with_a_final_newline_is_refused() -> None:
    assert problems('steps: [{id: "a\\n", config: {command: x}}]\n') == [
        "1:10: invalid step id 'a\\n': use only letters, digits, '_' and '-'"
    ]


@pytest.mark.parametrize(
    ("env", "col", "why"), [('"": v', 44, "is empty"), ('"A=B": v', 44, "contains '='")]
)
def test_env_names_a_process_cannot_hold_are_refused(env: str, col: int, why: str) -> None:
    name = "''" if why == "is empty" else "'A=B'"
    text = f"steps: [{{id: a, config: {{command: x, env: {{{env}}}}}}}]\n"
    assert problems(text) == [
        f"1:{col}: environment variable name {name} in 'config.env' of step 'a' {why}"
    ]
    assert problems(f"env: {{{env}}}\n" + STEP) == [
        f"1:7: environment variable name {name} in 'env' {why}"
    ]


def test_a_parameter_placeholder_with_a_space_is_refused() -> None:
    text = "agents: {b: {command: [x, '{param.a b}']}}\n" + STEP
    assert problems(text) == [
        "1:27: agent 'b' has a placeholder '{param.a b}' whose name is not a parameter name "
        "(letters, digits, '_' and '-')"
    ]


def test_parameters_that_share_an_environment_variable_are_refused() -> None:
    text = textwrap.dedent(
        """\
        agents:
          b:
            command: [x, "{param.a-b}"]
            parameters: {a-b: "1", a_b: "2"}
        steps:
          - id: s
            type: agent
            config: {agent: b, prompt: p, parameters: {A-B: "3"}}
        """
    )
    clash = "would both be given to the agent as WFRUN_PARAM_A_B: rename one"
    assert problems(text) == [
        f"4:5: parameters 'a-b' and 'a_b' {clash}",
        f"8:35: parameters 'a-b' and 'A-B' {clash}",
    ]


# ---- command lines (issue 10, item 14) ----------------------------------------------------------


def test_a_command_line_without_a_shell_is_refused_with_the_split_to_write() -> None:
    text = "steps: [{id: a, config: {command: python3 -m tabnanny packages}}]\n"
    assert problems(text) == [
        "1:26: step 'a' runs 'python3 -m tabnanny packages' without a shell, which looks for a "
        "program of that whole name: write command: python3 and args: [-m, tabnanny, packages], "
        "or set shell: true"
    ]


@pytest.mark.parametrize(
    "config",
    [
        "{command: python3 -m tabnanny packages, shell: true}",
        "{command: '/opt/My Tools/bin/tool'}",
        "{command: python3, args: [-m, tabnanny]}",
    ],
)
def test_a_shell_line_a_path_with_a_space_and_command_plus_args_are_fine(config: str) -> None:
    assert load_workflow_text(f"steps: [{{id: a, config: {config}}}]\n").steps[0].id == "a"


# ---- x-* keys (issue 10, item 15) ---------------------------------------------------------------


def test_x_keys_hold_anchors_and_are_ignored() -> None:
    text = textwrap.dedent(
        """\
        x-defaults: &defaults
          command: make
          timeout: 5m
        x-notes: [free, form]
        steps:
          - id: build
            config:
              <<: *defaults
              args: [build]
        """
    )
    [built] = load_workflow_text(text).steps
    assert built.config.argv() == ["make", "build"]  # type: ignore[union-attr]
    assert built.timeout == 300


def test_unknown_keys_are_still_refused_beside_x_keys() -> None:
    assert problems("x-a: 1\nextra: 2\n" + STEP) == ["2:1: unknown top-level key 'extra'"]


# ---- bounded work -------------------------------------------------------------------------------


def test_many_misspelt_dependencies_each_get_a_suggestion_in_linear_time() -> None:
    steps = "".join(
        f"  - {{id: step-{i:04d}, config: {{command: x}}, dependsOn: [stpe-{i:04d}]}}\n"
        for i in range(2_000)
    )
    started = time.perf_counter()
    found = problems("steps:\n" + steps)
    assert time.perf_counter() - started < 20  # generous: it took 31.6 s
    assert len(found) == 2_000
    assert found[0].endswith("depends on unknown step 'stpe-0000' (did you mean 'step-0000'?)")


def test_ten_thousand_unknown_top_level_keys_are_each_reported_quickly() -> None:
    keys = "".join(f"unknown{i}: 1\n" for i in range(10_000))
    started = time.perf_counter()
    found = problems(keys + "Steps: []\nsteps: [{id: a, config: {command: x}}]\n")
    assert time.perf_counter() - started < 20  # generous: it took 27 s
    assert len(found) == 10_001
    assert "10001:1: unknown top-level key 'Steps' (did you mean 'steps'?)" in found


def test_a_large_vocabulary_finds_one_slip_away() -> None:
    names = [f"service-{i}" for i in range(5_000)]
    vocabulary = Vocabulary(names)
    assert vocabulary.closest("servcie-42") == "service-42"
    assert vocabulary.closest("SERVICE-7") == "service-7"
    assert vocabulary.closest("unrelated") is None


# ---- workflows built in code, and run directories -----------------------------------------------


@pytest.mark.parametrize("bad_id", ["../../x", "a\n", "a/b", ""])
def test_the_api_refuses_a_step_id_that_is_not_a_name(bad_id: str, tmp_path: Path) -> None:
    built = workflow(step(bad_id))
    with pytest.raises(WorkflowError, match="invalid step id"):
        make_plan(built)
    runner = WorkflowRunner(executor=DryRunExecutor(), log_dir=tmp_path, handle_signals=False)
    with pytest.raises(WorkflowError, match="invalid step id"):
        runner.execute(built)
    assert list(tmp_path.iterdir()) == []


def test_the_api_refuses_an_unknown_dependency_and_a_duplicate_id() -> None:
    with pytest.raises(WorkflowError) as caught:
        make_plan(workflow(step("a"), step("a"), step("b", ("nope",))))
    messages = [d.message for d in caught.value.diagnostics]
    assert "duplicate step id 'a'" in messages
    assert "step 'b' depends on unknown step 'nope'" in messages


def test_run_ids_carry_32_random_bits() -> None:
    ids = {new_run_id() for _ in range(1_000)}
    assert len(ids) == 1_000
    assert all(len(run_id.rsplit("-", 1)[1]) == 8 for run_id in ids)


def test_a_run_directory_is_created_for_the_run_alone(tmp_path: Path) -> None:
    runner = WorkflowRunner(log_dir=tmp_path / "logs", handle_signals=False)
    result = runner.execute(workflow(step("a")), run_id="r1")
    run_dir = tmp_path / "logs" / "r1"
    assert result.success and (run_dir / "report.json").is_file()
    assert stat.S_IMODE(run_dir.stat().st_mode) & 0o077 == 0
    with pytest.raises(RunDirectoryError, match="already exists: a run never shares"):
        runner.execute(workflow(step("a")), run_id="r1")


def test_a_planted_run_directory_is_never_written_into(tmp_path: Path) -> None:
    planted = tmp_path / "logs" / "r2"
    planted.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (planted / "a.log").symlink_to(victim)
    runner = WorkflowRunner(log_dir=tmp_path / "logs", handle_signals=False)
    with pytest.raises(RunDirectoryError):
        runner.execute(workflow(step("a")), run_id="r2")
    assert victim.read_text() == "keep me"


def test_run_exits_2_when_the_run_directory_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(STEP)
    # A log directory whose path leaves no room for the run id: the log directory itself can
    # be made, the run directory inside it cannot (its path is longer than the system allows).
    log_dir = "/".join(["d" * 200] * 30)[: os.pathconf(tmp_path, "PC_PATH_MAX") - 20].rstrip("/")
    done = wfrun("run", "wf.yaml", "--log-dir", log_dir, "--ui", "plain", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "wfrun: cannot create run directory" in done.stderr
    assert "Traceback" not in done.stderr


# ---- an --agents file's relative paths (issue 10, item 7) ---------------------------------------


def test_an_agents_file_program_path_resolves_against_its_own_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    project = tmp_path / "project"
    shared.mkdir()
    project.mkdir()
    (shared / "fake_llm.py").write_text("import sys\nprint('reply:', sys.stdin.read())\n")
    (shared / "agents.yaml").write_text(
        f"agents:\n  bot:\n    command: [{sys.executable}, fake_llm.py, --flag]\n"
    )
    (project / "wf.yaml").write_text(
        "steps:\n  - id: ask\n    type: agent\n    config: {agent: bot, prompt: hello}\n"
    )
    loaded = load_workflow(project / "wf.yaml", agents_file=str(shared / "agents.yaml"))
    agent = loaded.agents["bot"]
    assert agent.command == (sys.executable, str(shared / "fake_llm.py"), "--flag")
    assert agent.base_dir == shared
    done = wfrun(
        "run", "wf.yaml", "--agents", "../shared/agents.yaml", "--ui", "plain", cwd=project
    )
    assert done.returncode == 0, done.stderr
    assert "reply: hello" in done.stdout
