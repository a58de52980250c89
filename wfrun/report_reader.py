"""Reading a run back: find its report.json, check it is one, and rebuild the run's result.

`wfrun report` prints the end-of-run summary again from this, and writes the HTML page and the
trace from the report itself, so a run can be looked at long after it ended, on another machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wfrun.bottleneck import Bottleneck, BottleneckKind
from wfrun.errors import WfrunError
from wfrun.journal import JOURNAL_NAME
from wfrun.model import ParallelConfig, ScriptConfig, Step, StepType, Workflow
from wfrun.planner import Plan
from wfrun.report_files import REPORT_NAME
from wfrun.results import (
    REPORT_SCHEMA_VERSION,
    ParallelStats,
    PoolStats,
    RunResult,
    RunStatus,
    StepResult,
    StepStatus,
)


class ReportError(WfrunError):
    """No report where the user pointed, or a file that is not a wfrun report."""


def find_report(run: str | None, log_dir: Path) -> Path:
    """The report of RUN: a report file, a run directory, or a run id under `log_dir`; without
    RUN, the newest run under `log_dir` that has a report."""
    try:
        return _find_report(run, log_dir)
    except OSError as err:  # a name too long for the file system, say
        raise ReportError(f"no run {run!r}: {err.strerror or err}") from None


def _find_report(run: str | None, log_dir: Path) -> Path:
    if run is None:
        return _newest(log_dir)
    given = Path(run)
    if given.is_file():
        return given
    if given.is_dir():
        return _in_dir(given)
    candidate = log_dir / run
    if os.sep not in run and candidate.is_dir():
        return _in_dir(candidate)
    raise ReportError(
        f"no run {run!r}: not a report file, a run directory, nor a run id under {log_dir}"
    )


def _in_dir(run_dir: Path) -> Path:
    report = run_dir / REPORT_NAME
    if not report.is_file():
        if (run_dir / JOURNAL_NAME).is_file():
            raise ReportError(f"{run_dir} has no {REPORT_NAME}: {_UNFINISHED}")
        raise ReportError(f"{run_dir} has no {REPORT_NAME}: is it a run directory?")
    return report


def _newest(log_dir: Path) -> Path:
    try:
        names = sorted(os.listdir(log_dir), reverse=True)  # run ids start with the time
    except OSError as err:
        raise ReportError(
            f"no runs to show: cannot read {log_dir} ({err.strerror}); give a run directory, "
            "a run id or a report file, or --log-dir"
        ) from None
    for name in names:
        if (log_dir / name / REPORT_NAME).is_file():
            return log_dir / name / REPORT_NAME
    unfinished = [name for name in names if (log_dir / name / JOURNAL_NAME).is_file()]
    if unfinished:
        raise ReportError(
            f"no finished run under {log_dir}: run {unfinished[0]} has no {REPORT_NAME}: "
            f"{_UNFINISHED}"
        )
    raise ReportError(f"no runs to show under {log_dir}: run a workflow first, or give --log-dir")


# A run directory with a journal and no report: the run was killed (or is still going).
_UNFINISHED = "the run never finished (killed?); `wfrun run FILE --resume` resumes it"


def unfinished_runs(log_dir: Path, shown: Path) -> list[str]:
    """Runs under `log_dir` newer than the one `shown` (a report in it) that have no report:
    killed before their end, which the newest-run default silently passed over."""
    if shown.parent.parent.resolve() != log_dir.resolve():
        return []
    try:
        names = os.listdir(log_dir)
    except OSError:
        return []
    newer = sorted((n for n in names if n > shown.parent.name), reverse=True)
    return [n for n in newer if (log_dir / n).is_dir() and not (log_dir / n / REPORT_NAME).exists()]


def read_report(path: Path) -> dict[str, Any]:
    """The report as JSON, checked to be a wfrun report of a version this wfrun reads."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ReportError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path} is not a wfrun report: it is not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise ReportError(f"{path} is not a wfrun report: not JSON ({err})") from None
    except RecursionError:
        raise ReportError(f"{path} is not a wfrun report: JSON nested too deep") from None
    if not isinstance(doc, dict) or "stepResults" not in doc or "schemaVersion" not in doc:
        raise ReportError(f"{path} is not a wfrun report: no schemaVersion and stepResults")
    if doc["schemaVersion"] != REPORT_SCHEMA_VERSION:
        raise ReportError(
            f"{path}: report format version {doc['schemaVersion']!r} is not one this wfrun "
            f"reads ({REPORT_SCHEMA_VERSION})"
        )
    problem = _schema_problem(doc)
    if problem is not None:
        raise ReportError(f"{path} is not a wfrun report: {problem}")
    try:
        result_from_report(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ReportError(f"{path} is not a wfrun report: bad or missing {err}") from None
    return doc


def _schema_problem(doc: Any) -> str | None:
    """The first way `doc` breaks the report's JSON Schema (a field of the wrong type, say),
    or None: what the summary and the page read, checked before either reads it."""
    import jsonschema

    from wfrun.schemas import report_schema

    error = jsonschema.exceptions.best_match(
        jsonschema.Draft7Validator(report_schema()).iter_errors(doc)
    )
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
    return f"{where.lstrip('.') or 'the document'}: {message}"


def result_from_report(doc: Mapping[str, Any]) -> RunResult:
    """The run's result as the summary shows it (waits keep their text, not their structure)."""
    steps = {sid: _step_result(sid, r) for sid, r in dict(doc["stepResults"]).items()}
    stats = doc.get("parallelStats")
    workflow = doc["workflow"]
    return RunResult(
        run_id=str(doc["runId"]),
        workflow_name=str(workflow["name"]),
        workflow_version=workflow.get("version"),
        workflow_file=workflow.get("file"),
        status=RunStatus(doc["status"]),
        parallel=bool(doc["parallel"]),
        max_concurrency=int(doc["maxConcurrency"]),
        execution_time_s=_s(doc["executionTime"]),
        step_results=steps,
        parallel_stats=None if stats is None else _stats(stats, doc["executionTime"]),
        error=doc.get("error"),
        run_dir=doc.get("runDir"),
        metadata=dict(workflow.get("metadata") or {}),
        started_at=doc.get("startedAt"),
    )


def plan_from_report(doc: Mapping[str, Any]) -> Plan:
    """A plan with the report's groups and critical path, enough for the summary; the
    dependencies themselves are not in a report."""
    results = dict(doc["stepResults"])
    steps = tuple(
        Step(
            id=sid,
            name=sid,
            type=StepType.SCRIPT,
            config=ScriptConfig(command=str(r.get("command") or "")),
            index=i,
        )
        for i, (sid, r) in enumerate(results.items())
    )
    group_of = {sid: int(r["parallelGroup"]) for sid, r in results.items()}
    groups: list[list[str]] = [[] for _ in range(1 + max(group_of.values(), default=-1))]
    for sid, group in group_of.items():
        groups[group].append(sid)
    stats = doc.get("parallelStats") or {}
    workflow = Workflow(
        name=str(doc["workflow"]["name"]),
        steps=steps,
        parallel=ParallelConfig(
            resources=MappingProxyType(
                {p: int(v["capacity"]) for p, v in (stats.get("resources") or {}).items()}
            )
        ),
    )
    return Plan(
        workflow=workflow,
        parallel=bool(doc["parallel"]),
        max_concurrency=int(doc["maxConcurrency"]),
        groups=tuple(tuple(g) for g in groups),
        group_of=MappingProxyType(group_of),
        dependents=MappingProxyType({s.id: () for s in steps}),
        order=tuple(s.id for s in steps),
        remaining=MappingProxyType({s.id: 0.0 for s in steps}),
        critical_path=tuple(stats.get("criticalPath") or ()),
        by_id=MappingProxyType({s.id: s for s in steps}),
    )


def _s(milliseconds: Any) -> float:
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int | float):
        raise TypeError("time")
    return milliseconds / 1000


def _opt_s(milliseconds: Any) -> float | None:
    return None if milliseconds is None else _s(milliseconds)


def _step_result(step_id: str, r: Mapping[str, Any]) -> StepResult:
    start, end = _opt_s(r.get("startTime")), _opt_s(r.get("endTime"))
    if start is not None and r.get("executionTime") is not None:
        # The report rounds each time to the millisecond: taking the duration as recorded
        # keeps the summary's step times those of the end-of-run summary.
        end = start + _s(r["executionTime"])
    return StepResult(
        step_id=step_id,
        status=StepStatus(r["status"]),
        parallel_group=int(r["parallelGroup"]),
        reason=r.get("reason"),
        allowed_failure=bool(r.get("allowedFailure", False)),
        ready_time=_opt_s(r.get("readyTime")),
        start_time=start,
        end_time=end,
        wait_reason=r.get("waitReason"),
        exit_code=r.get("exitCode"),
        signal=r.get("signal"),
        log_file=r.get("logFile"),
        output_tail=str(r.get("outputTail") or ""),
        output=r.get("output"),
        command=r.get("command"),
        log_error=r.get("logError"),
    )


def _speedup(d: Mapping[str, Any], wall: Any) -> float:
    # The run rounded it to the report's three decimals before showing it: the same figure.
    return float(d["speedup"])


def _stats(d: Mapping[str, Any], wall: Any) -> ParallelStats:
    pools = {
        name: PoolStats(
            capacity=int(p["capacity"]),
            peak=int(p["peak"]),
            busy_time=_s(p["busyTime"]),
            wait_time=_s(p["waitTime"]),
            utilization=float(p["utilization"]),
            usage=tuple((_s(at), int(units)) for at, units in p.get("usage") or ()),
        )
        for name, p in dict(d.get("resources") or {}).items()
    }
    found = d.get("bottleneck")
    return ParallelStats(
        total_groups=int(d["totalGroups"]),
        max_concurrent_steps=int(d["maxConcurrentSteps"]),
        resource_utilization={k: float(v) for k, v in dict(d["resourceUtilization"]).items()},
        resources=pools,
        critical_path=[str(s) for s in d["criticalPath"]],
        critical_path_time=_s(d["criticalPathTime"]),
        sequential_time=_s(d["sequentialTime"]),
        speedup=_speedup(d, wall),
        bottleneck=None
        if found is None
        else Bottleneck(
            BottleneckKind(found["kind"]),
            found.get("name"),
            _s(found["waitTime"]),
            tuple(found.get("steps") or ()),
        ),
    )
