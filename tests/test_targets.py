"""Targets (SPEC §11.3): `wfrun run/plan FILE STEP...` take those steps and what they need."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from builders import step, workflow
from conftest import wfrun
from test_retries import attempt_step, runs

from wfrun.targets import UnknownTargetError, select_targets

DIAMOND = (
    "steps:\n"
    + attempt_step("setup")
    + attempt_step("lint")
    + attempt_step("build", extra="dependsOn: [setup]")
    + attempt_step("test", extra="dependsOn: [build]")
    + attempt_step("docs", extra="dependsOn: [setup]")
    + attempt_step("deploy", extra="dependsOn: [test, docs, lint]")
)


def test_select_targets_keeps_the_transitive_dependencies_in_file_order() -> None:
    wf = workflow(
        step("setup"),
        step("lint"),
        step("build", ("setup",)),
        step("test", ("build",)),
        step("docs", ("setup",)),
    )
    assert select_targets(wf, ["test"]).step_ids == ("setup", "build", "test")
    assert select_targets(wf, ["docs", "lint"]).step_ids == ("setup", "lint", "docs")
    assert select_targets(wf, []) is wf


def test_unknown_targets_are_all_named_with_suggestions() -> None:
    wf = workflow(step("build"), step("test", ("build",)))
    with pytest.raises(UnknownTargetError) as caught:
        select_targets(wf, ["biuld", "tset", "nothing-like-it"])
    message = str(caught.value)
    assert "unknown step 'biuld' (did you mean 'build'?)" in message
    assert "unknown step 'tset' (did you mean 'test'?)" in message
    assert "unknown step 'nothing-like-it'" in message and "steps: build, test" in message


def test_run_with_targets_runs_exactly_the_closure(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(DIAMOND)
    done = wfrun(
        "run", str(path), "test", "--ui", "plain", "--log-dir", str(workdir / "runs"),
        "--report", str(workdir / "report.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ran = {
        sid for sid in ("setup", "lint", "build", "test", "docs", "deploy") if runs(workdir, sid)
    }
    assert ran == {"setup", "build", "test"}
    assert all(len(runs(workdir, sid)) == 1 for sid in ran)
    report = json.loads((workdir / "report.json").read_text())
    assert list(report["stepResults"]) == ["setup", "build", "test"]
    # Targets and a bare --resume: the option goes last, the targets before it.
    again = wfrun("run", str(path), "test", "--ui", "plain", "--log-dir", str(workdir / "runs"),
                  "--resume")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "reusing 3 steps (setup, build, test)" in again.stdout
    assert all(len(runs(workdir, sid)) == 1 for sid in ran)


def test_plan_with_targets_shows_only_the_closure(write: Callable[..., Path]) -> None:
    path = write(DIAMOND)
    done = wfrun("plan", str(path), "docs", "lint", "--format", "json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["groups"] == [{"id": 0, "steps": ["setup", "lint"]}, {"id": 1, "steps": ["docs"]}]


def test_an_unknown_target_is_exit_2_with_a_suggestion(write: Callable[..., Path]) -> None:
    path = write(DIAMOND)
    for command in ("run", "plan"):
        done = wfrun(command, str(path), "deplyo")
        assert done.returncode == 2
        assert "wfrun: unknown step 'deplyo' (did you mean 'deploy'?)" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_matrix_step_id_names_all_its_instances(tmp_path: Path) -> None:
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(
        """
steps:
  - id: build
    config: {command: "true"}
  - id: test
    dependsOn: [build]
    matrix: {os: [linux, mac]}
    config: {command: "true"}
  - id: other
    config: {command: "true"}
"""
    )
    done = wfrun("plan", str(workflow), "test", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["steps"]) == ["build", "test-linux", "test-mac"]
    typo = wfrun("plan", str(workflow), "tset")
    assert typo.returncode == 2 and "did you mean 'test'?" in typo.stderr
