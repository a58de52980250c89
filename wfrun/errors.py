"""Errors raised before anything runs. A failed *step* is a value (see results.py), not an error."""

from typing import NamedTuple


class Diagnostic(NamedTuple):
    """One problem in a workflow file, pointing at the offending key (1-based line and column)."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class WfrunError(Exception):
    """Base class of every error wfrun raises on purpose."""


class WorkflowError(WfrunError):
    """A workflow file is unreadable or invalid; carries every diagnostic found, sorted by place."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.file, d.line, d.col, d.message))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class UnreadableFileError(WfrunError):
    """The workflow file could not be read at all (missing, a directory, not UTF-8)."""
