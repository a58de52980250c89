"""The `wfrun` command: run, plan, validate, schema.

The only module that reads sys.argv, the terminal and the environment, and the one place that
turns errors into messages and exit codes (SPEC §4).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from wfrun import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from wfrun.errors import Diagnostic
    from wfrun.events import Reporter
    from wfrun.executors.base import Executor
    from wfrun.model import Workflow
    from wfrun.results import RunResult


class ExitCode(enum.IntEnum):
    """Documented in the README; scripts and CI depend on them."""

    OK = 0
    FAILED = 1  # run failed or timed out; validate: some file invalid
    INVALID = 2  # invalid workflow, unreadable file, bad usage
    INTERRUPTED = 130  # SIGINT (Ctrl-C)
    TERMINATED = 143  # SIGTERM


class UiMode(enum.StrEnum):
    AUTO = "auto"
    LIVE = "live"
    PLAIN = "plain"
    QUIET = "quiet"


class OutputMode(enum.StrEnum):
    BLOCK = "block"
    STREAM = "stream"


class ValidateFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    GITHUB = "github"


class PlanFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    MERMAID = "mermaid"
    DOT = "dot"


app = typer.Typer(
    name="wfrun",
    help="Run YAML workflows in parallel: dependencies, caps and resource pools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wfrun {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """wfrun: a parallel workflow runner."""


# ---- options shared by several commands --------------------------------------------------------

FileArg = Annotated[Path, typer.Argument(help="The workflow file.", show_default=False)]
ParallelOpt = Annotated[
    bool | None,
    typer.Option(
        "--parallel/--no-parallel",
        help="Force parallel or sequential mode (default: the file's parallel.enabled).",
        show_default=False,
    ),
]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "-j",
        "--max-concurrency",
        min=1,
        help="Cap on steps running at once (default: the file's defaultMaxConcurrency, or 4).",
        show_default=False,
    ),
]
DEFAULT_LOG_DIR = Path(".wfrun/runs")
LogDirOpt = Annotated[
    Path,
    typer.Option(
        "--log-dir",
        help="Where runs keep their logs and report.json (DIR/<run-id>/); earlier runs there "
        "weigh the critical path.",
    ),
]
AgentsOpt = Annotated[
    Path | None,
    typer.Option(
        "--agents",
        help="A YAML file with an `agents:` section, merged under the workflow's own agents.",
        show_default=False,
    ),
]


# ---- helpers -----------------------------------------------------------------------------------


def _stderr(message: str) -> None:
    typer.echo(message, err=True)


def _fail(message: str, code: ExitCode) -> NoReturn:
    _stderr(f"wfrun: {message}")
    raise typer.Exit(code)


def _load(file: Path, agents: Path | None) -> Workflow:
    """Load or exit 2 with every diagnostic; never a traceback."""
    from wfrun.errors import UnreadableFileError, WorkflowError
    from wfrun.loader import load_workflow

    try:
        return load_workflow(file, agents_file=str(agents) if agents else None)
    except UnreadableFileError as err:
        _fail(str(err), ExitCode.INVALID)
    except WorkflowError as err:
        for diagnostic in err.diagnostics:
            _stderr(str(diagnostic))
        _stderr(_problems(len(err.diagnostics), str(file)))
        raise typer.Exit(ExitCode.INVALID) from None


def _problems(count: int, file: str) -> str:
    return f"{file}: {count} problem{'s' if count != 1 else ''} found"


def _color_allowed() -> bool:
    return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _console(stream: object | None = None) -> Console:
    from rich.console import Console

    color = _color_allowed()
    return Console(
        file=stream,  # type: ignore[arg-type]
        no_color=not color,
        highlight=False,
        color_system="auto" if color else None,
    )


# ---- validate ----------------------------------------------------------------------------------


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Workflow files to check.", show_default=False)
    ],
    format: Annotated[
        ValidateFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ValidateFormat.TEXT,
    agents: AgentsOpt = None,
) -> None:
    """Check workflow files against the schema and the semantic rules; print every problem."""
    from wfrun.errors import UnreadableFileError, WorkflowError
    from wfrun.loader import load_workflow

    found: dict[str, list[Diagnostic]] = {}
    unreadable: list[str] = []
    for file in files:
        try:
            load_workflow(file, agents_file=str(agents) if agents else None)
            found[str(file)] = []
        except UnreadableFileError as err:
            unreadable.append(str(err))
        except WorkflowError as err:
            found[str(file)] = err.diagnostics
    _print_validation(found, format)
    for message in unreadable:
        _stderr(f"wfrun: {message}")
    if unreadable:
        raise typer.Exit(ExitCode.INVALID)
    raise typer.Exit(ExitCode.FAILED if any(found.values()) else ExitCode.OK)


def _print_validation(found: dict[str, list[Diagnostic]], format: ValidateFormat) -> None:
    if format is ValidateFormat.JSON:
        document = {
            "valid": not any(found.values()),
            "files": [
                {
                    "file": file,
                    "valid": not diagnostics,
                    "diagnostics": [
                        {"file": d.file, "line": d.line, "col": d.col, "message": d.message}
                        for d in diagnostics
                    ],
                }
                for file, diagnostics in found.items()
            ],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    for file, diagnostics in found.items():
        for d in diagnostics:
            if format is ValidateFormat.GITHUB:
                message = d.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
                typer.echo(f"::error file={d.file},line={d.line},col={d.col}::{message}")
            else:
                typer.echo(str(d))
        if format is ValidateFormat.TEXT:
            typer.echo(f"{file}: ok" if not diagnostics else _problems(len(diagnostics), file))


# ---- plan --------------------------------------------------------------------------------------


@app.command()
def plan(
    file: FileArg,
    format: Annotated[PlanFormat, typer.Option("--format", "-f", help="Output format.")] = (
        PlanFormat.TEXT
    ),
    max_concurrency: JobsOpt = None,
    parallel: ParallelOpt = None,
    agents: AgentsOpt = None,
    log_dir: LogDirOpt = DEFAULT_LOG_DIR,
) -> None:
    """Print the parallel groups (pools, limits, dependencies), the cap and the critical path.

    The critical path counts steps, or weighs them by what they took in the newest run of the
    same file found under --log-dir.
    """
    from wfrun.history import previous_durations
    from wfrun.planner import make_plan

    workflow = _load(file, agents)
    planned = make_plan(
        workflow,
        parallel=parallel,
        max_concurrency=max_concurrency,
        durations=previous_durations(file, log_dir),
    )
    if format is PlanFormat.JSON:
        typer.echo(json.dumps(planned.to_dict(), indent=2))
    elif format is PlanFormat.MERMAID:
        from wfrun.reporters.plan_view import plan_mermaid

        typer.echo(plan_mermaid(planned), nl=False)
    elif format is PlanFormat.DOT:
        from wfrun.reporters.plan_view import plan_dot

        typer.echo(plan_dot(planned), nl=False)
    else:
        from wfrun.reporters.plan_view import plan_view

        _console().print(plan_view(planned))


# ---- schema ------------------------------------------------------------------------------------


@app.command()
def schema() -> None:
    """Print the workflow file's JSON Schema (for editors and other tools)."""
    from wfrun.schemas import workflow_schema_text

    typer.echo(workflow_schema_text(), nl=False)


# ---- run ---------------------------------------------------------------------------------------


@app.command()
def run(
    file: FileArg,
    parallel: ParallelOpt = None,
    max_concurrency: JobsOpt = None,
    keep_going: Annotated[
        bool,
        typer.Option(
            "--keep-going",
            "-k",
            help="After a failure, still start steps that do not depend on it.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", "-n", help="Walk the schedule without running anything."),
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the JSON report here.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write a JUnit XML file (one testcase per step).")
    ] = None,
    ui: Annotated[
        UiMode,
        typer.Option("--ui", help="auto: live view on a terminal, plain lines otherwise."),
    ] = UiMode.AUTO,
    output: Annotated[
        OutputMode,
        typer.Option(
            "--output",
            help="Plain mode: print each step's output as a block when it ends, or stream it live.",
        ),
    ] = OutputMode.BLOCK,
    log_dir: LogDirOpt = DEFAULT_LOG_DIR,
    grace_period: Annotated[
        float,
        typer.Option(
            "--grace-period",
            min=0,
            help="Seconds between SIGTERM and SIGKILL when stopping a step.",
        ),
    ] = 5.0,
    agents: AgentsOpt = None,
) -> None:
    """Run a workflow: each step starts as soon as its dependencies are done and limits allow."""
    from wfrun.errors import WorkflowError
    from wfrun.history import previous_durations
    from wfrun.planner import make_plan
    from wfrun.runner import RunDirectoryError, WorkflowRunner

    workflow = _load(file, agents)
    try:
        # Earlier durations order ready steps by the real critical path, not by step count.
        planned = make_plan(
            workflow,
            parallel=parallel,
            max_concurrency=max_concurrency,
            durations=previous_durations(file, log_dir),
        )
    except WorkflowError as err:  # only a cycle in a hand-built workflow gets here
        _fail(str(err), ExitCode.INVALID)
    if not dry_run:
        _check_log_dir(log_dir)
    reporters = _reporters(ui, output)
    runner = WorkflowRunner(
        executor=_executor(dry_run),
        reporters=reporters,
        log_dir=None if dry_run else log_dir,
        env=dict(os.environ),
        grace_period=grace_period,
    )
    try:
        result = runner.execute_plan(planned, keep_going=keep_going)
    except RunDirectoryError as err:
        _fail(str(err), ExitCode.INVALID)
    finally:
        for reporter in reporters:
            close = getattr(reporter, "close", None)
            if close is not None:
                # A closed stdout (rich exits on it) must not cost the report or the exit code.
                with contextlib.suppress(OSError, SystemExit):
                    close()
    for problem in runner.reporter_errors:
        _stderr(f"wfrun: warning: the display broke and was turned off: {problem}")
    _write_extra_reports(result, report, junit)
    if runner.report_error is not None:
        _fail(runner.report_error, ExitCode.FAILED)
    raise typer.Exit(_run_exit_code(result, runner.interrupted_by))


def _check_log_dir(log_dir: Path) -> None:
    """Refuse to start when the logs and the report would have nowhere to go."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _fail(f"cannot use --log-dir {log_dir}: {err.strerror}", ExitCode.INVALID)
    if not os.access(log_dir, os.W_OK | os.X_OK):
        _fail(f"cannot use --log-dir {log_dir}: not writable", ExitCode.INVALID)


def _executor(dry_run: bool) -> Executor:
    if dry_run:
        from wfrun.executors.dry_run import DryRunExecutor

        return DryRunExecutor()
    from wfrun.executors.routing import default_executor

    return default_executor()


def _reporters(ui: UiMode, output: OutputMode) -> list[Reporter]:
    if ui is UiMode.AUTO:
        ui = (
            UiMode.LIVE
            if sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
            else (UiMode.PLAIN)
        )
    if ui is UiMode.QUIET:
        from wfrun.reporters.plain import QuietReporter

        return [QuietReporter(sys.stdout)]
    if ui is UiMode.LIVE:
        from wfrun.reporters.live import LiveReporter

        return [LiveReporter(_console(), output_mode=output.value)]
    from wfrun.reporters.plain import PlainReporter

    return [PlainReporter(sys.stdout, output_mode=output.value, color=False)]


def _write_extra_reports(result: RunResult, report: Path | None, junit: Path | None) -> None:
    from wfrun.report_files import write_junit, write_report

    try:
        if report is not None:
            write_report(result, report)
        if junit is not None:
            write_junit(result, junit, result.workflow_name)
    except OSError as err:
        _fail(f"cannot write report: {err}", ExitCode.FAILED)


def _run_exit_code(result: RunResult, interrupted_by: int | None) -> ExitCode:
    if interrupted_by == signal.SIGTERM:
        return ExitCode.TERMINATED
    if interrupted_by is not None:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if result.success else ExitCode.FAILED


def main() -> None:
    """Console entry point (reached through wfrun.__main__)."""
    try:
        app(prog_name="wfrun")
    except KeyboardInterrupt:
        # Ctrl-C outside a run (while loading a huge file, say): no traceback.
        sys.exit(ExitCode.INTERRUPTED)
    finally:
        _flush_or_drop_stdout()


def _flush_or_drop_stdout() -> None:
    """A reader that closed our stdout (`wfrun ... | head`) gets nothing more, and Python must
    not print a BrokenPipeError when it flushes at exit."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
