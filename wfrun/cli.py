"""The `wfrun` command: run, plan, validate, schema.

The only module that reads sys.argv, the terminal and the environment, and the one place that
turns errors into messages and exit codes (SPEC §4).
"""

# Without `from __future__ import annotations`: typer reads every command's annotations each
# time wfrun starts, and evaluating them from strings took ~10 ms of every command line. Names
# imported only for type checking are quoted instead.
import contextlib
import copy
import enum
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import click
import typer
from typer.core import TyperCommand

from wfrun import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from wfrun.errors import Diagnostic
    from wfrun.events import Reporter
    from wfrun.executors.base import Executor
    from wfrun.executors.cluster import DaskOptions
    from wfrun.journal import Resume
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
    suggest_commands=False,  # click suggests a near command name itself; typer would repeat it
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
        max=1_000_000,  # the largest cap a workflow file may set
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
HtmlOpt = Annotated[
    Path | None,
    typer.Option(
        "--html",
        metavar="FILE",
        parser=lambda value: _output_file("--html", value),
        help="Write a self-contained HTML page of the run: a timeline of steps, waits and pools.",
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


SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="NAME=VALUE",
        help="Override a variable declared under vars: (repeatable).",
        show_default=False,
    ),
]
TargetsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Only these steps and the steps they depend on (default: every step).",
        show_default=False,
        metavar="[STEP]...",
    ),
]
RESUME_NEWEST = ":newest"  # what `--resume` without a run id stands for
ResumeOpt = Annotated[
    str | None,
    typer.Option(
        "--resume",
        metavar="[RUN-ID]",
        help="Reuse the steps that succeeded, unchanged, in an earlier run of this file (the "
        "newest under --log-dir, or RUN-ID); run the rest. Before STEP arguments, give the "
        "run id, or put --resume last.",
        show_default=False,
    ),
]


class _Command(TyperCommand):
    """A command whose usage errors all show the usage lines. Click's parser raises some (an
    option at the end of the line, missing its value) without the command's context, and an
    error without one is printed alone: `Error: Option '-j' requires an argument.`"""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            if err.ctx is None:
                err.ctx = ctx
            raise


class _OptionalValueCommand(_Command):
    """`--resume` with or without a run id. Click can parse an option whose value may be left
    out (`_flag_needs_value`); typer has no way to ask for it, so it is set here."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for param in self.params:
            if isinstance(param, click.Option) and "--resume" in param.opts:
                param._flag_needs_value = True
                param.flag_value = RESUME_NEWEST


# ---- helpers -----------------------------------------------------------------------------------

MAX_GRACE_PERIOD = 3600.0


def _grace_period(value: str | float) -> float:
    """Seconds as a number (`5`, `0.5`, `0`), or a duration as the workflow file writes them
    (`500ms`, `1m`): users write either. (The default arrives as a float.)"""
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        import re

        from wfrun.durations import parse_duration

        if re.fullmatch(r"(?:0+(?:\.0*)?(?:ms|s|m|h))+", text):
            return 0.0  # no grace: SIGKILL at once (a file's durations must be above zero)
        try:
            seconds = parse_duration(text)
        except ValueError as err:
            raise typer.BadParameter(
                f"{value!r} is neither a number of seconds nor a duration: {err}"
            ) from None
    if not 0 <= seconds <= MAX_GRACE_PERIOD:  # NaN fails this too
        raise typer.BadParameter(f"{value} is not between 0 and {MAX_GRACE_PERIOD:g} seconds")
    return seconds


def _stderr(message: str) -> None:
    # A terminal that was closed (EIO) or a pipe nobody reads must not cost the exit code or
    # the report files still to be written.
    with contextlib.suppress(OSError):
        typer.echo(message, err=True)


def _fail(message: str, code: ExitCode) -> NoReturn:
    _stderr(f"wfrun: {message}")
    raise typer.Exit(code)


def _load(file: Path, agents: Path | None, sets: list[str] | None = None) -> "Workflow":
    """Load or exit 2 with every diagnostic; never a traceback."""
    from wfrun.errors import UnreadableFileError, WorkflowError
    from wfrun.loader import load_workflow

    overrides = _overrides(sets)
    try:
        return _with_vars(
            load_workflow(file, agents_file=str(agents) if agents else None), overrides
        )
    except UnreadableFileError as err:
        _fail(str(err), ExitCode.INVALID)
    except WorkflowError as err:
        for diagnostic in err.diagnostics:
            _stderr(str(diagnostic))
        _stderr(_problems(len(err.diagnostics), str(file)))
        raise typer.Exit(ExitCode.INVALID) from None


def _overrides(sets: list[str] | None) -> dict[str, str]:
    if not sets:
        return {}
    from wfrun.variables import VariableError, parse_assignments

    try:
        return parse_assignments(sets)
    except VariableError as err:
        _fail(str(err), ExitCode.INVALID)


def _with_vars(workflow: "Workflow", overrides: dict[str, str]) -> "Workflow":
    if not overrides:
        return workflow
    from wfrun.variables import VariableError, with_vars

    try:
        return with_vars(workflow, overrides)
    except VariableError as err:
        _fail(str(err), ExitCode.INVALID)


def _select(workflow: "Workflow", targets: list[str] | None) -> "Workflow":
    """The workflow cut down to the target steps and their dependencies, or exit 2."""
    if not targets:
        return workflow
    from wfrun.targets import UnknownTargetError, select_targets

    try:
        return select_targets(workflow, targets or ())
    except UnknownTargetError as err:
        _fail(str(err), ExitCode.INVALID)


def _resume(workflow: "Workflow", log_dir: Path, resume: str | None) -> "Resume | None":
    """What `--resume` reuses, or exit 2 saying why there is nothing to resume."""
    if resume is None:
        return None
    from wfrun.journal import ResumeError, load_resume

    try:
        return load_resume(workflow, log_dir, None if resume == RESUME_NEWEST else resume)
    except ResumeError as err:
        _fail(str(err), ExitCode.INVALID)


def _problems(count: int, file: str) -> str:
    return f"{file}: {count} problem{'s' if count != 1 else ''} found"


def _color_allowed() -> bool:
    return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _console(stream: object | None = None) -> "Console":
    from rich.console import Console

    color = _color_allowed()
    return Console(
        file=stream,  # type: ignore[arg-type]
        no_color=not color,
        highlight=False,
        color_system="auto" if color else None,
    )


# ---- validate ----------------------------------------------------------------------------------


@app.command(short_help="Check workflow files; print every problem of every file.", cls=_Command)
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="Workflow files to check.", show_default=False, metavar="FILE..."),
    ],
    format: Annotated[
        ValidateFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ValidateFormat.TEXT,
    agents: AgentsOpt = None,
    sets: SetOpt = None,
) -> None:
    """Check workflow files against the schema and the semantic rules; print every problem."""
    from wfrun import collector
    from wfrun.advice import workflow_warnings
    from wfrun.errors import UnreadableFileError, WorkflowError
    from wfrun.loader import load_workflow

    collector.resume()  # paused by wfrun.__main__ while starting; there may be many files
    overrides = _overrides(sets)
    found: dict[str, list[Diagnostic]] = {}
    warned: dict[str, list[Diagnostic]] = {}  # a valid file's warnings (wfrun.advice)
    unreadable: dict[str, str] = {}  # file -> why it could not be read
    for file in files:
        try:
            workflow = _with_vars(
                load_workflow(file, agents_file=str(agents) if agents else None), overrides
            )
            found[str(file)] = []
            warned[str(file)] = workflow_warnings(workflow, str(file))
        except UnreadableFileError as err:
            unreadable[str(file)] = str(err)
        except WorkflowError as err:
            found[str(file)] = err.diagnostics
    _print_validation(list(dict.fromkeys(map(str, files))), found, unreadable, format, warned)
    if unreadable:
        raise typer.Exit(ExitCode.INVALID)
    raise typer.Exit(ExitCode.FAILED if any(found.values()) else ExitCode.OK)


def _print_validation(
    order: list[str],
    found: "dict[str, list[Diagnostic]]",
    unreadable: dict[str, str],
    format: ValidateFormat,
    warned: "dict[str, list[Diagnostic]]",
) -> None:
    """Every file in the order given, in every format: a file that could not be read is a
    problem of that file (without a position), not something only stderr mentions. Warnings
    come with a valid file only, and change neither its validity nor the exit code."""
    if format is ValidateFormat.JSON:
        entries = [_json_entry(file, found, unreadable, warned) for file in order]
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
        for w in warned.get(file, []):
            if format is ValidateFormat.GITHUB:
                typer.echo(f"::warning file={w.file},line={w.line},col={w.col}::{_gh(w.message)}")
            else:
                typer.echo(f"{w.file}:{w.line}:{w.col}: warning: {w.message}")
        if format is ValidateFormat.TEXT:
            count = len(found[file])
            warnings = len(warned.get(file, []))
            plural = "s" if warnings != 1 else ""
            ok = f"{file}: ok" + (f" ({warnings} warning{plural})" if warnings else "")
            typer.echo(ok if not count else _problems(count, file))


def _json_entry(
    file: str,
    found: "dict[str, list[Diagnostic]]",
    unreadable: dict[str, str],
    warned: "dict[str, list[Diagnostic]]",
) -> dict[str, object]:
    if file in unreadable:
        problem = {"file": file, "line": None, "col": None, "message": unreadable[file]}
        return {
            "file": file,
            "valid": False,
            "readable": False,
            "diagnostics": [problem],
            "warnings": [],
        }
    diagnostics = [
        {"file": d.file, "line": d.line, "col": d.col, "message": d.message} for d in found[file]
    ]
    warnings = [
        {"file": w.file, "line": w.line, "col": w.col, "message": w.message}
        for w in warned.get(file, [])
    ]
    return {
        "file": file,
        "valid": not diagnostics,
        "readable": True,
        "diagnostics": diagnostics,
        "warnings": warnings,
    }


def _gh(message: str) -> str:
    """A message as a GitHub workflow command's data (its own escapes for %, CR and LF)."""
    return message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


# ---- plan --------------------------------------------------------------------------------------


@app.command(
    short_help="Print the parallel groups, the pools and the critical path.",
    cls=_OptionalValueCommand,
)
def plan(
    file: FileArg,
    targets: TargetsArg = None,
    format: Annotated[PlanFormat, typer.Option("--format", "-f", help="Output format.")] = (
        PlanFormat.TEXT
    ),
    max_concurrency: JobsOpt = None,
    parallel: ParallelOpt = None,
    agents: AgentsOpt = None,
    log_dir: LogDirOpt = DEFAULT_LOG_DIR,
    sets: SetOpt = None,
    resume: ResumeOpt = None,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Predict the run on a virtual clock (durations from the newest earlier run, "
            "else each step's estimate:, else 1s) and advise the one pool or cap change that "
            "shortens it most.",
        ),
    ] = False,
) -> None:
    """Print the parallel groups (pools, limits, dependencies), the cap and the critical path.

    The critical path counts steps, or weighs them by what they took in the newest run of the
    same file found under --log-dir. With --resume, also which steps an earlier run lets
    `run --resume` reuse, and why the others run.
    """
    from wfrun.history import previous_durations
    from wfrun.planner import make_plan

    if simulate and format not in (PlanFormat.TEXT, PlanFormat.JSON):
        _fail(f"--simulate prints text or json, not {format.value}", ExitCode.INVALID)
    if simulate and resume is not None:
        _fail(
            "--simulate predicts a whole run; it does not take --resume (plan --resume says "
            "what a resumed run would reuse)",
            ExitCode.INVALID,
        )
    workflow = _select(_load(file, agents, sets), targets)
    if simulate:
        earlier = previous_durations(file, log_dir, [s.id for s in workflow.steps])
        _simulate(workflow, earlier, parallel, max_concurrency, format)
        return
    resumed = _resume(workflow, log_dir, resume)
    planned = make_plan(
        workflow,
        parallel=parallel,
        max_concurrency=max_concurrency,
        durations=previous_durations(file, log_dir, [s.id for s in workflow.steps]),
    )
    if format is PlanFormat.JSON:
        document = planned.to_dict()
        if resumed is not None:
            document["resume"] = {
                "from": resumed.run_id,
                "reuse": list(resumed.reused),
                "run": {d.step_id: d.why for d in resumed.decisions if not d.reuse},
            }
        typer.echo(json.dumps(document, indent=2))
    elif format is PlanFormat.MERMAID:
        from wfrun.reporters.plan_view import plan_mermaid

        typer.echo(plan_mermaid(planned), nl=False)
    elif format is PlanFormat.DOT:
        from wfrun.reporters.plan_view import plan_dot

        typer.echo(plan_dot(planned), nl=False)
    else:
        from wfrun.reporters.plan_view import plan_view

        _console().print(plan_view(planned))
        if resumed is not None:
            from wfrun.output_text import printable

            for line in resumed.lines():
                typer.echo(printable(line))


def _simulate(
    workflow: "Workflow",
    earlier: dict[str, float] | None,
    parallel: bool | None,
    max_concurrency: int | None,
    format: PlanFormat,
) -> None:
    from wfrun.reporters.simulate_view import simulation_json, simulation_view
    from wfrun.simulate import advise, simulate, step_durations

    durations, sources = step_durations(workflow, earlier)
    predicted = simulate(
        workflow, durations, parallel=parallel, max_concurrency=max_concurrency, sources=sources
    )
    advice = advise(predicted)
    if format is PlanFormat.JSON:
        typer.echo(json.dumps(simulation_json(predicted, advice), indent=2))
    else:
        _console().print(simulation_view(predicted, advice))


# ---- report ------------------------------------------------------------------------------------


@app.command(
    short_help="Show a finished run again: its summary, an HTML page, a trace.", cls=_Command
)
def report(
    run: Annotated[
        str | None,
        typer.Argument(
            help="A run directory, a run id under --log-dir, or a report file (default: the "
            "newest run under --log-dir).",
            show_default=False,
            metavar="[RUN]",
        ),
    ] = None,
    log_dir: LogDirOpt = DEFAULT_LOG_DIR,
    html: HtmlOpt = None,
    trace: Annotated[
        Path | None,
        typer.Option(
            "--trace",
            metavar="FILE",
            parser=lambda value: _output_file("--trace", value),
            help="Write the run as Chrome trace-event JSON (opens in ui.perfetto.dev).",
        ),
    ] = None,
) -> None:
    """Print a finished run's summary again, from its report.json; write its HTML page or trace."""
    from wfrun.report_reader import (
        ReportError,
        find_report,
        plan_from_report,
        read_report,
        result_from_report,
        unfinished_runs,
    )

    _check_output_file("--html", html)
    _check_output_file("--trace", trace)
    try:
        found = find_report(run, log_dir)
        doc = read_report(found)
    except ReportError as err:
        _fail(str(err), ExitCode.INVALID)
    if run is None:
        for name in unfinished_runs(log_dir, found):
            _stderr(
                f"wfrun: note: run {name} is newer but has no report (it never finished: "
                "killed?); `wfrun run FILE --resume` resumes it"
            )
    from wfrun.reporters.plain import make_console, print_block
    from wfrun.reporters.summary_view import summary_view

    # Off a terminal, the width and colours of `run --ui plain`, so the summary reads the same.
    console = (
        _console()
        if sys.stdout.isatty()
        else make_console(sys.stdout, color=False, width=_plain_width())
    )
    print_block(console, summary_view(result_from_report(doc), plan_from_report(doc)))
    _write_views(doc, html, trace)


def _write_views(doc: dict[str, object], html: Path | None, trace: Path | None) -> None:
    """The HTML page and the trace of a report, written atomically; exit 1 if one cannot be."""
    from wfrun.report_files import write_atomic

    try:
        if html is not None:
            from wfrun.reporters.html_page import html_page

            write_atomic(html, html_page(doc).encode("utf-8"))
        if trace is not None:
            from wfrun.reporters.trace_events import trace_json

            write_atomic(trace, trace_json(doc).encode("utf-8"))
    except OSError as err:
        _fail(f"cannot write {err.filename or 'file'}: {err.strerror or err}", ExitCode.FAILED)


# ---- schema ------------------------------------------------------------------------------------


@app.command(short_help="Print the workflow JSON Schema.", cls=_Command)
def schema() -> None:
    """Print the workflow file's JSON Schema (for editors and other tools)."""
    from wfrun.schemas import workflow_schema_text

    typer.echo(workflow_schema_text(), nl=False)


# ---- run ---------------------------------------------------------------------------------------


@app.command(short_help="Run a workflow.", cls=_OptionalValueCommand)
def run(
    file: FileArg,
    targets: TargetsArg = None,
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
        typer.Option(
            "--report",
            metavar="FILE",
            parser=lambda value: _output_file("--report", value),
            help="Also write the JSON report here.",
        ),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            metavar="FILE",
            parser=lambda value: _output_file("--junit", value),
            help="Write a JUnit XML file (one testcase per step).",
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
            metavar="SECONDS",
            parser=_grace_period,
            show_default=False,
            help="Time between SIGTERM and SIGKILL when stopping a step: seconds (5, 0.5) or a "
            "duration (500ms, 1m); at most 3600 seconds. Default: 5s.",
        ),
    ] = 5.0,
    agents: AgentsOpt = None,
    sets: SetOpt = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            metavar="FILE",
            help="A dotenv file of variables for the steps (secrets, say); the process "
            "environment wins over it.",
            show_default=False,
        ),
    ] = None,
    resume: ResumeOpt = None,
    html: HtmlOpt = None,
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
    """Run a workflow: each step starts as soon as its dependencies are done and limits allow.

    With STEP arguments, only those steps and the steps they depend on run.
    """
    from wfrun.errors import WorkflowError
    from wfrun.history import previous_durations
    from wfrun.planner import make_plan
    from wfrun.runner import MissingSecretError, RunDirectoryError, WorkflowRunner

    _check_output_file("--report", report)
    _check_output_file("--junit", junit)
    _check_output_file("--html", html)
    env = _run_environment(env_file)
    workflow = _select(_load(file, agents, sets), targets)
    resumed = _resume(workflow, log_dir, resume)
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
        env=env,
        grace_period=grace_period,
    )
    from wfrun import collector

    collector.resume()  # paused by wfrun.__main__ while starting; a run may be long, make cycles
    try:
        result = runner.execute_plan(planned, keep_going=keep_going, resume=resumed)
    except (RunDirectoryError, MissingSecretError) as err:
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
    if html is not None:
        _write_views(result.to_dict(), html, None)
    if runner.report_error is not None:
        _fail(runner.report_error, ExitCode.FAILED)
    raise typer.Exit(_run_exit_code(result, runner.interrupted_by))


def _run_environment(env_file: Path | None) -> dict[str, str]:
    """The steps' base environment: the process's, over the --env-file's (SPEC §10.7)."""
    if env_file is None:
        return dict(os.environ)
    from wfrun.masking import EnvFileError, read_env_file

    try:
        values = read_env_file(env_file)
    except EnvFileError as err:
        _fail(str(err), ExitCode.INVALID)
    return {**values, **os.environ}


def _check_log_dir(log_dir: Path) -> None:
    """Refuse to start when the logs and the report would have nowhere to go."""
    try:
        _check_log_dir_or_raise(log_dir)
    except OSError as err:  # a name too long for the file system, say
        _fail(f"cannot use --log-dir {log_dir}: {err.strerror or err}", ExitCode.INVALID)


def _check_log_dir_or_raise(log_dir: Path) -> None:
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


def _output_file(option: str, value: str) -> Path:
    """The path of a report file as given. One ending in a separator names a directory (a Path
    would drop the slash, and a file of that name be written): refused before anything runs."""
    ends_in_separator = value.endswith(os.sep) or bool(os.altsep and value.endswith(os.altsep))
    if ends_in_separator and not _is_dir(Path(value)):  # an existing one: _check_output_file
        _fail(
            f"cannot use {option} {value}: it ends with {value[-1]!r}, so it names a directory; "
            "give a file name",
            ExitCode.INVALID,
        )
    return Path(value)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False  # a name too long, say: _check_output_file says what is wrong with it


def _check_output_file(option: str, path: Path | None) -> None:
    """Refuse, before anything runs, a report path that could not be written at the end: a
    run that succeeded must not end with exit 1 because its report had nowhere to go."""
    if path is None:
        return
    try:
        _check_output_path(option, path)
    except OSError as err:  # a name too long for the file system, say
        _fail(f"cannot use {option} {path}: {err.strerror or err}", ExitCode.INVALID)


def _check_output_path(option: str, path: Path) -> None:
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
    planned: "Plan",
) -> "DaskOptions | None":
    """The Dask cluster to use, or None to run steps here; exit 2 on a contradiction."""
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
    from wfrun.executors.cluster import DaskOptions  # not imported by a local run

    # Enough worker threads for every step the cap lets run at once: a step that waited in
    # Dask's queue would count as running in wfrun's display and report.
    return DaskOptions(
        scheduler=scheduler, workers=workers or 1, threads=threads or planned.max_concurrency
    )


def _executor(dry_run: bool, dask: "DaskOptions | None" = None) -> "Executor":
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


def _reporters(ui: UiMode, output: OutputMode) -> "list[Reporter]":
    if ui is UiMode.AUTO:
        ui = (
            UiMode.LIVE
            if sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
            else (UiMode.PLAIN)
        )
    if ui is UiMode.QUIET:
        from wfrun.reporters.plain import QuietReporter

        return [QuietReporter(sys.stdout, width=_plain_width())]
    if ui is UiMode.LIVE:
        from wfrun.reporters.live import LiveReporter

        return [LiveReporter(_console(), output_mode=output.value)]
    from wfrun.reporters.plain import PlainReporter

    return [PlainReporter(sys.stdout, output_mode=output.value, color=False, width=_plain_width())]


def _plain_width() -> int:
    """The plain and quiet modes' width: the terminal's when they write to one (a CI log has
    none), else COLUMNS if it is set, else the plain modes' 100 columns."""
    from wfrun.reporters.plain import DEFAULT_WIDTH

    if sys.stdout.isatty():
        return max(20, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)
    columns = os.environ.get("COLUMNS", "")
    return max(20, int(columns)) if columns.isdigit() else DEFAULT_WIDTH


def _write_extra_reports(result: "RunResult", report: Path | None, junit: Path | None) -> None:
    from wfrun.report_files import write_junit, write_report

    try:
        if report is not None:
            write_report(result, report)
        if junit is not None:
            write_junit(result, junit, result.workflow_name)
    except OSError as err:
        _fail(f"cannot write report: {err}", ExitCode.FAILED)


def _run_exit_code(result: "RunResult", interrupted_by: int | None) -> ExitCode:
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
        _app_for(sys.argv[1:])(prog_name="wfrun")
    except KeyboardInterrupt:
        # Ctrl-C outside a run (while loading a huge file, say): no traceback.
        sys.exit(ExitCode.INTERRUPTED)
    finally:
        _flush_or_drop_stdout()


def _app_for(args: list[str]) -> typer.Typer:
    """`app`, or, when the first argument names a command, a copy of it with that command alone.

    typer turns the parameters of every command into click's at each start (about 2.5 ms for
    the commands a run does not use), and click would dispatch to the named command anyway:
    its options, errors and help are the same.
    """
    named = {_command_name(info): info for info in app.registered_commands}
    chosen = named.get(args[0]) if args else None
    if chosen is None:
        return app
    single = copy.copy(app)
    single.registered_commands = [chosen]
    return single


def _command_name(info: typer.models.CommandInfo) -> str | None:
    if info.name or info.callback is None:
        return info.name
    return typer.main.get_command_name(info.callback.__name__)


def _flush_or_drop_stdout() -> None:
    """A reader that closed our stdout (`wfrun ... | head`) gets nothing more, and Python must
    not print a BrokenPipeError when it flushes at exit."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
