"""What `wfrun validate` says about values the schema allows but no run could use: an empty
command and unusable environment variable names are errors; a working directory that does not
exist (yet) is a warning, since an earlier step may create it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import wfrun


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    return path


def test_an_empty_or_blank_command_is_an_error_at_its_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "steps:\n"
        "  - {id: a, config: {command: ''}}\n"
        "  - id: b\n"
        "    config: {command: '   ', shell: true}\n",
    )
    result = wfrun("validate", str(path))
    assert result.returncode == 1
    assert result.stdout == (
        f"{path}:2:31: 'config.command' of step 'a' is empty: name the program to run\n"
        f"{path}:4:23: 'config.command' of step 'b' is empty: name the program to run\n"
        f"{path}: 2 problems found\n"
    )


def test_environment_names_with_whitespace_or_controls_are_errors(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'env: {"A B": x, "OK_1": y}\n'
        "steps:\n"
        '  - {id: a, config: {command: "true", env: {"C\\tD": x, "E=F": y, "G\\u0007": z}}}\n',
    )
    result = wfrun("validate", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:1:7: environment variable name 'A B' in 'env' contains whitespace",
        f"{path}:3:45: environment variable name 'C\\tD' in 'config.env' of step 'a' "
        "contains whitespace",
        f"{path}:3:56: environment variable name 'E=F' in 'config.env' of step 'a' contains '='",
        f"{path}:3:66: environment variable name 'G\\x07' in 'config.env' of step 'a' "
        "contains a control character",
        f"{path}: 4 problems found",
    ]


def test_an_agent_env_name_is_checked_too(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "agents:\n"
        '  echo: {command: [cat], env: {"X Y": "1"}}\n'
        "steps:\n"
        "  - {id: a, type: agent, config: {agent: echo, prompt: hi}}\n",
    )
    result = wfrun("validate", str(path))
    assert result.returncode == 1
    assert "environment variable name 'X Y' in" in result.stdout
    assert "contains whitespace" in result.stdout


WORKDIRS = (
    "steps:\n"
    "  - id: a\n"
    "    config: {command: 'true', workingDirectory: build/out}\n"
    "  - id: b\n"
    "    config: {command: 'true', workingDirectory: here}\n"
    "  - id: c\n"
    "    config: {command: 'true', workingDirectory: afile}\n"
)


def test_a_missing_working_directory_is_a_warning_and_the_file_valid(tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "afile").write_text("")
    path = _write(tmp_path, WORKDIRS)
    result = wfrun("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{path}:3:49: warning: the workingDirectory of step 'a', 'build/out' (in {tmp_path}), "
        "does not exist yet: the step will fail unless an earlier step creates it",
        f"{path}:7:49: warning: the workingDirectory of step 'c', 'afile' (in {tmp_path}), "
        "is not a directory: the step will fail to start",
        f"{path}: ok (2 warnings)",
    ]


def test_warnings_in_the_github_and_json_formats(tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "afile").write_text("")
    path = _write(tmp_path, WORKDIRS)
    github = wfrun("validate", "--format", "github", str(path))
    assert github.returncode == 0
    assert [line.split("::")[1] for line in github.stdout.splitlines()] == [
        f"warning file={path},line=3,col=49",
        f"warning file={path},line=7,col=49",
    ]
    document = json.loads(wfrun("validate", "--format", "json", str(path)).stdout)
    assert document["valid"] is True
    (entry,) = document["files"]
    assert entry["valid"] is True and entry["diagnostics"] == []
    assert [(w["line"], w["col"]) for w in entry["warnings"]] == [(3, 49), (7, 49)]
    assert "'build/out'" in entry["warnings"][0]["message"]


def test_no_warning_when_every_directory_is_there(tmp_path: Path) -> None:
    (tmp_path / "build" / "out").mkdir(parents=True)
    (tmp_path / "here").mkdir()
    (tmp_path / "afile").mkdir()
    path = _write(tmp_path, WORKDIRS)
    result = wfrun("validate", str(path))
    assert (result.returncode, result.stdout) == (0, f"{path}: ok\n")
    document = json.loads(wfrun("validate", "--format", "json", str(path)).stdout)
    assert document["files"][0]["warnings"] == []


def test_a_run_where_an_earlier_step_creates_the_directory_succeeds(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "steps:\n"
        "  - {id: make, config: {command: mkdir, args: [-p, made]}}\n"
        "  - id: use\n"
        "    dependsOn: [make]\n"
        "    config: {command: 'true', workingDirectory: made}\n",
    )
    assert "does not exist yet" in wfrun("validate", str(path)).stdout
    result = wfrun("run", "--ui", "quiet", "--log-dir", str(tmp_path / "runs"), str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_warning_after_a_matrix_step_points_at_its_own_entry(tmp_path: Path) -> None:
    # The matrix step becomes two steps: the model's indices shift, the file's do not.
    path = _write(
        tmp_path,
        "steps:\n"
        "  - id: build\n"
        "    matrix: {os: [linux, mac]}\n"
        "    config: {command: 'true'}\n"
        "  - id: last\n"
        "    config: {command: 'true', workingDirectory: nodir}\n",
    )
    result = wfrun("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith(
        f"{path}:6:49: warning: the workingDirectory of step 'last', 'nodir'"
    )
