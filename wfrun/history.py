"""What earlier runs of a workflow took, to weigh the critical path of `plan` and `run` with.

Runs live in `<log-dir>/<run-id>/report.json`; run ids start with the time, so the newest run is
the last in sorted order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from wfrun.report_files import REPORT_NAME

RUNS_LOOKED_AT = 20  # the newest runs only: a long history must not slow every command down


def previous_durations(workflow_file: Path, log_dir: Path) -> dict[str, float] | None:
    """Seconds each step took in the newest finished run of this file, or None if there is none.

    A run counts when its report names the same file (resolved from the current directory, as
    the report records it as given) and at least one step ran.
    """
    try:
        runs = sorted(os.listdir(log_dir), reverse=True)[:RUNS_LOOKED_AT]
    except OSError:
        return None
    target = workflow_file.resolve()
    for run_id in runs:
        durations = _durations(log_dir / run_id / REPORT_NAME, target)
        if durations:
            return durations
    return None


def _durations(report_path: Path, target: Path) -> dict[str, float] | None:
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        recorded = report["workflow"]["file"]
        if recorded is None or Path(recorded).resolve() != target:
            return None
        return {
            step_id: result["executionTime"] / 1000
            for step_id, result in report["stepResults"].items()
            if isinstance(result.get("executionTime"), int)
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a report being written, or from another version: not worth failing for
