"""`wfrun report`: the summary again from a finished run; the bottleneck of a run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from conftest import wfrun

from wfrun.schemas import report_schema

Write = Callable[..., Path]

SLEEP = "{command: sleep, args: ['0.2']}"
POOL_BOUND = (
    "parallel: {defaultMaxConcurrency: 8, resources: {cpu: 2, disk: 4}}\nsteps:\n"
    + "".join(f"  - {{id: s{i}, config: {SLEEP}, parallel: {{resource: cpu}}}}\n" for i in range(6))
    + f"  - {{id: tail, config: {SLEEP}, dependsOn: [s5], parallel: {{resource: disk}}}}\n"
)
CAP_BOUND = "parallel: {defaultMaxConcurrency: 2}\nsteps:\n" + "".join(
    f"  - {{id: s{i}, config: {SLEEP}}}\n" for i in range(6)
)


def _run(path: Path, logs: Path, *extra: str) -> Path:
    """Run the workflow through the CLI; return its run directory."""
    done = wfrun("run", str(path), "--ui", "plain", "--log-dir", str(logs), *extra)
    assert done.returncode in (0, 1), done.stderr
    return max(logs.iterdir())  # run ids sort by time


@pytest.fixture
def pool_run(write: Write, workdir: Path) -> Path:
    return _run(write(POOL_BOUND), workdir / "logs")


def test_bottleneck_of_a_pool_bound_run_is_that_pool(pool_run: Path) -> None:
    report = json.loads((pool_run / "report.json").read_text())
    jsonschema.validate(report, report_schema())
    found = report["parallelStats"]["bottleneck"]
    assert found["kind"] == "pool" and found["name"] == "cpu"
    # Four of the six steps had to wait for the pool; the run's end was held back about two
    # steps' time (0.4s), not the sum of every wait.
    assert 300 <= found["waitTime"] <= 700
    assert found["steps"] and set(found["steps"]) <= {f"s{i}" for i in range(6)}
    usage = report["parallelStats"]["resources"]["cpu"]["usage"]
    assert max(units for _, units in usage) == 2 and usage[-1][1] == 0


def test_bottleneck_of_a_cap_bound_run_is_the_cap(write: Write, workdir: Path) -> None:
    run_dir = _run(write(CAP_BOUND), workdir / "logs")
    found = json.loads((run_dir / "report.json").read_text())["parallelStats"]["bottleneck"]
    assert found["kind"] == "cap" and found["name"] is None


def test_bottleneck_of_a_step_that_runs_alone_is_its_limit(write: Write, workdir: Path) -> None:
    wf = (
        "steps:\n"
        f"  - {{id: a, config: {SLEEP}}}\n  - {{id: b, config: {SLEEP}}}\n"
        f"  - {{id: alone, config: {SLEEP}, parallel: {{enabled: false}}}}\n"
    )
    run_dir = _run(write(wf), workdir / "logs")
    found = json.loads((run_dir / "report.json").read_text())["parallelStats"]["bottleneck"]
    assert found["kind"] == "stepLimit" and found["name"] == "alone"
    assert found["steps"] == ["alone"]
    done = wfrun("report", str(run_dir))
    assert "bottleneck        the step limit of alone: held up the run" in done.stdout


def test_no_bottleneck_when_nothing_waited(write: Write, workdir: Path) -> None:
    run_dir = _run(write(f"steps:\n  - {{id: a, config: {SLEEP}}}\n"), workdir / "logs")
    done = wfrun("report", str(run_dir))
    assert json.loads((run_dir / "report.json").read_text())["parallelStats"]["bottleneck"] is None
    assert not any(line.startswith("bottleneck") for line in done.stdout.splitlines())


def test_summary_names_the_bottleneck(write: Write, workdir: Path) -> None:
    done = wfrun("run", str(write(POOL_BOUND)), "--ui", "quiet", "--log-dir", str(workdir / "l"))
    assert done.returncode == 0, done.stderr
    assert "bottleneck        pool cpu: held up the run" in done.stdout


def test_report_prints_the_end_of_run_summary_again(write: Write, workdir: Path) -> None:
    logs = workdir / "logs"
    plain = wfrun("run", str(write(POOL_BOUND)), "--ui", "plain", "--log-dir", str(logs))
    assert plain.returncode == 0, plain.stderr
    (run_dir,) = logs.iterdir()
    again = wfrun("report", "--log-dir", str(logs))  # the newest run
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    # The very summary the run ended with: same tables, times, bottleneck and pool bars.
    assert plain.stdout.splitlines()[-len(lines) :] == lines
    assert "pool cpu" in again.stdout and "bottleneck" in again.stdout
    for run in (str(run_dir), run_dir.name, str(run_dir / "report.json")):
        by = wfrun("report", run, "--log-dir", str(logs))
        assert by.returncode == 0 and by.stdout == again.stdout, run


def test_report_picks_the_newest_run(write: Write, workdir: Path) -> None:
    logs = workdir / "logs"
    _run(write(CAP_BOUND, "first.yaml"), logs)
    _run(write(POOL_BOUND, "second.yaml"), logs)
    done = wfrun("report", "--log-dir", str(logs))
    assert done.stdout.startswith("✔ second succeeded")


def test_report_of_a_failed_run_keeps_the_digest(write: Write, workdir: Path) -> None:
    logs = workdir / "logs"
    bad = "steps:\n  - {id: bad, config: {command: sh, args: ['-c', 'echo oops; exit 3']}}\n"
    run_dir = _run(write(bad), logs)
    done = wfrun("report", str(run_dir))
    assert done.returncode == 0
    assert "exit code 3" in done.stdout and "oops" in done.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "is not a wfrun report: not JSON"),
        ('{"a": 1}', "is not a wfrun report: no schemaVersion and stepResults"),
        ("[1, 2]", "is not a wfrun report"),
        ('{"schemaVersion": 99, "stepResults": {}}', "report format version 99"),
        (
            '{"schemaVersion": 1, "stepResults": {"a": {"status": "bogus"}}}',
            "is not a wfrun report: the document: 'runId' is a required property",
        ),
        (b"\xff\xfe", "is not a wfrun report: it is not UTF-8"),
    ],
)
def test_bad_report_files_exit_2_with_a_message(
    workdir: Path, content: str | bytes, message: str
) -> None:
    path = workdir / "r.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    done = wfrun("report", str(path))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_missing_runs_exit_2_with_a_message(workdir: Path) -> None:
    (workdir / "logs" / "20260101-000000-aaaa").mkdir(parents=True)
    cases = {
        ("nope", "--log-dir", str(workdir / "logs")): "no run 'nope': not a report file",
        ("--log-dir", str(workdir / "nothing")): "no runs to show: cannot read",
        ("--log-dir", str(workdir / "logs")): "no runs to show under",
        (str(workdir / "logs" / "20260101-000000-aaaa"),): "has no report.json",
    }
    for args, message in cases.items():
        done = wfrun("report", *args)
        assert done.returncode == 2, args
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_report_output_paths_are_checked_first(pool_run: Path, workdir: Path) -> None:
    for option in ("--html", "--trace"):
        done = wfrun("report", str(pool_run), option, str(workdir))
        assert done.returncode == 2
        assert f"cannot use {option}" in done.stderr and "it is a directory" in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_report(pool_run: Path) -> None:
    report = pool_run / "report.json"
    report.chmod(0)
    done = wfrun("report", str(report))
    assert done.returncode == 2 and "cannot read" in done.stderr


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d.__setitem__("error", 5), "error: 5 is not of type"),
        (lambda d: d.__setitem__("runDir", {}), "runDir: {} is not of type"),
        (
            lambda d: next(iter(d["stepResults"].values())).__setitem__("attemptResults", -1),
            "attemptResults: -1 is not of type 'array'",
        ),
    ],
)
def test_a_report_with_a_field_of_the_wrong_type_is_refused_without_a_traceback(
    pool_run: Path, workdir: Path, change: Callable[[dict[str, object]], None], says: str
) -> None:
    doc = json.loads((pool_run / "report.json").read_text())
    change(doc)
    bad = workdir / "bad.json"
    bad.write_text(json.dumps(doc))
    for extra in ([], ["--html", str(workdir / "p.html")], ["--trace", str(workdir / "t.json")]):
        done = wfrun("report", str(bad), *extra)
        assert done.returncode == 2, done.stderr
        assert "is not a wfrun report" in done.stderr and says in done.stderr
        assert "Traceback" not in done.stderr


def test_page_and_trace_paths_ending_in_a_slash_are_refused(pool_run: Path, workdir: Path) -> None:
    for option in ("--html", "--trace"):
        done = wfrun("report", str(pool_run), option, str(workdir / "pages") + "/")
        assert done.returncode == 2 and "names a directory" in done.stderr
        assert not (workdir / "pages").exists()


def test_the_newest_default_says_when_a_newer_run_never_finished(
    pool_run: Path, workdir: Path
) -> None:
    logs = pool_run.parent
    killed = logs / "99991231-235959-999-00000000"  # sorts after every real run
    killed.mkdir()
    done = wfrun("report", "--log-dir", str(logs))
    assert done.returncode == 0
    assert f"run {killed.name} is newer but has no report" in done.stderr


def test_a_run_killed_before_its_end_is_named_with_the_way_to_resume_it(
    write: Write, workdir: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from conftest import cli_env

    path = write(
        "steps:\n  - {id: a, config: {command: 'true'}}\n"
        "  - {id: b, dependsOn: [a], config: {command: sleep, args: ['30']}}\n"
    )
    logs = workdir / "k9"
    argv = [
        sys.executable,
        "-m",
        "wfrun",
        "run",
        "--ui",
        "quiet",
        "--log-dir",
        str(logs),
        str(path),
    ]
    proc = subprocess.Popen(
        argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not list(logs.glob("*/journal.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    (run_dir,) = [d for d in logs.iterdir() if d.is_dir()]
    for args in (["--log-dir", str(logs)], [str(run_dir)]):
        done = wfrun("report", *args)
        assert done.returncode == 2
        assert "the run never finished (killed?); `wfrun run FILE --resume` resumes it" in (
            done.stderr
        )
    assert (
        f"run {run_dir.name} has no report.json" in wfrun("report", "--log-dir", str(logs)).stderr
    )


def test_a_deep_or_unnameable_report_is_refused_without_a_traceback(workdir: Path) -> None:
    deep = workdir / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    done = wfrun("report", str(deep))
    assert done.returncode == 2 and "nested too deep" in done.stderr
    long_name = "a" * 300  # longer than a file name may be
    for args in (["report", long_name], ["report", str(deep), "--html", long_name]):
        done = wfrun(*args, "--log-dir", str(workdir))
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
