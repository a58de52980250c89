"""Shared fixtures: workflow files written into tmp_path, real runs, recorded step intervals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wfrun.events import Event
from wfrun.loader import load_workflow
from wfrun.planner import make_plan
from wfrun.results import RunResult
from wfrun.runner import WorkflowRunner

TESTS = Path(__file__).parent
RECORD = TESTS / "steps" / "record.py"
PY = sys.executable


class Recorder:
    """Collects every event of a run, in order."""

    wants_output = True

    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)


def rec(seconds: float, code: int = 0) -> str:
    """A YAML flow mapping for a step config that records its own start and end."""
    args = json.dumps(["-u", str(RECORD), "{out}", str(seconds), str(code)])
    return f'{{command: "{PY}", args: {args}}}'


def py_step(step_id: str, script: str, extra: str = "") -> str:
    """A YAML step running `python -c SCRIPT OUT_DIR`; `extra` adds config keys."""
    args = json.dumps(["-c", script, "{out}"])
    config = f'command: "{PY}", args: {args}' + (f", {extra}" if extra else "")
    return f"  - {{id: {step_id}, config: {{{config}}}}}\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path


@pytest.fixture
def write(workdir: Path) -> Callable[[str], Path]:
    """Write a workflow; `{out}` in it becomes the folder the steps record into."""

    def write_file(text: str, name: str = "wf.yaml") -> Path:
        path = workdir / name
        body = textwrap.dedent(text).replace("{out}", str(workdir / "out"))
        path.write_text(body)
        return path

    return write_file


def intervals(workdir: Path) -> dict[str, tuple[float, float]]:
    """The [start, end] each step recorded, by step id."""
    found = {}
    for file in (workdir / "out").glob("*.json"):
        start, end = json.loads(file.read_text())
        found[file.stem] = (start, end)
    return found


def peak(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = best = 0
    for _, delta in edges:
        level += delta
        best = max(best, level)
    return best


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def run(
    path: Path,
    recorder: Recorder | None = None,
    log_dir: Path | None = None,
    parallel: bool | None = None,
    max_concurrency: int | None = None,
    keep_going: bool = False,
) -> RunResult:
    """Run a workflow file through the real API, with real processes."""
    runner = WorkflowRunner(
        reporters=[recorder] if recorder else [], log_dir=log_dir, grace_period=1.0
    )
    plan = make_plan(load_workflow(path), parallel=parallel, max_concurrency=max_concurrency)
    return runner.execute_plan(plan, keep_going=keep_going)


def all_gone(pids: list[int], timeout: float = 10.0) -> bool:
    """True once no pid is a live process (a zombie awaiting its reaper counts as gone)."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)  # the plain and quiet modes' width off a terminal
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wfrun(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real CLI, as `python -m wfrun ARGS`, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "wfrun", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(),
        timeout=timeout,
    )
