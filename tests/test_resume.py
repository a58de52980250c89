"""The run journal and `wfrun run --resume` (SPEC §11.2), with real processes and the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env, wfrun
from test_retries import attempt_step, report_errors, runs

from wfrun.journal import (
    JOURNAL_NAME,
    Journal,
    JournalEntry,
    JournalWriter,
    fingerprint,
    plan_resume,
    read_journal,
)
from wfrun.loader import load_workflow_text
from wfrun.results import StepResult, StepStatus

CHAIN = (
    "steps:\n"
    + attempt_step("a")
    + attempt_step("b", extra="dependsOn: [a]")
    + attempt_step("c", extra="dependsOn: [b]")
    + attempt_step("x")
)


def counts(workdir: Path, *steps: str) -> dict[str, int]:
    return {sid: len(runs(workdir, sid)) for sid in steps}


def run_dirs(workdir: Path) -> list[Path]:
    return sorted((workdir / "runs").iterdir())


def run(workdir: Path, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return wfrun(
        "run", str(path), "--ui", "plain", "--log-dir", str(workdir / "runs"),
        "--report", str(workdir / "report.json"), *args,
    )  # fmt: skip


def report_of(workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((workdir / "report.json").read_text())
    return result


def journal_lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / JOURNAL_NAME).read_text().splitlines()]


@contextlib.contextmanager
def killed_9_at_the_end(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """SIGKILL the run once the block has waited for its moment; never leave it running."""
    try:
        yield
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_every_run_journals_each_finished_step_after_a_header(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(CHAIN)
    assert run(workdir, path).returncode == 0
    (run_dir,) = run_dirs(workdir)
    header, *entries = journal_lines(run_dir)
    assert header["journal"] == 1 and header["runId"] == run_dir.name
    assert header["workflow"]["path"] == str(path.resolve())
    assert sorted(e["step"] for e in entries) == ["a", "b", "c", "x"]
    assert entries[0].keys() >= {"step", "status", "fingerprint", "outputs", "startTime"}
    assert all(e["status"] == "succeeded" and e["outputs"] == {} for e in entries)
    # Dependencies are journaled before the steps that need them start.
    order = [e["step"] for e in entries]
    assert order.index("a") < order.index("b") < order.index("c")


def test_resume_after_kill_9_runs_each_unfinished_step_exactly_once(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(
        "steps:\n"
        + attempt_step("a")
        + attempt_step("b", extra="dependsOn: [a]")
        + attempt_step("slow", sleep="hang-first", extra="dependsOn: [a]")
        + attempt_step("after", extra="dependsOn: [slow, b]")
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", "run", str(path), "--ui", "plain",
         "--log-dir", str(workdir / "runs")],
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with killed_9_at_the_end(proc):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            dirs = run_dirs(workdir) if (workdir / "runs").exists() else []
            journaled = "".join(
                (d / JOURNAL_NAME).read_text() for d in dirs if (d / JOURNAL_NAME).exists()
            )
            if (workdir / "out" / "slow.started").exists() and '"step":"b"' in journaled:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the first run never got to 'slow'")
    (killed,) = run_dirs(workdir)
    assert not (killed / "report.json").exists()  # it died before writing one
    done = run(workdir, path, "--resume")
    assert done.returncode == 0, done.stdout + done.stderr
    assert counts(workdir, "a", "b", "slow", "after") == {"a": 1, "b": 1, "slow": 1, "after": 1}
    report = report_of(workdir)
    assert report["resumedFrom"] == killed.name
    steps = report["stepResults"]
    assert [sid for sid, r in steps.items() if r["reused"]] == ["a", "b"]
    assert all(r["status"] == "succeeded" for r in steps.values())
    assert "startTime" not in steps["a"] and steps["a"]["attempts"] == 0
    assert f"resuming run {killed.name}: reusing 2 steps (a, b)" in done.stdout
    assert "running 2 steps: slow (never ran), after (never ran)" in done.stdout
    assert report_errors(report) == []
    # The resumed run journals the reused steps too: resuming it reuses everything.
    again = run(workdir, path, "--resume")
    assert again.returncode == 0 and "reusing 4 steps" in again.stdout
    assert counts(workdir, "slow", "after") == {"slow": 1, "after": 1}


def test_kill_9_amid_many_fast_steps_leaves_a_true_journal_and_resume_runs_only_the_rest(
    workdir: Path, write: Callable[..., Path]
) -> None:
    # Four lanes of 15 short steps, each depending on the one before it in its lane: steps end
    # in a stream while the run is killed. Each step notes the run it runs in as it starts
    # (`s4.start`) and as it ends (`s4`).
    count, lanes = 60, 4
    steps = "".join(
        f"  - id: s{i}\n"
        "    config: {command: 'echo $WFRUN_RUN_ID >> marks/$WFRUN_STEP_ID.start && sleep 0.02"
        " && echo $WFRUN_RUN_ID >> marks/$WFRUN_STEP_ID',"
        " shell: true}\n" + (f"    dependsOn: [s{i - lanes}]\n" if i >= lanes else "")
        for i in range(count)
    )
    marks = workdir / "marks"  # the workflow's directory is the steps' working directory
    marks.mkdir()
    path = write("steps:\n" + steps)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", "run", str(path), "--ui", "quiet", "-j", str(lanes),
         "--log-dir", str(workdir / "runs")],
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with killed_9_at_the_end(proc):
        deadline = time.monotonic() + 60
        while len(list(marks.glob("s*[0-9]"))) < count // 2:
            assert time.monotonic() < deadline, "the first run never got half way"
            time.sleep(0.01)
    (killed,) = run_dirs(workdir)
    journal = read_journal(killed)
    lines = [json.loads(line) for line in (killed / JOURNAL_NAME).read_bytes().splitlines()[1:]]
    order = [line["step"] for line in lines if "fingerprint" in line]

    def ran_in(sid: str, mark: str = "") -> list[str]:
        noted = marks / (sid + mark)
        return noted.read_text().split() if noted.exists() else []

    finished = {sid for sid, e in journal.entries.items() if e.status is StepStatus.SUCCEEDED}
    assert 0 < len(finished) < count
    for sid in finished:  # every line is true: the step did end, in that run
        assert ran_in(sid) == [killed.name]
        index = int(sid[1:])
        if index >= lanes:  # its dependency is journaled before it
            assert order.index(f"s{index - lanes}") < order.index(sid)
    for i in range(lanes, count):  # a step that started had its dependency journaled already
        if ran_in(f"s{i}", ".start"):
            assert f"s{i - lanes}" in finished, f"s{i}"
    done = run(workdir, path, "--resume")
    assert done.returncode == 0, done.stdout + done.stderr
    report = report_of(workdir)
    steps_run = report["stepResults"]
    assert {sid for sid, r in steps_run.items() if r["reused"]} == finished
    assert all(r["status"] == "succeeded" for r in steps_run.values())
    for i in range(count):
        sid = f"s{i}"
        in_resumed = ran_in(sid).count(report["runId"])
        assert in_resumed == (0 if sid in finished else 1), sid


def test_a_resume_killed_as_its_first_step_starts_has_journaled_what_it_reused(
    workdir: Path, write: Callable[..., Path]
) -> None:
    # `b` fails in the first run; in the resume it hangs, and the resume is killed as it
    # starts. The reused `a` must already be in the resume's journal, or the resume after it
    # would find nothing to reuse.
    path = write(
        "steps:\n"
        "  - {id: a, config: {command: 'true'}}\n"
        "  - id: b\n"
        "    config: {shell: true, command: 'if [ -e {out}/again ]; then touch {out}/b.started;"
        " sleep 30; fi; exit 1'}\n"
    )
    assert run(workdir, path).returncode == 1
    (workdir / "out" / "again").touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", "run", str(path), "--ui", "quiet", "--resume",
         "--log-dir", str(workdir / "runs")],
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with killed_9_at_the_end(proc):
        deadline = time.monotonic() + 60
        while not (workdir / "out" / "b.started").exists():
            assert time.monotonic() < deadline, "the resume never started 'b'"
            time.sleep(0.002)
    _first, resumed = run_dirs(workdir)
    steps = [line for line in journal_lines(resumed) if "step" in line]
    assert [(line["step"], line["reused"]) for line in steps] == [("a", True)]
    plan = wfrun("plan", str(path), "--resume", "--log-dir", str(workdir / "runs")).stdout
    assert f"resuming run {resumed.name}: reusing 1 step (a)" in plan


def test_journal_lines_are_written_in_batches_and_fsynced_within_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    now = [0.0]
    workflow = load_workflow_text(
        "steps:\n  - {id: a, config: {command: 'true'}}\n"
        "  - {id: b, config: {command: 'true'}, dependsOn: [a]}\n"
        "  - {id: c, config: {command: 'true'}, dependsOn: [b]}\n"
    )
    writer = JournalWriter(tmp_path, "r1", workflow, clock=lambda: now[0])
    assert writer.error is None
    assert writer.due() == 0.05 and journal_lines(tmp_path) == []  # the header waits
    writer.flush(force=True)  # what the scheduler does before it starts anything
    assert len(journal_lines(tmp_path)) == 1
    assert writer.due() == 1.0  # the header is written; its fsync is due in a second
    writer.record(StepResult("a", StepStatus.SUCCEEDED, parallel_group=0, start_time=0.0))
    assert writer.unwritten(("a",)) and not writer.unwritten(("b",))
    assert writer.due() == 0.05  # its write is due with the batch, 50 ms after it was recorded
    writer.flush()
    assert read_journal(tmp_path).entries == {}  # not yet
    now[0] = 0.05
    writer.flush()
    assert read_journal(tmp_path).entries["a"].status is StepStatus.SUCCEEDED
    assert not writer.unwritten(("a",))
    assert writer.due() == 0.95  # the fsync, counted from the oldest line not on disk
    writer.record(StepResult("b", StepStatus.SUCCEEDED, parallel_group=1, start_time=0.05))
    writer.flush(force=True)  # what the scheduler does before starting a dependent of b
    assert set(read_journal(tmp_path).entries) == {"a", "b"}
    now[0] = 1.0
    writer.flush()
    assert writer.due() is None  # written and fsync'd
    assert len(synced) == 1  # one fsync for the header, a and b
    writer.record(StepResult("c", StepStatus.SUCCEEDED, parallel_group=2, start_time=1.0))
    writer.close()
    assert writer.error is None and len(journal_lines(tmp_path)) == 4
    assert len(synced) == 1  # the run's last lines are written, not fsync'd, like the report


def test_a_changed_step_reruns_with_its_dependents(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(CHAIN)
    assert run(workdir, path).returncode == 0
    write(
        CHAIN.replace(
            attempt_step("b", extra="dependsOn: [a]"),
            attempt_step("b", sleep="0.01", extra="dependsOn: [a]"),
        )
    )
    plan = wfrun("plan", str(path), "--resume", "--log-dir", str(workdir / "runs"))
    assert plan.returncode == 0, plan.stderr
    assert "reusing 2 steps (a, x)" in plan.stdout
    assert "running 2 steps: b (changed), c (dependency 'b' runs again)" in plan.stdout
    as_json = wfrun(
        "plan", str(path), "--resume", "--format", "json", "--log-dir", str(workdir / "runs")
    )
    resume = json.loads(as_json.stdout)["resume"]
    assert resume["reuse"] == ["a", "x"]
    assert resume["run"] == {"b": "changed", "c": "dependency 'b' runs again"}
    done = run(workdir, path, "--resume")
    assert done.returncode == 0, done.stderr
    assert counts(workdir, "a", "b", "c", "x") == {"a": 1, "b": 2, "c": 2, "x": 1}


def test_a_failed_step_reruns_and_what_succeeded_is_reused(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(
        "steps:\n"
        + attempt_step("ok")
        + attempt_step("flaky", 1, 1, extra="dependsOn: [ok]")
        + attempt_step("last", extra="dependsOn: [flaky]")
    )
    first = run(workdir, path)
    assert first.returncode == 1
    first_id = run_dirs(workdir)[0].name
    done = run(workdir, path, "--resume", first_id)
    assert done.returncode == 0, done.stderr
    assert "running 2 steps: flaky (failed), last (was skipped)" in done.stdout
    assert counts(workdir, "ok", "flaky", "last") == {"ok": 1, "flaky": 2, "last": 1}
    assert report_of(workdir)["resumedFrom"] == first_id


def test_a_journal_cut_mid_line_loses_only_that_step_with_a_note(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(CHAIN)
    assert run(workdir, path).returncode == 0
    (run_dir,) = run_dirs(workdir)
    journal = run_dir / JOURNAL_NAME
    lines = journal.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"step":"c"' in line)
    journal.write_text("".join(lines[:cut]) + lines[cut][:25])
    done = run(workdir, path, "--resume")
    assert done.returncode == 0, done.stderr
    assert "the last line was cut short" in done.stdout and "it is ignored" in done.stdout
    assert "running 1 step: c (never ran)" in done.stdout
    assert counts(workdir, "a", "b", "c", "x")["c"] == 2


def test_resume_takes_the_newest_run_of_the_same_file(
    workdir: Path, write: Callable[..., Path]
) -> None:
    mine = write(CHAIN)
    other = write("steps:\n" + attempt_step("other"), "other.yaml")
    assert run(workdir, mine).returncode == 0
    mine_id = run_dirs(workdir)[0].name
    time.sleep(0.01)  # run ids sort by the millisecond they start in
    assert run(workdir, other).returncode == 0
    done = run(workdir, mine, "--resume")
    assert done.returncode == 0 and f"resuming run {mine_id}" in done.stdout
    # In the summary's tables a reused step's time is the word, not a blank.
    rows = [line for line in done.stdout.splitlines() if "✔ succeeded" in line]
    assert rows and all(re.search(r"✔ succeeded\s+reused$", line.rstrip()) for line in rows)


def test_resume_bad_input_is_exit_2_with_a_clear_message(
    workdir: Path, write: Callable[..., Path]
) -> None:
    path = write(CHAIN)
    other = write("steps:\n" + attempt_step("other"), "other.yaml")
    none_yet = run(workdir, path, "--resume")
    assert none_yet.returncode == 2
    assert "no earlier run of" in none_yet.stderr and "run it once without --resume" in (
        none_yet.stderr
    )
    assert run(workdir, path).returncode == 0
    run_id = run_dirs(workdir)[0].name
    typo = run_id[:-1] + ("0" if run_id[-1] != "0" else "1")
    unknown = run(workdir, path, "--resume", typo)
    assert unknown.returncode == 2 and f"(did you mean {run_id!r}?)" in unknown.stderr
    foreign = run(workdir, other, "--resume", run_id)
    assert foreign.returncode == 2 and f"is a run of {path.resolve()}" in foreign.stderr
    journal = run_dirs(workdir)[0] / JOURNAL_NAME
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    broken = run(workdir, path, "--resume", run_id)
    assert broken.returncode == 2
    assert f"{journal}:2: not JSON" in broken.stderr
    journal.write_text("<html>\n")
    not_ours = run(workdir, path, "--resume", run_id)
    assert not_ours.returncode == 2 and f"{journal}:1: not JSON" in not_ours.stderr
    for done in (none_yet, unknown, foreign, broken, not_ours):
        assert "Traceback" not in done.stderr


def test_fingerprints_ignore_names_and_positions_but_not_commands_or_env() -> None:
    def fp(text: str) -> str:
        wf = load_workflow_text(text)
        return fingerprint(wf, wf.step("a"))

    base = fp("steps:\n  - {id: a, config: {command: 'true'}}\n")
    assert fp("# moved\n\nsteps:\n  - {id: a, name: A, config: {command: 'true'}}\n") == base
    assert fp("steps:\n  - {id: a, config: {command: 'false'}}\n") != base
    assert fp("env: {K: v}\nsteps:\n  - {id: a, config: {command: 'true'}}\n") != base
    assert fp("steps:\n  - {id: a, config: {command: 'true'}, retry: {maxAttempts: 2}}\n") != base
    agent = (
        "agents: {r: {command: [%s]}}\n"
        "steps:\n  - {id: a, type: agent, config: {agent: r, prompt: p}}\n"
    )
    assert fp(agent % "echo") != fp(agent % "cat")
    # The same hashes as the wfrun that wrote the journals already on disk: they resume.
    assert base == "faa08dbcc3766d6ac6252dee17918b98"
    assert fp(agent % "echo") == "49e5e2c2e22e58f62e01bc9dde4d4dc8"
    with_vars = "env: {K: v}\nvars: {x: '1', y: '2'}\nsteps:\n  - {id: a, config: {command: echo, "
    assert fp(with_vars + "args: ['${{ vars.x }}']}}\n") == "494d14b73ca61b1debd7ebc31b07b9f7"


def test_every_reason_a_step_runs_again() -> None:
    wf = load_workflow_text(
        "steps:\n"
        + "".join(f"  - {{id: {sid}, config: {{command: 'true'}}}}\n" for sid in "abcdefg")
        + "  - {id: h, config: {command: 'true'}, dependsOn: [f]}\n"
    )
    recorded = {
        "a": StepStatus.SUCCEEDED,
        "b": StepStatus.FAILED,
        "c": StepStatus.TIMED_OUT,
        "d": StepStatus.SKIPPED,
        "e": StepStatus.CANCELLED,
        "f": StepStatus.SUCCEEDED,
        "h": StepStatus.SUCCEEDED,
    }
    entries = {
        sid: JournalEntry(sid, status, fingerprint(wf, wf.step(sid)), {"v": sid})
        for sid, status in recorded.items()
    }
    entries["f"] = JournalEntry("f", StepStatus.SUCCEEDED, "an older definition", {})
    resume = plan_resume(wf, Journal("r1", Path("r1"), None, entries))
    assert {d.step_id: d.why for d in resume.decisions} == {
        "a": "succeeded, unchanged",
        "b": "failed",
        "c": "timed out",
        "d": "was skipped",
        "e": "was cancelled",
        "f": "changed",
        "g": "never ran",
        "h": "dependency 'f' runs again",
    }
    assert resume.reused == ("a",) and resume.outputs == {"a": {"v": "a"}}
