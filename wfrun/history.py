"""What earlier runs of a workflow took, to weigh the critical path of `plan` and `run` with.

Runs live in `<log-dir>/<run-id>/report.json`; run ids start with the time, so the newest run is
the last in sorted order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path

RUNS_LOOKED_AT = 20  # the newest runs only: a long history must not slow every command down


def previous_durations(
    workflow_file: Path, log_dir: Path, steps: Collection[str] | None = None
) -> dict[str, float] | None:
    """Seconds each step took in the newest run of this file in which that step ran, or None
    if no step ran in any.

    A run that failed early skips most steps; taking its few times for the whole workflow would
    leave the others to be guessed. A run counts when its report names the same file (resolved
    from the current directory, as the report records it as given). With `steps`, the search
    stops once each of them has a time.
    """
    try:
        runs = sorted(os.listdir(log_dir), reverse=True)[:RUNS_LOOKED_AT]
    except OSError:
        return None
    from wfrun.report_files import REPORT_NAME  # with the xml writer: only when there are runs

    target = workflow_file.resolve()
    wanted = None if steps is None else set(steps)
    found: dict[str, float] = {}
    for run_id in runs:
        for step_id, seconds in (_durations(log_dir / run_id / REPORT_NAME, target) or {}).items():
            found.setdefault(step_id, seconds)
        if wanted is not None and wanted <= found.keys():
            break
    return found or None


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
