"""Fuzzing: hostile, broken and random workflow files never give a traceback, every diagnostic
has a place, and what is accepted can be planned and dry-run (issue 9's bar: 0 tracebacks,
0 hangs, 0 unpositioned diagnostics). bench/fuzz.py runs 10,000 of these cases."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from fuzzing import (
    attacks,
    dump,
    exercise,
    exercise_agents_file,
    mutate,
    seed_texts,
    workflow_values,
)
from hypothesis import HealthCheck, given, settings

ATTACKS = list(attacks())


@pytest.mark.parametrize("index", range(len(ATTACKS)))
def test_hand_made_attacks_are_refused_or_run_without_a_traceback(
    index: int, tmp_path: Path
) -> None:
    outcome = exercise(ATTACKS[index], tmp_path)
    assert outcome.unpositioned == ()
    assert exercise_agents_file(ATTACKS[index]).unpositioned == ()


def test_mutations_of_every_sample_and_scenario(tmp_path: Path) -> None:
    rng = random.Random(9)
    seeds = seed_texts()
    outcomes = [exercise(mutate(rng.choice(seeds), rng), tmp_path) for _ in range(200)]
    assert all(outcome.unpositioned == () for outcome in outcomes)
    # The mutations are small: some files stay valid and get planned and dry-run.
    assert any(outcome.valid for outcome in outcomes)
    assert any(not outcome.valid for outcome in outcomes)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=workflow_values())
def test_random_workflow_shaped_documents(document: object, tmp_path: Path) -> None:
    outcome = exercise(dump(document), tmp_path)
    assert outcome.unpositioned == ()


CLI_CASES = {
    "control-character": "steps: [{id: a, config: {command: 'tr\x01ue'}}]\n",
    "alias-bomb": ATTACKS[1],
    "deep": "steps: [{id: a, config: {command: x}}]\nmetadata: " + "[" * 600 + "]" * 600,
    "nan-timeout": "timeout: .nan\nsteps: [{id: a, config: {command: x}}]\n",
    "huge-timeout": "timeout: 3000000h\nsteps: [{id: a, config: {command: x}}]\n",
    "only-null": "~\n",
    "valid": "x-d: &d {command: 'true'}\nsteps: [{id: a, config: *d}]\n",
}


@pytest.mark.parametrize("name", CLI_CASES)
@pytest.mark.parametrize("command", [["validate"], ["plan"], ["run", "--dry-run"]])
def test_the_real_cli_gives_diagnostics_not_tracebacks(
    name: str, command: list[str], tmp_path: Path
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(CLI_CASES[name], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "wfrun", *command, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert "Traceback" not in done.stderr
    if name == "valid":
        assert done.returncode == 0
    else:
        assert done.returncode == (1 if command == ["validate"] else 2)
        assert f"{path}:" in done.stderr + done.stdout
