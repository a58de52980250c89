"""No step process outlives its step or wfrun (SPEC §3.7): daemons that leave the process group,
wfrun killed with SIGKILL, the terminal closed (SIGHUP). Real processes and real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import all_gone, cli_env, py_step, run

Write = Callable[..., Path]
WFRUN = [sys.executable, "-m", "wfrun", "run"]

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="processes leaving the group are caught on Linux"
)

# A step that starts a daemon the classic way (fork, setsid, fork again, stdio to /dev/null),
# notes the daemon's pid, and then succeeds at once.
DAEMONISER = """\
import os, sys, time
out = os.path.join(sys.argv[1], os.environ["WFRUN_STEP_ID"] + ".pids")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        with open(out, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(60)
    os._exit(0)
os.wait()
while not (os.path.exists(out) and open(out).read().strip()):
    time.sleep(0.01)
print("daemon started")
"""

# A step whose child moves to a process group of its own and keeps running.
GROUP_LEAVER = """\
import os, subprocess, sys, time
out = os.path.join(sys.argv[1], os.environ["WFRUN_STEP_ID"] + ".pids")
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         process_group=0, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(out, "a") as f:
    f.write(f"{child.pid}\\n")
"""

# A step that starts a grandchild in its group and an escaping daemon, then runs until killed.
LONG_RUNNER = """\
import os, subprocess, sys, time
out = os.path.join(sys.argv[1], os.environ["WFRUN_STEP_ID"] + ".pids")
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
away = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                        start_new_session=True, stdout=subprocess.DEVNULL)
with open(out, "w") as f:
    f.write(f"{os.getpid()} {kid.pid} {away.pid}\\n")
time.sleep(60)
"""


def _pids(path: Path, count: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    raise AssertionError(f"{path} never listed {count} pids")


@linux_only
@pytest.mark.parametrize("script", [DAEMONISER, GROUP_LEAVER], ids=["setsid-daemon", "own-group"])
def test_a_process_that_left_the_group_is_gone_after_a_successful_run(
    write: Write, workdir: Path, script: str
) -> None:
    path = write(
        "steps:\n"
        + py_step("d", script)
        + "  - {id: after, config: {command: 'true'}, dependsOn: [d]}\n"
    )
    result = run(path)
    assert result.success, result.step_results["d"].reason
    pids = _pids(workdir / "out" / "d.pids", 1)
    assert all_gone(pids, timeout=5), "a process that left its step's group outlived the step"


@linux_only
def test_a_daemon_is_gone_when_its_step_ends_not_only_when_the_run_ends(
    write: Write, workdir: Path
) -> None:
    waiter = "import os, sys, time\nout = sys.argv[1]\n" + (
        "pid = int(open(os.path.join(out, 'd.pids')).read())\n"
        "gone = False\n"
        "for _ in range(300):\n"
        "    try:\n        os.kill(pid, 0)\n    except ProcessLookupError:\n"
        "        gone = True\n        break\n"
        "    time.sleep(0.01)\n"
        "sys.exit(0 if gone else 3)\n"
    )
    path = write(
        "steps:\n"
        + py_step("d", DAEMONISER)
        + py_step("check", waiter).replace("}}\n", "}, dependsOn: [d]}\n")
    )
    result = run(path)
    assert result.step_results["check"].success, "the daemon outlived its step"


def _start_cli(path: Path, workdir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*WFRUN, str(path), "--ui", "plain", "--log-dir", str(workdir / "logs"), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


@linux_only
def test_kill_9_of_wfrun_ends_every_step_process_within_2_seconds(
    write: Write, workdir: Path
) -> None:
    path = write("steps:\n" + py_step("a", LONG_RUNNER) + py_step("b", LONG_RUNNER))
    proc = _start_cli(path, workdir)
    pids = _pids(workdir / "out" / "a.pids", 3) + _pids(workdir / "out" / "b.pids", 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    killed = time.monotonic()
    assert all_gone(pids, timeout=10), "a step process outlived wfrun's kill -9"
    assert time.monotonic() - killed < 2.0 + 0.5  # the spec's 2 s, and the test's polling


@linux_only
def test_sighup_stops_the_run_like_sigterm_writes_the_report_and_exits_129(
    write: Write, workdir: Path
) -> None:
    path = write("steps:\n" + py_step("a", LONG_RUNNER))
    proc = _start_cli(path, workdir)
    pids = _pids(workdir / "out" / "a.pids", 3)
    proc.send_signal(signal.SIGHUP)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 129, stderr
    assert all_gone(pids, timeout=5)
    (run_dir,) = (workdir / "logs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "cancelled"
    assert report["stepResults"]["a"]["status"] == "cancelled"
    assert "stopping (run interrupted)" in stdout
    assert "Traceback" not in stderr


def test_an_escaped_process_of_a_cancelled_step_is_gone_too(write: Write, workdir: Path) -> None:
    path = write("steps:\n" + py_step("a", LONG_RUNNER))
    proc = _start_cli(path, workdir)
    pids = _pids(workdir / "out" / "a.pids", 3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    if sys.platform.startswith("linux"):
        assert all_gone(pids, timeout=5)
    else:  # the escaped one is not caught without a subreaper
        assert all_gone(pids[:2], timeout=5)
        os.kill(pids[2], signal.SIGKILL)
