"""Everything a person sees: reporters that fold a run's events, the views, the report files.

The only package of wfrun that imports rich; the core reports facts (wfrun.events) and the CLI
picks a reporter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfrun.report_files import write_junit, write_report
    from wfrun.reporters.live import LiveReporter
    from wfrun.reporters.plain import PlainReporter, QuietReporter, make_console
    from wfrun.reporters.state import RunState
    from wfrun.reporters.views import live_view, plan_dot, plan_mermaid, plan_view, summary_view

# Imported on first use: `wfrun run --ui quiet` must not pay for the live display (rich.live and
# its threads) only because it imports the quiet reporter from this package.
_LAZY = {
    "LiveReporter": "wfrun.reporters.live",
    "PlainReporter": "wfrun.reporters.plain",
    "QuietReporter": "wfrun.reporters.plain",
    "make_console": "wfrun.reporters.plain",
    "RunState": "wfrun.reporters.state",
    "live_view": "wfrun.reporters.views",
    "plan_dot": "wfrun.reporters.views",
    "plan_mermaid": "wfrun.reporters.views",
    "plan_view": "wfrun.reporters.views",
    "summary_view": "wfrun.reporters.views",
    "write_junit": "wfrun.report_files",
    "write_report": "wfrun.report_files",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wfrun.reporters' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
