"""Pure functions from state to rich renderables; one module per view, gathered here."""

from __future__ import annotations

from wfrun.reporters.live_view import live_view
from wfrun.reporters.plan_view import plan_dot, plan_mermaid, plan_view
from wfrun.reporters.summary_view import summary_view

__all__ = ["live_view", "plan_dot", "plan_mermaid", "plan_view", "summary_view"]
