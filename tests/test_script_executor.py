"""ScriptExecutor with real processes: outcomes, reasons, env, working directory, cancellation."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from conftest import all_gone

from wfrun.executors.base import CancelToken, StepContext
from wfrun.executors.routing import TypedExecutor, default_executor
from wfrun.executors.script import ScriptExecutor
from wfrun.model import AgentConfig, ScriptConfig, Step, StepType, Workflow, frozen_map
from wfrun.results import StepOutcome, StepStatus

PY = sys.executable


def make_context(
    tmp_path: Path,
    config: ScriptConfig,
    *,
    workflow_env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    token: CancelToken | None = None,
) -> StepContext:
    step = Step(id="build", name="Build", type=StepType.SCRIPT, config=config)
    workflow = Workflow(name="ci", steps=(step,), env=frozen_map(workflow_env), base_dir=tmp_path)
    return StepContext(
        run_id="run-42",
        workflow=workflow,
        step=step,
        env=dict(os.environ if base_env is None else base_env),
        cancel=token or CancelToken(),
        log_path=tmp_path / "build.log",
        grace_period=1.0,
    )


def execute(
    tmp_path: Path,
    config: ScriptConfig,
    *,
    workflow_env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    token: CancelToken | None = None,
) -> StepOutcome:
    context = make_context(
        tmp_path, config, workflow_env=workflow_env, base_env=base_env, token=token
    )
    return ScriptExecutor().execute(context)


def is_gone(pid: int, timeout: float = 3.0) -> bool:
    return all_gone([pid], timeout)


def test_success(tmp_path: Path) -> None:
    outcome = execute(tmp_path, ScriptConfig(PY, args=("-c", "print('built')")))
    assert outcome.status is StepStatus.SUCCEEDED and outcome.reason is None
    assert outcome.exit_code == 0 and outcome.signal is None
    assert outcome.output_tail == "built" and outcome.output is None
    assert (tmp_path / "build.log").read_text() == "built\n"


def test_exit_code(tmp_path: Path) -> None:
    outcome = execute(tmp_path, ScriptConfig("echo broken; exit 3", shell=True))
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == "exited with code 3"
    assert outcome.exit_code == 3 and outcome.output_tail == "broken"
    assert outcome.command == "echo broken; exit 3"


def test_killed_by_signal(tmp_path: Path) -> None:
    outcome = execute(tmp_path, ScriptConfig(PY, args=("-c", "import os; os.abort()")))
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == "killed by signal SIGABRT"
    assert outcome.signal == signal.SIGABRT and outcome.exit_code is None


def test_command_not_found(tmp_path: Path) -> None:
    outcome = execute(tmp_path, ScriptConfig("nosuch-wfrun-command", args=("x",)))
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == "command not found: 'nosuch-wfrun-command'"
    assert outcome.command == "nosuch-wfrun-command x"


def test_command_not_found_with_a_space_suggests_shell(tmp_path: Path) -> None:
    outcome = execute(tmp_path, ScriptConfig("npm run build"))
    assert outcome.reason == (
        "command not found: 'npm run build' "
        "(it contains a space: to run it through a shell, set shell: true)"
    )


def test_not_executable(tmp_path: Path) -> None:
    (tmp_path / "x.sh").write_text("echo hi\n")
    outcome = execute(tmp_path, ScriptConfig("./x.sh"))
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == "permission denied: './x.sh' is not executable"


def test_missing_working_directory(tmp_path: Path) -> None:
    outcome = execute(tmp_path, ScriptConfig("true", working_directory="backend"))
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == f"working directory not found: {tmp_path / 'backend'}"


def test_working_directory_is_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / "build.sh").write_text("#!/bin/sh\npwd\n")
    (tmp_path / "backend" / "build.sh").chmod(0o755)
    outcome = execute(tmp_path, ScriptConfig("./build.sh", working_directory="backend"))
    assert outcome.status is StepStatus.SUCCEEDED
    assert Path(outcome.output_tail).resolve() == (tmp_path / "backend").resolve()


def test_default_working_directory_is_base_dir(tmp_path: Path) -> None:
    outcome = execute(tmp_path, ScriptConfig("pwd"))
    assert Path(outcome.output_tail).resolve() == tmp_path.resolve()


def test_env_merge_and_wfrun_variables(tmp_path: Path) -> None:
    code = (
        "import os\nfor k in ['A', 'B', 'C', 'WFRUN_RUN_ID', 'WFRUN_STEP_ID', 'WFRUN_WORKFLOW']:"
        " print(k + '=' + os.environ.get(k, '-'))"
    )
    config = ScriptConfig(PY, args=("-c", code), env=frozen_map({"C": "step"}))
    outcome = execute(
        tmp_path,
        config,
        base_env={**os.environ, "A": "base", "B": "base", "C": "base"},
        workflow_env={"B": "workflow", "C": "workflow"},
    )
    assert outcome.output_tail.splitlines() == [
        "A=base",
        "B=workflow",
        "C=step",
        "WFRUN_RUN_ID=run-42",
        "WFRUN_STEP_ID=build",
        "WFRUN_WORKFLOW=ci",
    ]


def test_env_is_only_what_is_passed_in(tmp_path: Path) -> None:
    outcome = execute(
        tmp_path, ScriptConfig(PY, args=("-c", "import os; print(sorted(os.environ))")), base_env={}
    )
    assert outcome.status is StepStatus.SUCCEEDED
    assert "WFRUN_RUN_ID" in outcome.output_tail and "HOME" not in outcome.output_tail


def test_stdin_is_dev_null(tmp_path: Path) -> None:
    code = "import sys; print(repr(sys.stdin.read()))"
    outcome = execute(tmp_path, ScriptConfig(PY, args=("-c", code), timeout=10))
    assert outcome.status is StepStatus.SUCCEEDED and outcome.output_tail == "''"


def test_shell_true(tmp_path: Path) -> None:
    outcome = execute(tmp_path, ScriptConfig("echo a | tr a b && echo $WFRUN_STEP_ID", shell=True))
    assert outcome.status is StepStatus.SUCCEEDED and outcome.output_tail == "b\nbuild"


def test_args_are_not_split_or_expanded(tmp_path: Path) -> None:
    config = ScriptConfig("printf", args=("%s|", "a b", "$HOME", "*"))
    assert execute(tmp_path, config).output_tail == "a b|$HOME|*|"


def test_timeout(tmp_path: Path) -> None:
    config = ScriptConfig("sleep 60 & echo $! > sleeper.pid; wait", shell=True, timeout=1)
    started = time.monotonic()
    outcome = execute(tmp_path, config)
    assert time.monotonic() - started < 4
    assert outcome.status is StepStatus.TIMED_OUT
    assert outcome.reason == "timed out after 1s"
    assert is_gone(int((tmp_path / "sleeper.pid").read_text()))


def test_cancel_takes_the_token_status_and_reason(tmp_path: Path) -> None:
    token = CancelToken()
    config = ScriptConfig("sleep 60 & echo $! > sleeper.pid; wait", shell=True)
    timer = threading.Timer(
        0.3, token.cancel, args=("workflow timed out after 1m00s", StepStatus.TIMED_OUT)
    )
    timer.start()
    started = time.monotonic()
    outcome = execute(tmp_path, config, token=token)
    assert time.monotonic() - started < 3
    assert outcome.status is StepStatus.TIMED_OUT
    assert outcome.reason == "workflow timed out after 1m00s"
    assert outcome.signal == signal.SIGTERM
    assert is_gone(int((tmp_path / "sleeper.pid").read_text()))


def test_cancelled_before_start(tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel("interrupted (Ctrl-C)")
    outcome = execute(tmp_path, ScriptConfig("touch started", shell=True), token=token)
    assert outcome.status is StepStatus.CANCELLED
    assert outcome.reason == "interrupted (Ctrl-C)"
    assert not (tmp_path / "started").exists()


def test_typed_executor_routes_by_step_type(tmp_path: Path) -> None:
    context = make_context(tmp_path, ScriptConfig("echo", args=("routed",)))
    assert default_executor().execute(context).output_tail == "routed"
    outcome = TypedExecutor({}).execute(context)
    assert outcome.status is StepStatus.FAILED
    assert outcome.reason == "no executor for steps of type 'script'"


def test_wrong_config_kind_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    step = Step(id="x", name="x", type=StepType.SCRIPT, config=AgentConfig("a", "p"))
    context = StepContext("r", Workflow("w", (step,)), step, {}, CancelToken())
    assert ScriptExecutor().execute(context).status is StepStatus.FAILED
