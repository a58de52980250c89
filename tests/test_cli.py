"""The real `wfrun` command: exit codes, formats, signals, reports."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import psutil
import pytest
from conftest import all_gone, cli_env, py_step, rec, wfrun
from typer.testing import CliRunner

from wfrun.cli import app

ROOT = Path(__file__).parent.parent
SAMPLES = sorted((ROOT / "sample-workflows").glob("*.yaml"))
Write = Callable[[str], Path]
runner = CliRunner()


def test_version() -> None:
    from wfrun import __version__

    assert wfrun("--version").stdout == f"wfrun {__version__}\n"
    assert runner.invoke(app, ["--version"]).stdout == f"wfrun {__version__}\n"


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_every_sample_validates(sample: Path) -> None:
    result = runner.invoke(app, ["validate", str(sample)])
    assert result.exit_code == 0, result.output
    assert f"{sample}: ok" in result.output


def test_validate_reports_every_problem_with_its_position(write: Write) -> None:
    path = write("""
        steps:
          - id: build
            config: {command: make}
          - id: test
            config: {command: make}
            dependsOn: [biuld]
            parallel: {resource: gpu}
    """)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}:7:17: step 'test' depends on unknown step 'biuld' (did you mean 'build'?)",
        f"{path}:8:16: step 'test' uses unknown pool 'gpu' "
        "(no pools are declared under parallel.resources)",
        f"{path}: 2 problems found",
    ]
    assert "Traceback" not in result.output


def test_validate_formats(write: Write) -> None:
    good = write("steps: [{id: a, config: {command: 'true'}}]\n", "good.yaml")
    bad = write("steps: [{id: a, config: {command: 'true'}, dependsOn: [b]}]\n", "bad.yaml")
    gh = runner.invoke(app, ["validate", "--format", "github", str(good), str(bad)])
    assert gh.exit_code == 1
    assert gh.output.startswith(f"::error file={bad},line=1,col=")
    js = runner.invoke(app, ["validate", "--format", "json", str(good), str(bad)])
    document = json.loads(js.stdout)
    assert document["valid"] is False
    assert [f["valid"] for f in document["files"]] == [True, False]
    assert document["files"][1]["diagnostics"][0]["line"] == 1


def test_unreadable_file_is_exit_2_without_traceback(tmp_path: Path) -> None:
    result = wfrun("validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr and "Traceback" not in result.stderr
    result = wfrun("run", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_invalid_workflow_run_is_exit_2(write: Write) -> None:
    path = write("steps: [{id: a, config: {command: 'true'}, dependsOn: [a]}]\n")
    result = wfrun("run", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:1:")
    assert "Traceback" not in result.stderr


def test_usage_error_is_exit_2() -> None:
    assert wfrun("run", "--no-such-option", "x.yaml").returncode == 2


def test_an_option_missing_its_value_shows_the_usage_too() -> None:
    for command, option in (("run", "-j"), ("plan", "--format"), ("validate", "--format")):
        done = wfrun(command, "x.yaml", option)
        assert done.returncode == 2
        assert f"Usage: wfrun {command} [OPTIONS]" in done.stderr, done.stderr
        assert f"Try 'wfrun {command} --help' for help." in done.stderr
        assert f"Error: Option '{option}' requires an argument." in done.stderr


def test_plan_formats() -> None:
    complex_sample = ROOT / "sample-workflows" / "complex-parallel.yaml"
    document = json.loads(
        runner.invoke(app, ["plan", "--format", "json", str(complex_sample)]).stdout
    )
    assert [g["steps"] for g in document["groups"]] == [
        ["setup-env", "validate-config", "check-dependencies"],
        ["build-frontend", "build-backend", "prepare-database"],
        ["test-frontend", "test-backend", "integration-tests"],
        ["deploy"],
    ]
    assert document["maxConcurrency"] == 6 and document["parallel"] is True
    assert document["resources"] == {"cpu": 2, "network": 4, "database": 1}
    assert document["steps"]["build-backend"] == {
        "parallelGroup": 1,
        "dependsOn": ["setup-env", "check-dependencies"],
        "resources": {"cpu": 1},
        "maxConcurrency": None,
        "references": [],
    }
    assert document["criticalPath"][-1] == "deploy" and len(document["criticalPath"]) == 4
    sequential = json.loads(
        runner.invoke(app, ["plan", "-f", "json", "--no-parallel", str(complex_sample)]).stdout
    )
    assert sequential["maxConcurrency"] == 1 and sequential["parallel"] is False
    assert (
        json.loads(
            runner.invoke(app, ["plan", "-f", "json", "-j", "3", str(complex_sample)]).stdout
        )["maxConcurrency"]
        == 3
    )
    text = runner.invoke(app, ["plan", str(complex_sample)])
    assert (
        text.exit_code == 0 and "deploy" in text.output and "critical path" in text.output.lower()
    )
    mermaid = runner.invoke(app, ["plan", "-f", "mermaid", str(complex_sample)]).stdout
    assert mermaid.startswith("flowchart") and "build-backend" in mermaid
    dot = runner.invoke(app, ["plan", "-f", "dot", str(complex_sample)]).stdout
    assert dot.startswith("digraph") and "->" in dot


def test_schema_command_prints_the_schema() -> None:
    document = json.loads(runner.invoke(app, ["schema"]).stdout)
    assert document["$id"].endswith("workflow.schema.json")


def test_run_plain_success_writes_logs_report_and_junit(tmp_path: Path) -> None:
    sample = ROOT / "sample-workflows" / "error-handling.yaml"
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    result = wfrun(
        "run",
        str(sample),
        "--ui",
        "plain",
        "--log-dir",
        str(tmp_path / "logs"),
        "--report",
        str(report),
        "--junit",
        str(junit),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b" not in result.stdout
    assert "optional-step" in result.stdout
    document = json.loads(report.read_text())
    assert document["status"] == "succeeded"
    assert document["stepResults"]["optional-step"]["allowedFailure"] is True
    (run_dir,) = (tmp_path / "logs").iterdir()
    assert (run_dir / "report.json").exists()
    assert "cache server unreachable" in (run_dir / "optional-step.log").read_text()
    assert junit.read_text().count("<testcase") == 3


def test_run_failure_is_exit_1_and_dry_run_runs_nothing(write: Write, workdir: Path) -> None:
    path = write(f"steps:\n  - {{id: bad, config: {rec(0.01, 4)}}}\n")
    failed = wfrun("run", str(path), "--ui", "quiet", "--log-dir", str(workdir / "logs"))
    assert failed.returncode == 1
    # Quiet: the headline, the statistics and a digest per failure; no step lines, no tables.
    assert failed.stdout.startswith("✘ ") and "1 step: 1 failed" in failed.stdout
    assert "✘ bad failed" in failed.stdout and "exit code 4" in failed.stdout
    assert "group 0" not in failed.stdout and "▶" not in failed.stdout
    dry = wfrun("run", str(path), "--dry-run", "--ui", "plain", "--log-dir", str(workdir / "l2"))
    assert dry.returncode == 0, dry.stdout
    assert "would run" in dry.stdout
    assert not (workdir / "l2").exists()


# ---- signals: Ctrl-C and SIGTERM ---------------------------------------------------------------

SPAWNER = """
import os, subprocess, sys, time
out = sys.argv[1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(os.path.join(out, os.environ["WFRUN_STEP_ID"] + ".pids"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
time.sleep(60)
"""

STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(os.path.join(sys.argv[1], os.environ["WFRUN_STEP_ID"] + ".pids"), "w") as f:
    f.write(str(os.getpid()))
time.sleep(60)
"""


WFRUN_RUN = [sys.executable, "-m", "wfrun", "run"]


def _start(
    path: Path, workdir: Path, *extra: str, stdout: int = subprocess.PIPE
) -> subprocess.Popen[str]:
    """`wfrun run` in plain mode as a child process, its logs under workdir/logs."""
    return subprocess.Popen(
        [*WFRUN_RUN, str(path), "--ui", "plain", "--log-dir", str(workdir / "logs"), *extra],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


def _wait_for(files: list[Path], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(f.exists() and f.read_text().strip() for f in files):
            return [int(p) for f in files for p in f.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"steps did not start: {files}")


def _spawner_workflow(write: Write, count: int) -> Path:
    steps = "".join(py_step(f"s{i}", SPAWNER) for i in range(count))
    return write(
        f"steps:\n{steps}  - {{id: later, config: {{command: 'true'}}, dependsOn: [s0]}}\n"
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_cancels_everything_and_leaves_no_process(
    write: Write, workdir: Path, sig: int, code: int
) -> None:
    path = _spawner_workflow(write, 2)
    proc = _start(path, workdir)
    pids = _wait_for([workdir / "out" / "s0.pids", workdir / "out" / "s1.pids"])
    proc.send_signal(sig)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert all_gone(pids), "a step process (or its child) outlived wfrun"
    (run_dir,) = (workdir / "logs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "cancelled"
    assert {s["status"] for s in report["stepResults"].values()} == {"cancelled"}
    assert "Traceback" not in stdout


def test_second_interrupt_kills_at_once(write: Write, workdir: Path) -> None:
    path = write("steps:\n" + py_step("stubborn", STUBBORN))
    proc = _start(path, workdir, "--grace-period", "60")
    (pid,) = _wait_for([workdir / "out" / "stubborn.pids"])
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # the step ignores SIGTERM: wfrun waits for the grace period
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert all_gone([pid])


def test_step_timeout_leaves_no_grandchild(write: Write, workdir: Path) -> None:
    path = write("steps:\n" + py_step("s0", SPAWNER, "timeout: 1s"))
    result = wfrun("run", str(path), "--ui", "plain", "--log-dir", str(workdir / "logs"))
    assert result.returncode == 1
    pids = [int(p) for p in (workdir / "out" / "s0.pids").read_text().split()]
    assert all_gone(pids)
    assert "timed out" in result.stdout


def test_a_step_writing_100_mb_keeps_wfrun_memory_flat(write: Write, workdir: Path) -> None:
    writer = (
        "import sys\nline = b'x' * 1023 + b'\\n'\n"
        "for _ in range(102400):\n    sys.stdout.buffer.write(line)"
    )
    path = write("steps:\n" + py_step("big", writer))
    # stdout to /dev/null: the plain summary of 100 MB of output would fill an unread pipe.
    proc = _start(path, workdir, stdout=subprocess.DEVNULL)
    me = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, me.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    proc.communicate()
    assert proc.returncode == 0
    (run_dir,) = (workdir / "logs").iterdir()
    assert (run_dir / "big.log").stat().st_size == 100 * 1024 * 1024
    # The interpreter with rich, typer and jsonschema loaded is ~40-60 MB; 100 MB of output must
    # not be held in memory.
    assert peak < 100 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MiB"


def test_python_m_wfrun_and_help_are_clean() -> None:
    result = wfrun("--help")
    assert result.returncode == 0 and "run" in result.stdout and "validate" in result.stdout


def test_agent_sample_runs_and_reports_the_replies(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = wfrun(
        "run",
        str(ROOT / "sample-workflows" / "agents.yaml"),
        "--ui",
        "quiet",
        "--log-dir",
        str(tmp_path / "logs"),
        "--report",
        str(report),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    steps = json.loads(report.read_text())["stepResults"]
    assert steps["review-security"]["output"] == (
        "[stand-in-security] Done: Review the diff for security problems."
    )
    assert steps["summary"]["output"].startswith("[stand-in-small] Done: Summarize")
    assert steps["collect-diff"]["output"] is None


def test_agents_file_is_merged_under_the_workflow(write: Write, workdir: Path) -> None:
    agent = ROOT / "sample-workflows" / "agents" / "stand_in_agent.py"
    agents_file = write(
        f"""
        agents:
          helper:
            command: ["{sys.executable}", "{agent}", "--delay", "0"]
            prompt: argument
        """,
        "agents.yaml",
    )
    path = write("steps:\n  - {id: ask, type: agent, config: {agent: helper, prompt: Say hi}}\n")
    assert wfrun("validate", str(path)).returncode == 1  # unknown agent without the file
    ok = wfrun("validate", "--agents", str(agents_file), str(path))
    assert ok.returncode == 0, ok.stdout
    report = workdir / "r.json"
    ran = wfrun(
        "run",
        str(path),
        "--agents",
        str(agents_file),
        "--ui",
        "quiet",
        "--log-dir",
        str(workdir / "logs"),
        "--report",
        str(report),
    )
    assert ran.returncode == 0, ran.stdout
    assert json.loads(report.read_text())["stepResults"]["ask"]["output"] == (
        "[stand-in] Done: Say hi"
    )


def _on_a_terminal(args: list[str], env: dict[str, str], columns: int = 0) -> str:
    """Run wfrun with its output on a pseudo-terminal (`columns` wide, when given) and return
    what it drew."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    if columns:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *args], stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_auto_is_live_and_term_dumb_is_plain(tmp_path: Path) -> None:
    sample = str(ROOT / "sample-workflows" / "automatic-parallel.yaml")
    args = ["run", sample, "--log-dir", str(tmp_path)]
    env = {**cli_env(), "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    live = _on_a_terminal(args, env)
    assert "\x1b[?25l" in live  # the live view hides the cursor while it redraws
    assert "Automatic Parallel Detection succeeded" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", live)
    dumb = _on_a_terminal(args, {**env, "TERM": "dumb"})
    assert "\x1b" not in dumb
    assert "▶ lint  [group 1]" in dumb


def test_plain_and_quiet_on_a_terminal_take_its_width(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("steps:\n  - {id: a, config: {command: 'false'}}\n")
    env = {**cli_env(), "TERM": "xterm-256color"}
    for ui in ("plain", "quiet"):
        args = ["run", str(path), "--ui", ui, "--log-dir", str(tmp_path / "runs")]
        out = _on_a_terminal(args, env, columns=60)
        boxes = [line for line in out.splitlines() if line.startswith("╰")]
        assert boxes and len(boxes[0].rstrip("\r")) == 60, out


def test_no_color_keeps_the_live_view_but_drops_colors(tmp_path: Path) -> None:
    sample = str(ROOT / "sample-workflows" / "automatic-parallel.yaml")
    env = {**cli_env(), "TERM": "xterm-256color", "NO_COLOR": "1"}
    out = _on_a_terminal(["run", sample, "--ui", "live", "--log-dir", str(tmp_path)], env)
    assert "Automatic Parallel Detection succeeded" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert not re.search(r"\x1b\[[0-9;]*3[0-9](;[0-9]+)*m", out)  # no foreground colors


def test_a_closed_stdout_does_not_stop_the_run(tmp_path: Path) -> None:
    sample = ROOT / "sample-workflows" / "automatic-parallel.yaml"
    proc = _start(sample, tmp_path)  # like `wfrun run ... | head -1`
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in stderr
    (run_dir,) = (tmp_path / "logs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "succeeded" and len(report["stepResults"]) == 3


def test_an_unusable_log_dir_is_refused_before_anything_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    sample = str(ROOT / "sample-workflows" / "automatic-parallel.yaml")
    result = wfrun("run", sample, "--log-dir", str(blocker / "runs"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"wfrun: cannot use --log-dir {blocker / 'runs'}:")
    assert "Traceback" not in result.stderr


def test_a_log_dir_that_is_a_file_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("")
    sample = str(ROOT / "sample-workflows" / "automatic-parallel.yaml")
    result = wfrun("run", sample, "--log-dir", str(blocker))
    assert result.returncode == 2
    assert (
        result.stderr
        == f"wfrun: cannot use --log-dir {blocker}: {blocker} is a file, not a directory\n"
    )


def test_unusable_report_paths_are_refused_before_the_run_starts(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "wf.yaml"
    path.write_text(
        f"steps:\n  - {{id: a, config: {{command: touch, args: [{json.dumps(str(marker))}]}}}}\n"
    )
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    cases = {
        ("--junit", f"{tmp_path}/adir/"): "it is a directory; give a file name",
        (
            "--report",
            f"{tmp_path}/missing/r.json",
        ): f"the directory {tmp_path}/missing does not exist",
        ("--report", f"{tmp_path}/afile/r.json"): f"{tmp_path}/afile is not a directory",
        ("--junit", "/proc/j.xml"): "cannot write in /proc",
    }
    for (option, value), why in cases.items():
        result = wfrun("run", str(path), option, value, "--log-dir", str(tmp_path / "logs"))
        assert result.returncode == 2, (option, value, result.stderr)
        assert result.stderr.startswith(f"wfrun: cannot use {option} {value.rstrip('/')}: {why}")
        assert not marker.exists() and not (tmp_path / "logs").exists()


def test_validate_reports_an_unreadable_file_in_every_format(write: Write, tmp_path: Path) -> None:
    good = write("steps: [{id: a, config: {command: 'true'}}]\n", "ok.yaml")
    missing = str(tmp_path / "missing.yaml")
    js = runner.invoke(app, ["validate", "--format", "json", missing, str(good)])
    assert js.exit_code == 2
    document = json.loads(js.stdout)
    assert document["valid"] is False
    assert [(f["file"], f["valid"], f["readable"]) for f in document["files"]] == [
        (missing, False, False),
        (str(good), True, True),
    ]
    assert document["files"][0]["diagnostics"] == [
        {"file": missing, "line": None, "col": None, "message": f"{missing}: no such file"}
    ]
    gh = runner.invoke(app, ["validate", "--format", "github", str(good), missing])
    assert gh.exit_code == 2
    assert gh.stdout == f"::error file={missing}::{missing}: no such file\n"
    text = wfrun("validate", str(good), missing)
    assert text.returncode == 2
    assert text.stdout == f"{good}: ok\n"
    assert text.stderr == f"wfrun: {missing}: no such file\n"


HELP_GLITCHES = ("<bool>", "{file}", "{FILE", "<list[Path]>", "<path>", "mermai d")
# typer 0.26+ (pydantic) renders help and errors its own way; pyproject pins typer<0.26.
PINNED_TYPER = pytest.mark.skipif(
    tuple(int(x) for x in version("typer").split(".")[:2]) >= (0, 26),
    reason=f"pyproject pins typer<0.26 (this environment has typer {version('typer')})",
)


@PINNED_TYPER
@pytest.mark.parametrize("command", [[], ["run"], ["plan"], ["validate"], ["schema"]])
def test_help_at_80_columns_reads_cleanly(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wfrun", *command, "--help"],
        capture_output=True,
        text=True,
        env={**cli_env(), "COLUMNS": "80"},
        timeout=60,
    )
    assert result.returncode == 0
    for glitch in HELP_GLITCHES:
        assert glitch not in result.stdout, glitch
    assert max(map(len, result.stdout.splitlines())) <= 80
    if command == ["plan"]:
        assert "-f, --format [text|json|mermaid|dot]" in result.stdout
    if command == ["run"]:
        assert "-k, --keep-going " in result.stdout and "--report FILE" in result.stdout


@PINNED_TYPER
def test_a_bad_format_says_which_values_are_allowed() -> None:
    result = wfrun("plan", "--format", "xml", "x.yaml")
    assert result.returncode == 2
    assert (
        "Invalid value for '--format' / '-f': 'xml' is not one of 'text', 'json', 'mermaid', 'dot'."
        in result.stderr
    )


def test_a_grace_period_that_is_not_a_sane_number_is_refused(tmp_path: Path) -> None:
    sample = str(ROOT / "sample-workflows" / "automatic-parallel.yaml")
    for value in ("nan", "inf", "1e10", "-1"):
        result = wfrun("run", sample, "--grace-period", value, "--log-dir", str(tmp_path))
        assert result.returncode == 2, value
        assert "Traceback" not in result.stderr and "--grace-period" in result.stderr


def test_a_grace_period_is_seconds_or_a_duration(tmp_path: Path) -> None:
    sample = str(ROOT / "sample-workflows" / "automatic-parallel.yaml")
    for value in ("1s", "500ms", "0", "0s", "0ms", "2.5", "1h"):
        result = wfrun(
            "run", sample, "--ui", "quiet", "--grace-period", value, "--log-dir", str(tmp_path)
        )
        assert result.returncode == 0, (value, result.stderr)
    result = wfrun("run", sample, "--grace-period", "2h", "--log-dir", str(tmp_path))
    assert result.returncode == 2
    assert "'--grace-period': 2h is not between 0 and 3600 seconds" in result.stderr
    result = wfrun("run", sample, "--grace-period", "soon", "--log-dir", str(tmp_path))
    assert result.returncode == 2
    assert "'soon' is neither a number of seconds nor a duration: invalid duration" in result.stderr
    result = wfrun("run", sample, "-j", "99999999999", "--log-dir", str(tmp_path))
    assert result.returncode == 2 and "is not in the range 1<=x<=1000000" in result.stderr
    assert "Default: 5s." in wfrun("run", "--help").stdout


def test_a_closed_terminal_still_gives_129_and_every_report_file(tmp_path: Path) -> None:
    import pty

    workflow = tmp_path / "wf.yaml"
    workflow.write_text("steps:\n  - {id: a, config: {command: sleep, args: ['60']}}\n")
    leader, follower = pty.openpty()
    args = [sys.executable, "-m", "wfrun", "run", str(workflow), "--ui", "plain"]
    args += ["--log-dir", str(tmp_path / "logs"), "--report", str(tmp_path / "r.json")]
    args += ["--junit", str(tmp_path / "j.xml")]
    proc = subprocess.Popen(args, stdout=follower, stderr=follower, env=cli_env())
    os.close(follower)
    seen = b""
    while b"[group 0]" not in seen:  # the step has started
        seen += os.read(leader, 4096)
    os.close(leader)  # the terminal goes away: writes to it now fail with EIO
    proc.send_signal(signal.SIGHUP)  # and the kernel's SIGHUP, as a closed terminal sends
    assert proc.wait(timeout=30) == 129
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "cancelled"
    assert (tmp_path / "j.xml").exists()


@pytest.mark.parametrize("ui", ["plain", "quiet"])
def test_escapes_in_the_workflow_file_never_reach_the_terminal_raw(tmp_path: Path, ui: str) -> None:
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(
        'name: "evil\\e]0;pwned\\a"\n'
        'steps:\n  - {id: a, name: "x\\e[2J", config: {command: "nosuch\\e[2J"}}\n'
    )
    result = wfrun("run", str(workflow), "--ui", ui, "--log-dir", str(tmp_path / "logs"))
    assert result.returncode in (1, 2)
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    if result.returncode == 1:
        assert "evil\\x1b]0;pwned\\x07" in result.stdout


def test_pool_names_and_line_separators_from_the_file_are_shown_escaped(tmp_path: Path) -> None:
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(
        'name: "t\\u2028x"\nparallel:\n  resources: {"c\\e[2J": 1}\nsteps:\n'
        '  - {id: a, config: {command: "true"}, parallel: {resource: "c\\e[2J"}}\n'
        '  - {id: b, config: {command: "true"}, parallel: {resource: "c\\e[2J"}}\n'
    )
    plan = wfrun("plan", str(workflow))
    ran = wfrun("run", str(workflow), "--ui", "plain", "--log-dir", str(tmp_path / "logs"))
    assert plan.returncode == 0 and ran.returncode == 0, plan.stderr + ran.stderr
    for out in (plan.stdout, ran.stdout):
        assert "\x1b" not in out and "\u2028" not in out
        assert "c\\x1b[2J" in out and "t\\u2028x" in out


def test_a_mistyped_command_is_suggested_once_and_a_named_one_keeps_its_help() -> None:
    # `wfrun run ...` builds the run command alone (cli._app_for): the same usage and errors.
    done = wfrun("rnu", "x.yaml")
    assert done.returncode == 2
    assert done.stderr.count("Did you mean 'run'?") == 1
    done = wfrun("run")
    assert done.returncode == 2
    assert "Usage: wfrun run [OPTIONS] FILE [STEP]..." in done.stderr
    assert "Missing argument 'FILE'" in done.stderr
    assert "Usage: wfrun run [OPTIONS] FILE [STEP]..." in wfrun("run", "-h").stdout
    assert "Commands" in wfrun("--help").stdout  # every command is listed
