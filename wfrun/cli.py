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
    from wfrun.executors.cluster import DaskOptions
    from wfrun.model import Workflow
    from wfrun.planner import Plan
    from wfrun.results import RunResult


class ExitCode(enum.IntEnum):
    """Documented in the README; scripts and CI depend on them."""

    OK = 0
    FAILED = 1  # run failed or timed out; validate: some file invalid
    INVALID = 2  # invalid workflow, unreadable file, bad usage
    HANGUP = 129  # SIGHUP (the terminal was closed)
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


class ExecutorName(enum.StrEnum):
    LOCAL = "local"
    DASK = "dask"


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
    # click's own help: two columns that wrap whole words at any width, where rich's boxed
    # panels squeeze the descriptions into a sliver at 80 columns.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
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

FileArg = Annotated[
    Path, typer.Argument(help="The workflow file.", show_default=False, metavar="FILE")
]
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
        metavar="N",
        help="Cap on steps running at once (default: the file's defaultMaxConcurrency, or 4).",
        show_default=False,
    ),
]
DEFAULT_LOG_DIR = Path(".wfrun/runs")
LogDirOpt = Annotated[
    Path,
    typer.Option(
        "--log-dir",
        metavar="DIR",
        help="Where runs keep their logs and report.json (DIR/<run-id>/); earlier runs there "
        "weigh the critical path.",
    ),
]
AgentsOpt = Annotated[
    Path | None,
    typer.Option(
        "--agents",
        metavar="FILE",
        help="A YAML file with an `agents:` section, merged under the workflow's own agents.",
        show_default=False,
    ),
]


# ---- helpers -----------------------------------------------------------------------------------

MAX_GRACE_PERIOD = 3600.0


def _finite(value: float) -> float:
    """NaN passes a range check (every comparison with it is false): refuse it by name."""
    if value != value:
        raise typer.BadParameter("must be a number of seconds, not nan")
    return value


def _stderr(message: str) -> None:
    # A terminal that was closed (EIO) or a pipe nobody reads must not cost the exit code or
    # the report files still to be written.
    with contextlib.suppress(OSError):
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


@app.command(short_help="Check workflow files; print every problem of every file.")
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="Workflow files to check.", show_default=False, metavar="FILE..."),
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
    unreadable: dict[str, str] = {}  # file -> why it could not be read
    for file in files:
        try:
            load_workflow(file, agents_file=str(agents) if agents else None)
            found[str(file)] = []
        except UnreadableFileError as err:
            unreadable[str(file)] = str(err)
        except WorkflowError as err:
            found[str(file)] = err.diagnostics
    _print_validation(list(dict.fromkeys(map(str, files))), found, unreadable, format)
    if unreadable:
        raise typer.Exit(ExitCode.INVALID)
    raise typer.Exit(ExitCode.FAILED if any(found.values()) else ExitCode.OK)


def _print_validation(
    order: list[str],
    found: dict[str, list[Diagnostic]],
    unreadable: dict[str, str],
    format: ValidateFormat,
) -> None:
    """Every file in the order given, in every format: a file that could not be read is a
    problem of that file (without a position), not something only stderr mentions."""
    if format is ValidateFormat.JSON:
        entries = [_json_entry(file, found, unreadable) for file in order]
        document = {"valid": not unreadable and not any(found.values()), "files": entries}
        typer.echo(json.dumps(document, indent=2))
        return
    for file in order:
        if file in unreadable:
            if format is ValidateFormat.GITHUB:
                typer.echo(f"::error file={file}::{_gh(unreadable[file])}")
            else:
                _stderr(f"wfrun: {unreadable[file]}")
            continue
        for d in found[file]:
            if format is ValidateFormat.GITHUB:
                typer.echo(f"::error file={d.file},line={d.line},col={d.col}::{_gh(d.message)}")
            else:
                typer.echo(str(d))
        if format is ValidateFormat.TEXT:
            count = len(found[file])
            typer.echo(f"{file}: ok" if not count else _problems(count, file))


def _json_entry(
    file: str, found: dict[str, list[Diagnostic]], unreadable: dict[str, str]
) -> dict[str, object]:
    if file in unreadable:
        problem = {"file": file, "line": None, "col": None, "message": unreadable[file]}
        return {"file": file, "valid": False, "readable": False, "diagnostics": [problem]}
    diagnostics = [
        {"file": d.file, "line": d.line, "col": d.col, "message": d.message} for d in found[file]
    ]
    return {"file": file, "valid": not diagnostics, "readable": True, "diagnostics": diagnostics}


def _gh(message: str) -> str:
    """A message as a GitHub workflow command's data (its own escapes for %, CR and LF)."""
    return message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


# ---- plan --------------------------------------------------------------------------------------


@app.command(short_help="Print the parallel groups, the pools and the critical path.")
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
        durations=previous_durations(file, log_dir, [s.id for s in workflow.steps]),
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


@app.command(short_help="Print the workflow JSON Schema.")
def schema() -> None:
    """Print the workflow file's JSON Schema (for editors and other tools)."""
    from wfrun.schemas import workflow_schema_text

    typer.echo(workflow_schema_text(), nl=False)


# ---- run ---------------------------------------------------------------------------------------


@app.command(short_help="Run a workflow.")
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
        Path | None,
        typer.Option("--report", metavar="FILE", help="Also write the JSON report here."),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit", metavar="FILE", help="Write a JUnit XML file (one testcase per step)."
        ),
    ] = None,
    ui: Annotated[
        UiMode,
        typer.Option(
            "--ui",
            help="auto: the live view on a terminal, plain lines otherwise; quiet: only the "
            "summary.",
        ),
    ] = UiMode.AUTO,
    output: Annotated[
        OutputMode,
        typer.Option(
            "--output",
            help="Plain mode: each step's output as a block when it ends; stream: every line as "
            "it comes, prefixed with the step id (also in the live view).",
        ),
    ] = OutputMode.BLOCK,
    log_dir: LogDirOpt = DEFAULT_LOG_DIR,
    grace_period: Annotated[
        float,
        typer.Option(
            "--grace-period",
            min=0,
            max=MAX_GRACE_PERIOD,
            metavar="SECONDS",
            callback=_finite,
            help="Seconds between SIGTERM and SIGKILL when stopping a step (at most 3600).",
        ),
    ] = 5.0,
    agents: AgentsOpt = None,
    executor: Annotated[
        ExecutorName | None,
        typer.Option(
            "--executor",
            help="Where steps run: here (local), or on a Dask cluster (dask; pip install "
            "'wfrun[dask]'). Default: dask when --scheduler is given, else local.",
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="The Dask scheduler to run steps on (tcp://HOST:8786); without it, "
            "--executor dask starts a local cluster for the run.",
            show_default=False,
        ),
    ] = None,
    dask_workers: Annotated[
        int | None,
        typer.Option(
            "--dask-workers",
            min=1,
            metavar="N",
            help="Workers of the local cluster (default 1).",
            show_default=False,
        ),
    ] = None,
    dask_threads: Annotated[
        int | None,
        typer.Option(
            "--dask-threads",
            min=1,
            metavar="N",
            help="Threads per worker of the local cluster, each running one step at a time "
            "(default: the run's cap).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a workflow: each step starts as soon as its dependencies are done and limits allow."""
    from wfrun.errors import WorkflowError
    from wfrun.history import previous_durations
    from wfrun.planner import make_plan
    from wfrun.runner import RunDirectoryError, WorkflowRunner

    _check_output_file("--report", report)
    _check_output_file("--junit", junit)
    workflow = _load(file, agents)
    try:
        # Earlier durations order ready steps by the real critical path, not by step count.
        planned = make_plan(
            workflow,
            parallel=parallel,
            max_concurrency=max_concurrency,
            durations=previous_durations(file, log_dir, [s.id for s in workflow.steps]),
        )
    except WorkflowError as err:  # only a cycle in a hand-built workflow gets here
        _fail(str(err), ExitCode.INVALID)
    if not dry_run:
        _check_log_dir(log_dir)
    where = _where_steps_run(executor, scheduler, dask_workers, dask_threads, planned)
    step_executor = _executor(dry_run, where)
    reporters = _reporters(ui, output)
    runner = WorkflowRunner(
        executor=step_executor,
        reporters=reporters,
        log_dir=None if dry_run else log_dir,
        env=dict(os.environ),
        grace_period=grace_period,
    )
    try:
        result = runner.execute_plan(planned, keep_going=keep_going)
    except RunDirectoryError as err:
        from wfrun.executors.base import close_executor

        close_executor(step_executor)  # the run never began: stop its Dask cluster too
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
    problem = _unusable_dir(log_dir)
    if problem is None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            problem = err.strerror or str(err)
    if problem is None:
        problem = _cannot_write_in(log_dir)
    if problem is not None:
        _fail(f"cannot use --log-dir {log_dir}: {problem}", ExitCode.INVALID)


def _unusable_dir(path: Path) -> str | None:
    """Why `path` cannot be (or become) a directory wfrun writes in, or None."""
    for place in (path, *path.parents):
        if place.is_dir():
            return None
        if place.exists() or place.is_symlink():
            return f"{place} is a file, not a directory"
    return None


def _check_output_file(option: str, path: Path | None) -> None:
    """Refuse, before anything runs, a report path that could not be written at the end: a
    run that succeeded must not end with exit 1 because its report had nowhere to go."""
    if path is None:
        return
    if path.is_dir():  # `adir/` too: the trailing slash is gone from a Path
        _fail(f"cannot use {option} {path}: it is a directory; give a file name", ExitCode.INVALID)
    directory = path.parent
    if directory.is_dir():
        problem = _cannot_write_in(directory)
    elif directory.exists():
        problem = f"{directory} is not a directory"
    else:
        problem = f"the directory {directory} does not exist"
    if problem is not None:
        _fail(f"cannot use {option} {path}: {problem}", ExitCode.INVALID)


def _cannot_write_in(directory: Path) -> str | None:
    """Why no file can be created in `directory`, found by creating one (permission bits do
    not tell: root ignores them, and /proc or a read-only mount refuse anyway)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=directory):
            return None
    except OSError as err:
        return f"cannot write in {directory}: {err.strerror or err}"


def _where_steps_run(
    executor: ExecutorName | None,
    scheduler: str | None,
    workers: int | None,
    threads: int | None,
    planned: Plan,
) -> DaskOptions | None:
    """The Dask cluster to use, or None to run steps here; exit 2 on a contradiction."""
    from wfrun.executors.cluster import DaskOptions

    kind = executor or (ExecutorName.DASK if scheduler is not None else ExecutorName.LOCAL)
    dask_only = [
        name
        for name, value in (
            ("--scheduler", scheduler),
            ("--dask-workers", workers),
            ("--dask-threads", threads),
        )
        if value is not None
    ]
    if kind is ExecutorName.LOCAL:
        if dask_only:
            verb = "needs" if len(dask_only) == 1 else "need"
            _fail(f"{', '.join(dask_only)} {verb} --executor dask", ExitCode.INVALID)
        return None
    if scheduler is not None and (workers is not None or threads is not None):
        _fail(
            "--dask-workers and --dask-threads shape the local cluster; the cluster at "
            "--scheduler has the workers it has",
            ExitCode.INVALID,
        )
    # Enough worker threads for every step the cap lets run at once: a step that waited in
    # Dask's queue would count as running in wfrun's display and report.
    return DaskOptions(
        scheduler=scheduler, workers=workers or 1, threads=threads or planned.max_concurrency
    )


def _executor(dry_run: bool, dask: DaskOptions | None = None) -> Executor:
    if dry_run:
        from wfrun.executors.dry_run import DryRunExecutor

        return DryRunExecutor()
    if dask is not None:
        from wfrun.executors.cluster import DaskSetupError, dask_executor

        try:
            return dask_executor(dask)
        except DaskSetupError as err:
            _fail(str(err), ExitCode.INVALID)
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
    if interrupted_by == signal.SIGHUP:
        return ExitCode.HANGUP
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
