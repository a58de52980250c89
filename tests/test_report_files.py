"""report.json (atomic, valid against schemas/report.schema.json) and the JUnit file."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from wfrun.report_files import write_junit, write_report
from wfrun.results import ParallelStats, PoolStats, RunResult, RunStatus, StepResult, StepStatus

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "report.schema.json"


def step_results() -> dict[str, StepResult]:
    ok = StepResult(
        "build",
        StepStatus.SUCCEEDED,
        0,
        ready_time=0.0,
        start_time=0.012,
        end_time=1.2124,
        wait_reason="pool cpu 2/2",
        exit_code=0,
        command="make",
        log_file="runs/r1/build.log",
        output_tail="built <ok> & \x1b[32mgreen\x1b[0m \x00\n",
    )
    failed = StepResult(
        "test",
        StepStatus.FAILED,
        1,
        reason="exited with code 1",
        ready_time=1.2124,
        start_time=1.3,
        end_time=1.7,
        exit_code=1,
        command="pytest",
        output_tail="assert 1 == 2\n",
    )
    timed_out = StepResult(
        "e2e",
        StepStatus.TIMED_OUT,
        1,
        reason="timed out after 1s",
        start_time=1.3,
        end_time=2.3,
        signal=15,
    )
    agent = StepResult(
        "review", StepStatus.SUCCEEDED, 1, start_time=1.3, end_time=2.0, output={"verdict": "ok"}
    )
    skipped = StepResult("deploy", StepStatus.SKIPPED, 2, reason="dependency 'test' failed")
    cancelled = StepResult("notify", StepStatus.CANCELLED, 2, reason="interrupted")
    return {r.step_id: r for r in (ok, failed, timed_out, agent, skipped, cancelled)}


STATS = ParallelStats(
    total_groups=3,
    max_concurrent_steps=2,
    resource_utilization={"cpu": 0.61234},
    resources={"cpu": PoolStats(2, 2, 2.4, 0.1, 0.61234)},
    critical_path=["build", "test"],
    critical_path_time=1.6,
    sequential_time=3.2,
    speedup=1.4222,
)


def run_result(**changes: Any) -> RunResult:
    base = RunResult(
        run_id="20261126-231501-3f2a",
        workflow_name="ci <nightly>",
        workflow_version="1.0.0",
        workflow_file="ci.yaml",
        status=RunStatus.FAILED,
        parallel=True,
        max_concurrency=4,
        execution_time_s=2.3,
        step_results=step_results(),
        parallel_stats=STATS,
        run_dir="runs/r1",
        metadata={"author": "ci-team", "tags": ["a"]},
        started_at="2026-11-26T23:15:01+00:00",
    )
    return replace(base, **changes)


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator: Any, document: Any) -> list[str]:
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]


def test_schema_has_its_id_and_describes_every_property() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$id"] == "https://wfrun.dev/schemas/report.schema.json"

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.get("properties", {}).values():
                assert "description" in value
            for key, value in node.items():
                if key not in ("if", "then", "else"):  # conditions, not properties
                    walk(value)

    walk(schema)


@pytest.mark.parametrize(
    "result",
    [
        run_result(),
        run_result(status=RunStatus.SUCCEEDED, step_results={"build": step_results()["build"]}),
        run_result(parallel=False, max_concurrency=1, parallel_stats=None),
        run_result(step_results={}, parallel_stats=STATS._replace(resources={}, critical_path=[])),
        run_result(workflow_version=None, workflow_file=None, run_dir=None, started_at=None),
    ],
    ids=["failed", "succeeded", "sequential", "empty", "nulls"],
)
def test_reports_validate(validator: Any, result: RunResult) -> None:
    assert errors(validator, result.to_dict()) == []


def test_schema_rejects_what_to_dict_never_produces(validator: Any) -> None:
    report = run_result().to_dict()
    bad = json.loads(json.dumps(report))
    bad["stepResults"]["build"]["exit_code"] = 0
    assert errors(validator, bad)
    bad = json.loads(json.dumps(report))
    del bad["stepResults"]["build"]["endTime"]  # the three times come together
    assert errors(validator, bad)
    bad = json.loads(json.dumps(report))
    bad["stepResults"]["deploy"]["success"] = True
    assert errors(validator, bad)
    bad = json.loads(json.dumps(report))
    bad["parallelStats"]["resources"]["cpu"]["busyTime"] = 1.5
    assert errors(validator, bad)


def test_write_report_is_indented_json_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.json"
    write_report(run_result(), path)
    write_report(run_result(status=RunStatus.SUCCEEDED), path)  # replaces
    text = path.read_text()
    assert text.startswith('{\n  "schemaVersion": 1,')
    assert json.loads(text)["status"] == "succeeded"
    assert json.loads(text)["stepResults"]["review"]["output"] == {"verdict": "ok"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")

    def broken(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_report(run_result(), path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_report_file_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_report(run_result(), tmp_path / "report.json")
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644


def test_junit_has_a_testcase_per_step_with_the_right_counts(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(run_result(), path, "ci <nightly>")
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.attrib["tests"] == "6"
    assert suite.attrib["failures"] == "2"
    assert suite.attrib["skipped"] == "2"
    cases = {c.attrib["name"]: c for c in suite.iter("testcase")}
    assert cases["build"].attrib == {"classname": "ci <nightly>", "name": "build", "time": "1.200"}
    failure = cases["test"].find("failure")
    assert failure is not None and failure.attrib["message"] == "exited with code 1"
    assert failure.text == "assert 1 == 2\n"
    assert cases["e2e"].find("failure") is not None
    skipped = cases["deploy"].find("skipped")
    assert skipped is not None and skipped.attrib["message"] == "dependency 'test' failed"
    assert cases["notify"].find("skipped") is not None
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]


def test_junit_escapes_markup_and_drops_characters_xml_cannot_hold(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(run_result(), path, "ci <nightly>")
    case = next(c for c in ET.parse(path).getroot().iter("testcase") if c.attrib["name"] == "build")
    out = case.find("system-out")
    assert out is not None and out.text == "built <ok> & green \n"


def test_an_allowed_failure_does_not_fail_the_junit_file(tmp_path: Path) -> None:
    results = step_results()
    results["test"] = replace(results["test"], allowed_failure=True)
    path = tmp_path / "junit.xml"
    write_junit(run_result(step_results=results), path, "ci")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    case = next(c for c in suite.iter("testcase") if c.attrib["name"] == "test")
    assert case.find("failure") is None
    skipped = case.find("skipped")
    assert skipped is not None
    assert skipped.attrib["message"] == "allowed failure (continueOnError): exited with code 1"
    assert suite.attrib["failures"] == "1" and suite.attrib["skipped"] == "3"
