"""The Python API of SPEC §7: `WorkflowRunner().execute(workflow, ...)`."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from wfrun.errors import WfrunError
from wfrun.events import Reporter
from wfrun.executors.base import DEFAULT_GRACE_PERIOD, Executor
from wfrun.masking import Masker, missing_secrets, secret_values
from wfrun.model import STEP_ID, Workflow
from wfrun.planner import Plan, check_steps, make_plan
from wfrun.results import RunResult, RunStatus
from wfrun.scheduler import RunSettings, Scheduler

if TYPE_CHECKING:
    from wfrun.journal import Resume

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def new_run_id(now: datetime | None = None) -> str:
    """`20261126-231501-042-3f2a9c41`: sortable by time to the millisecond (runs started in the
    same second, a run and its `--resume`, come in order); 32 random bits, so neither two runs
    started at once nor someone guessing the coming ids in a shared log directory collide."""
    moment = now or datetime.now()
    stamp = f"{moment:%Y%m%d-%H%M%S}-{moment.microsecond // 1000:03d}"
    # os.urandom is what secrets reads, without the ~8 ms of its import (hmac, hashlib, random).
    return f"{stamp}-{os.urandom(4).hex()}"


class RunDirectoryError(WfrunError):
    """The run directory cannot be created as a new directory of this run's own."""


def create_run_dir(log_dir: Path, run_id: str) -> Path:
    """Create `<log_dir>/<run_id>/`, which must not exist yet: a run never writes into a
    directory it did not create (another run's, or one planted with symlinks in it)."""
    if not STEP_ID.fullmatch(run_id):
        raise RunDirectoryError(f"invalid run id {run_id!r}: use only letters, digits, '_' and '-'")
    run_dir = log_dir / run_id
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        os.mkdir(run_dir, 0o700)
    except FileExistsError:
        raise RunDirectoryError(
            f"run directory {run_dir} already exists: a run never shares its directory "
            "(give another run id, or remove it)"
        ) from None
    except OSError as err:
        raise RunDirectoryError(f"cannot create run directory {run_dir}: {err.strerror}") from None
    return run_dir


class WorkflowRunner:
    """Runs workflows. Reporters receive the run's events; the executor runs each step."""

    def __init__(
        self,
        executor: Executor | None = None,
        reporters: Sequence[Reporter] = (),
        log_dir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        handle_signals: bool = True,
    ) -> None:
        self.executor = executor
        self.reporters = list(reporters)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.env = env
        self.grace_period = grace_period
        self.handle_signals = handle_signals
        self.interrupted_by: int | None = None  # the signal that stopped the last run, if any
        self.report_error: str | None = None  # why the last run's report.json is missing
        self.reporter_errors: list[str] = []  # displays of the last run that broke, dropped

    def execute(
        self,
        workflow: Workflow,
        parallel_enabled: bool | None = None,
        max_concurrency: int | None = None,
        keep_going: bool = False,
        run_id: str | None = None,
    ) -> RunResult:
        """Run the workflow once and return its result; a failing step is part of the result.

        `parallel_enabled=None` lets the workflow's `parallel.enabled` decide. Logs and
        `report.json` go to `<log_dir>/<run-id>/` when a log directory is set; that directory
        must not exist yet (RunDirectoryError). A workflow built in code with a malformed or
        duplicate step id, or an unknown dependency, raises WorkflowError.
        """
        plan = make_plan(workflow, parallel=parallel_enabled, max_concurrency=max_concurrency)
        return self.execute_plan(plan, keep_going=keep_going, run_id=run_id)

    def execute_plan(
        self,
        plan: Plan,
        keep_going: bool = False,
        run_id: str | None = None,
        resume: Resume | None = None,
    ) -> RunResult:
        """Run a planned workflow once (see `execute`). `resume` (from `wfrun.journal.
        load_resume`) names the steps taken as succeeded from an earlier run, not run."""
        check_steps(plan.workflow)  # a Plan can be built by hand too
        started = datetime.now()
        run_id = run_id or new_run_id(started)
        env = dict(os.environ if self.env is None else self.env)
        missing = missing_secrets(plan.workflow.secrets, env)
        if missing:
            raise MissingSecretError(missing)
        run_dir = create_run_dir(self.log_dir, run_id) if self.log_dir is not None else None
        settings = RunSettings(
            run_id=run_id,
            env=env,
            masker=Masker(secret_values(plan.workflow.secrets, env)),
            run_dir=run_dir,
            keep_going=keep_going,
            grace_period=self.grace_period,
            started_at=started.astimezone().isoformat(timespec="seconds"),
            reused=None if resume is None else resume.outputs,
            resumed_from=None if resume is None else resume.run_id,
            notes=() if resume is None else resume.lines(),
        )
        scheduler = Scheduler(plan, self.executor or _default_executor(), self.reporters, settings)
        self.interrupted_by = None
        with self._signals(scheduler):
            result = scheduler.run()
        self.reporter_errors = list(scheduler.reporter_errors)
        self.report_error = None
        if run_dir is not None:
            from wfrun.report_files import REPORT_NAME, write_report

            try:
                write_report(result, run_dir / REPORT_NAME)
            except OSError as err:  # a full disk must not lose the result the caller gets
                self.report_error = f"cannot write {run_dir / REPORT_NAME}: {err.strerror}"
        return result

    @contextlib.contextmanager
    def _signals(self, scheduler: Scheduler) -> Iterator[None]:
        """Ctrl-C, SIGTERM and SIGHUP (a closed terminal) cancel the run (a second one kills at
        once) instead of raising; the report is written either way."""
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.interrupted_by = self.interrupted_by or signum
            scheduler.interrupt(RunStatus.CANCELLED)

        previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class MissingSecretError(WfrunError):
    """Secrets the workflow declares are not set: nothing was started."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        listed = ", ".join(repr(n) for n in names)
        noun = "secret" if len(names) == 1 else "secrets"
        super().__init__(
            f"{noun} {listed} not set: set {'it' if len(names) == 1 else 'them'} in the "
            "environment or in a dotenv file given with --env-file"
        )


def _default_executor() -> Executor:
    from wfrun.executors.routing import default_executor

    return default_executor()
