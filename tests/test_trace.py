"""`report --trace`: Chrome trace-event JSON of a run, the format Perfetto opens."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import wfrun

from wfrun.reporters.trace_events import trace_events

Write = Callable[..., Path]

SLEEP = "{command: sleep, args: ['0.2']}"
WORKFLOW = (
    "parallel: {defaultMaxConcurrency: 3, resources: {cpu: 2}}\nsteps:\n"
    + "".join(f"  - {{id: s{i}, config: {SLEEP}, parallel: {{resource: cpu}}}}\n" for i in range(4))
    + f"  - {{id: free, config: {SLEEP}}}\n"
    + "  - {id: last, config: {command: 'true'}, dependsOn: [s3, free]}\n"
)


@pytest.fixture
def traced(write: Write, workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    logs = workdir / "logs"
    done = wfrun("run", str(write(WORKFLOW)), "--ui", "quiet", "--log-dir", str(logs))
    assert done.returncode == 0, done.stderr
    (run_dir,) = logs.iterdir()
    trace = workdir / "trace.json"
    shown = wfrun("report", str(run_dir), "--trace", str(trace))
    assert shown.returncode == 0, shown.stderr
    report = json.loads((run_dir / "report.json").read_text())
    return json.loads(trace.read_text(encoding="utf-8")), report


def test_trace_is_valid_trace_event_json(traced: tuple[dict[str, Any], dict[str, Any]]) -> None:
    trace, _ = traced
    assert isinstance(trace["traceEvents"], list)
    assert trace["displayTimeUnit"] in ("ms", "ns")
    for event in trace["traceEvents"]:
        for key in ("ph", "ts", "pid", "tid", "name"):
            assert key in event, (key, event)
        assert isinstance(event["ts"], int) and event["ts"] >= 0
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        assert event["ph"] in ("X", "C", "M")
        if event["ph"] == "X":
            assert isinstance(event["dur"], int) and event["dur"] >= 0
        if event["ph"] == "C":
            assert all(isinstance(v, int | float) for v in event["args"].values())


def test_every_step_is_a_complete_event_in_microseconds(
    traced: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    trace, report = traced
    spans = {e["name"]: e for e in trace["traceEvents"] if e["ph"] == "X"}
    assert set(spans) == set(report["stepResults"])
    for sid, r in report["stepResults"].items():
        assert spans[sid]["ts"] == r["startTime"] * 1000
        assert spans[sid]["dur"] == (r["endTime"] - r["startTime"]) * 1000
        assert spans[sid]["args"]["status"] == "succeeded"
        assert spans[sid]["args"]["command"] == r["command"]
        assert spans[sid]["args"]["exitCode"] == r["exitCode"] == 0
        assert spans[sid]["args"]["logFile"] == r["logFile"]
    waited = [e for e in spans.values() if "waited" in e["args"]]
    assert any("pool cpu 2/2" in e["args"]["waited"] for e in waited)


def test_tracks_are_concurrency_slots_that_never_overlap(
    traced: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    trace, report = traced
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    by_slot: dict[int, list[tuple[int, int]]] = {}
    for e in spans:
        by_slot.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for intervals in by_slot.values():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert end <= start
    assert len(by_slot) <= report["maxConcurrency"]
    names = {
        e["tid"]: e["args"]["name"]
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert names == {slot: f"slot {slot}" for slot in by_slot}
    processes = [e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"]
    assert processes == ["wf · steps", "pools"]


def test_pools_are_counters(traced: tuple[dict[str, Any], dict[str, Any]]) -> None:
    trace, _ = traced
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
    assert {e["name"] for e in counters} == {"pool cpu"}
    levels = [e["args"]["in use"] for e in counters]
    assert max(levels) == 2 and levels[-1] == 0
    assert all(e["args"]["in use"] + e["args"]["free"] == 2 for e in counters)
    times = [e["ts"] for e in counters]
    assert times == sorted(times)


def test_attempts_are_events_of_their_own(traced: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, report = traced
    step = report["stepResults"]["free"]
    begin, end = step["startTime"], step["endTime"]
    step["attemptResults"] = [
        {"status": "failed", "exitCode": 1, "startTime": begin, "endTime": begin + 5},
        {"status": "succeeded", "exitCode": 0, "startTime": begin + 10, "endTime": end},
    ]
    names = {e["name"]: e for e in trace_events(report)["traceEvents"] if e["ph"] == "X"}
    assert names["free (attempt 1/2)"]["args"]["status"] == "failed"
    assert names["free (attempt 2/2)"]["dur"] == (end - begin - 10) * 1000
