"""Everything a person sees: reporters that fold a run's events, the views, the report files.

The only package of wfrun that imports rich; the core reports facts (wfrun.events) and the CLI
picks a reporter.
"""

from __future__ import annotations

from wfrun.report_files import write_junit, write_report
from wfrun.reporters.live import LiveReporter
from wfrun.reporters.plain import PlainReporter, QuietReporter, make_console
from wfrun.reporters.state import RunState
from wfrun.reporters.views import live_view, plan_dot, plan_mermaid, plan_view, summary_view

__all__ = [
    "LiveReporter",
    "PlainReporter",
    "QuietReporter",
    "RunState",
    "live_view",
    "make_console",
    "plan_dot",
    "plan_mermaid",
    "plan_view",
    "summary_view",
    "write_junit",
    "write_report",
]
