"""What the per-step savings of the local runner must not change (issue 15): commands looked up
on the step's PATH by wfrun, outputs files reused, the escape sweep skipping wfrun's own
processes, events delivered in batches. Real processes, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Recorder, all_gone, run, wfrun
from test_script_executor import make_context

from wfrun.delivery import EventDelivery
from wfrun.events import StepWaiting
from wfrun.executors.escapes import TAG_VARIABLE, EscapeCatcher
from wfrun.executors.script import ScriptExecutor
from wfrun.executors.spawn import find_on_path
from wfrun.model import ScriptConfig
from wfrun.outputs import create_output_file, left_empty
from wfrun.results import StepOutcome, StepStatus

SYSTEM_PATH = "/usr/bin:/bin"


def tool(folder: Path, text: str, name: str = "tool", mode: int = 0o755) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho {text}\n")
    path.chmod(mode)
    return path


def env_with(path: str) -> dict[str, str]:
    return {**os.environ, "PATH": path}


_executor = ScriptExecutor()  # one runner for every step of this file, as one run has


def execute(tmp_path: Path, config: ScriptConfig, base_env: dict[str, str]) -> StepOutcome:
    """Run one step with the shared runner; each step gets a log of its own."""
    (tmp_path / "build.log").unlink(missing_ok=True)
    return _executor.execute(make_context(tmp_path, config, base_env=base_env))


# ---- commands found on the step's PATH --------------------------------------------------------


def test_the_step_path_decides_and_a_change_between_steps_is_seen(tmp_path: Path) -> None:
    tool(tmp_path / "one", "one")
    tool(tmp_path / "two", "two")
    config = ScriptConfig("tool")
    first = execute(tmp_path, config, base_env=env_with(f"{tmp_path / 'one'}:{SYSTEM_PATH}"))
    second = execute(tmp_path, config, base_env=env_with(f"{tmp_path / 'two'}:{SYSTEM_PATH}"))
    assert (first.output_tail, second.output_tail) == ("one", "two")


def test_a_program_installed_earlier_on_the_path_by_a_previous_step_is_the_one_run(
    tmp_path: Path,
) -> None:
    tool(tmp_path / "system", "old")
    path = f"{tmp_path / 'local'}:{tmp_path / 'system'}:{SYSTEM_PATH}"
    assert execute(tmp_path, ScriptConfig("tool"), base_env=env_with(path)).output_tail == "old"
    tool(tmp_path / "local", "new")  # as a step that installs it would
    assert execute(tmp_path, ScriptConfig("tool"), base_env=env_with(path)).output_tail == "new"


def test_argv0_is_the_command_as_written(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "mysh").symlink_to("/bin/sh")
    config = ScriptConfig("mysh", args=("-c", 'echo "$0"'))
    outcome = execute(tmp_path, config, base_env=env_with(f"{tmp_path / 'bin'}:{SYSTEM_PATH}"))
    assert outcome.output_tail == "mysh"


def test_missing_directory_and_non_executable_commands_fail_as_before(tmp_path: Path) -> None:
    (tmp_path / "dir" / "tool").mkdir(parents=True)
    tool(tmp_path / "plain", "never", mode=0o644)
    cases = {
        "": "command not found: 'tool'",
        str(tmp_path / "dir"): "permission denied: 'tool' is not executable",
        str(tmp_path / "plain"): "permission denied: 'tool' is not executable",
    }
    for folder, reason in cases.items():
        path = f"{folder}:{SYSTEM_PATH}" if folder else SYSTEM_PATH
        outcome = execute(tmp_path, ScriptConfig("tool"), base_env=env_with(path))
        assert (outcome.status, outcome.reason) == (StepStatus.FAILED, reason), folder


def test_a_non_executable_file_earlier_on_the_path_is_passed_over(tmp_path: Path) -> None:
    tool(tmp_path / "plain", "never", mode=0o644)
    tool(tmp_path / "good", "good")
    path = f"{tmp_path / 'plain'}:{tmp_path / 'good'}:{SYSTEM_PATH}"
    assert execute(tmp_path, ScriptConfig("tool"), base_env=env_with(path)).output_tail == "good"


def test_a_relative_path_entry_is_relative_to_the_steps_directory(tmp_path: Path) -> None:
    tool(tmp_path / "sub" / "tools", "relative")
    config = ScriptConfig("tool", working_directory="sub")
    outcome = execute(tmp_path, config, base_env=env_with(f"tools:{SYSTEM_PATH}"))
    assert outcome.output_tail == "relative"
    assert find_on_path("tool", {"PATH": f"tools:{SYSTEM_PATH}"}) is None  # left to Popen


def test_a_missing_working_directory_is_named_whether_or_not_the_command_exists(
    tmp_path: Path,
) -> None:
    for command in ("true", "nosuch-wfrun-command"):
        config = ScriptConfig(command, working_directory="nowhere")
        outcome = execute(tmp_path, config, base_env=dict(os.environ))
        assert outcome.reason == f"working directory not found: {tmp_path / 'nowhere'}"


def test_a_command_removed_after_it_was_found_is_looked_up_again(tmp_path: Path) -> None:
    first = tool(tmp_path / "a", "first")
    tool(tmp_path / "b", "second")
    path = f"{tmp_path / 'a'}:{tmp_path / 'b'}:{SYSTEM_PATH}"
    assert execute(tmp_path, ScriptConfig("tool"), base_env=env_with(path)).output_tail == "first"
    first.unlink()
    assert execute(tmp_path, ScriptConfig("tool"), base_env=env_with(path)).output_tail == "second"


# ---- outputs files ----------------------------------------------------------------------------


def test_every_attempt_gets_an_empty_file_of_its_own(write: object, workdir: Path) -> None:
    check = 'test -f "$WFRUN_OUTPUT" && test ! -s "$WFRUN_OUTPUT" && '
    steps = [
        ("a", check + 'ln "$WFRUN_OUTPUT" {out}/kept'),
        ("b", check + "true"),
        ("c", check + 'echo "x=3" >> "$WFRUN_OUTPUT"'),
        ("d", check + 'echo "y=4" >> "$WFRUN_OUTPUT"'),
        ("e", check + 'chmod 644 "$WFRUN_OUTPUT"'),
        ("f", check + 'test "$(stat -c %a "$WFRUN_OUTPUT")" = 600'),
        ("g", check + "test ! -s {out}/kept"),
    ]
    lines = ["steps:"]
    previous = None
    for step_id, command in steps:
        after = f", dependsOn: [{previous}]" if previous else ""
        lines.append(f"  - {{id: {step_id}, config: {{command: '{command}', shell: true}}{after}}}")
        previous = step_id
    assert callable(write)
    result = run(write("\n".join(lines) + "\n"))
    outcomes = {sid: (r.status, r.outputs) for sid, r in result.step_results.items()}
    assert outcomes == {
        "a": (StepStatus.SUCCEEDED, {}),
        "b": (StepStatus.SUCCEEDED, {}),
        "c": (StepStatus.SUCCEEDED, {"x": "3"}),
        "d": (StepStatus.SUCCEEDED, {"y": "4"}),
        "e": (StepStatus.SUCCEEDED, {}),
        "f": (StepStatus.SUCCEEDED, {}),
        "g": (StepStatus.SUCCEEDED, {}),
    }


def test_an_empty_outputs_file_is_left_where_it_is_and_never_handed_on(tmp_path: Path) -> None:
    first = create_output_file(tmp_path / "outputs", "a")
    assert left_empty(first)  # empty: nothing to read
    second = create_output_file(tmp_path / "outputs", "b")
    assert first.exists() and first.stat().st_ino != second.stat().st_ino
    second.write_text("x=1\n")
    assert not left_empty(second)  # it holds outputs: read them
    link = tmp_path / "outputs" / "link.out"
    link.symlink_to(first)
    assert not left_empty(link)  # reading it says what is wrong


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="setsid and env -i")
def test_a_process_that_escaped_its_step_cannot_write_into_a_later_steps_outputs(
    workdir: Path,
) -> None:
    # The escapee replaces its environment, so it loses the tag wfrun finds descendants by, and
    # keeps the first step's outputs file open: it writes after the second step has started.
    (workdir / "wf.yaml").write_text(
        "steps:\n"
        "  - id: esc\n"
        "    config: {shell: true, command: 'env -i setsid sh -c \"sleep 0.7; echo leaked=yes"
        ' >&3; sleep 3" 3>>"$WFRUN_OUTPUT" & sleep 0.1\'}\n'
        "  - id: later\n"
        "    dependsOn: [esc]\n"
        "    config: {command: sleep, args: ['1.5']}\n"
    )
    proc = wfrun("run", "wf.yaml", "--ui", "quiet", "--report", "r.json", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((workdir / "r.json").read_text())
    assert report["stepResults"]["later"]["outputs"] == {}
    assert report["stepResults"]["esc"]["outputs"] == {}


# Bound under a short relative name (a socket's path is limited to about 100 bytes), then moved.
SOCKET = """python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('s.sock')"; mv s.sock"""


@pytest.mark.parametrize("executor", ["local", "dask"])
@pytest.mark.parametrize(
    ("replace", "reason"),
    [
        ('mkfifo "$WFRUN_OUTPUT"', "was replaced by something that is not a regular file"),
        (SOCKET + ' "$WFRUN_OUTPUT"', "was replaced by something that is not a regular file"),
        ('ln -s /etc/hostname "$WFRUN_OUTPUT"', "was replaced by a symbolic link, which wfrun "
         "does not follow"),
    ],
    ids=["fifo", "socket", "link"],
)  # fmt: skip
def test_an_outputs_file_replaced_by_a_fifo_or_a_link_fails_the_step_and_never_hangs(
    workdir: Path, replace: str, reason: str, executor: str
) -> None:
    if executor == "dask":
        pytest.importorskip("distributed")
    (workdir / "wf.yaml").write_text(
        "steps:\n"
        "  - id: swap\n"
        "    config:\n"
        "      shell: true\n"
        "      command: |\n"
        '        rm "$WFRUN_OUTPUT"\n'
        f"        {replace}\n"
    )
    proc = wfrun(
        "run", "wf.yaml", "--ui", "quiet", "--report", "r.json", "--executor", executor,
        cwd=workdir, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    result = json.loads((workdir / "r.json").read_text())["stepResults"]["swap"]
    assert result["status"] == "failed" and reason in result["reason"], result


# ---- the escape sweep -------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a subreaper is Linux only")
def test_the_sweep_reads_no_process_it_was_told_is_wfruns_own() -> None:
    catcher = EscapeCatcher()
    tag = f"test-{os.getpid()}-{time.monotonic_ns()}:1"
    env = {**os.environ, TAG_VARIABLE: tag}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    try:
        time.sleep(0.2)  # its environment is its own once it has started
        assert catcher.sweep(tag, known={proc.pid}) == 0
        assert proc.poll() is None
        assert catcher.sweep(tag) == 1  # not known: an adoptee with the tag is killed
        assert all_gone([proc.pid])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        catcher.close()


# ---- delivery ---------------------------------------------------------------------------------


def test_events_posted_while_the_delivery_thread_rests_arrive_in_order() -> None:
    recorder = Recorder()
    delivery = EventDelivery([recorder], time.monotonic, rest=0.05)
    delivery.start()
    posted = [StepWaiting(f"s{i}", "waiting", float(i)) for i in range(200)]
    for event in posted[:1]:
        delivery.post(event)
    time.sleep(0.01)  # the first is delivered; the thread rests while the rest come
    for event in posted[1:]:
        delivery.post(event)
    delivery.close()
    assert recorder.events == posted
