"""wfrun: a parallel workflow runner for YAML pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["WorkflowError", "WorkflowRunner", "__version__", "load_workflow", "make_plan"]

if TYPE_CHECKING:
    from wfrun.errors import WorkflowError
    from wfrun.loader import load_workflow
    from wfrun.planner import make_plan
    from wfrun.runner import WorkflowRunner

# Imported lazily so that `wfrun --version` and `wfrun --help` do not pay for jsonschema, yaml
# and the thread machinery they never use.
_LAZY = {
    "WorkflowError": "wfrun.errors",
    "load_workflow": "wfrun.loader",
    "make_plan": "wfrun.planner",
    "WorkflowRunner": "wfrun.runner",
}


def __dir__() -> list[str]:
    """The public names, which `__getattr__` imports only when they are used."""
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wfrun' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
