"""Earlier runs weigh the critical path of `plan` and the order of `run`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import rec
from typer.testing import CliRunner

from wfrun.cli import app
from wfrun.history import previous_durations

Write = Callable[[str], Path]


def _report(log_dir: Path, run_id: str, file: str, times: dict[str, int | None]) -> None:
    steps = {
        sid: ({"executionTime": ms} if ms is not None else {"status": "skipped"})
        for sid, ms in times.items()
    }
    (log_dir / run_id).mkdir(parents=True)
    report = {"workflow": {"file": file}, "stepResults": steps}
    (log_dir / run_id / "report.json").write_text(json.dumps(report))


def test_each_step_takes_its_time_from_the_newest_run_it_ran_in(tmp_path: Path) -> None:
    wf, other = tmp_path / "wf.yaml", tmp_path / "other.yaml"
    logs = tmp_path / "runs"
    _report(logs, "20261127-100000-aaaa", str(wf), {"a": 1000, "b": 2000})
    _report(logs, "20261127-110000-bbbb", str(wf), {"a": 3000, "b": None})
    _report(logs, "20261127-120000-cccc", str(other), {"a": 5})
    (logs / "20261127-130000-dddd").mkdir()  # a run without a report (interrupted early)
    # The newest run of wf failed after `a`: `b` keeps its time from the run before.
    assert previous_durations(wf, logs) == {"a": 3.0, "b": 2.0}
    assert previous_durations(wf, logs, steps=["a"]) == {"a": 3.0}  # stops at the first run
    assert previous_durations(tmp_path / "never-ran.yaml", logs) is None
    assert previous_durations(wf, tmp_path / "no-such-dir") is None


def test_plan_weighs_the_critical_path_by_the_previous_run(write: Write, workdir: Path) -> None:
    path = write(f"""
        steps:
          - {{id: slow, config: {rec(0.6)}}}
          - {{id: first, config: {rec(0.01)}}}
          - {{id: second, config: {rec(0.01)}, dependsOn: [first]}}
    """)
    logs = workdir / "runs"
    runner = CliRunner()

    def critical_path() -> list[str]:
        out = runner.invoke(app, ["plan", "-f", "json", "--log-dir", str(logs), str(path)])
        return list(json.loads(out.stdout)["criticalPath"])

    assert critical_path() == ["first", "second"]  # by step count: no run yet
    ran = runner.invoke(app, ["run", str(path), "--ui", "quiet", "--log-dir", str(logs)])
    assert ran.exit_code == 0, ran.output
    assert critical_path() == ["slow"]  # 0.6 s against two quick steps
    text = runner.invoke(app, ["plan", "--log-dir", str(logs), str(path)]).stdout
    assert "from earlier runs" in text


def test_plan_after_a_failed_run_estimates_from_the_run_before(write: Write, workdir: Path) -> None:
    logs = workdir / "runs"
    path = write("""
        steps:
          - {id: fetch, config: {command: "true"}}
          - {id: train, config: {command: "true"}, dependsOn: [fetch]}
          - {id: publish, config: {command: "true"}, dependsOn: [train]}
    """)
    # A complete run (7 s in all), then a newer one that failed at `fetch`.
    _report(logs, "20261127-100000-aaaa", str(path), {"fetch": 1000, "train": 6000, "publish": 200})
    _report(logs, "20261127-110000-bbbb", str(path), {"fetch": 900, "train": None, "publish": None})
    out = CliRunner().invoke(app, ["plan", "-f", "json", "--log-dir", str(logs), str(path)])
    assert out.exit_code == 0, out.output
    document = json.loads(out.stdout)
    assert document["criticalPath"] == ["fetch", "train", "publish"]
    text = CliRunner().invoke(app, ["plan", "--log-dir", str(logs), str(path)]).stdout
    assert "about 7.1s, from earlier runs" in text
