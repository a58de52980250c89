"""The run journal and `--resume` (SPEC §11.2).

Every run appends one JSON line per finished step to `<run-dir>/journal.jsonl`, whole lines in
the order the steps ended (O_APPEND), a batch per `write`: before a step starts whose dependency
is not written yet, else about 50 ms after the step ended. A run killed with `kill -9` leaves a
journal whose every complete line is true and that holds every step's dependencies if the step
started; the steps of its last 50 ms may be missing, and `--resume` runs them again. While the
run goes on, lines are fsync'd within a second, not before every start: on a machine where
system calls are dear a write and an fsync per step cost more than a short step, and an fsync
covers only a crash of the operating system, after which a lost line makes `--resume` run that
step again, never reuse one wrongly. At the end the last lines are written but not fsync'd, as
the report is not (`report_files`): the operating system writes them back within seconds, and
a flush made every run wait for the disk (about 4 ms of a one-step run here). The first line
names the run and its workflow file, which is how `--resume` finds the newest run of the same file.

A resumed run reuses a step that succeeded in the earlier run when its fingerprint (a hash of
its definition after expansion, its agent, the workflow's env and vars) is unchanged and every
step it depends on is reused too; everything else runs.
"""

import contextlib
import enum
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from wfrun.errors import WfrunError
from wfrun.model import AgentConfig, Step, Workflow
from wfrun.planner import topological_order
from wfrun.results import StepResult, StepStatus, ms

JOURNAL_NAME = "journal.jsonl"
JOURNAL_VERSION = 1
# Where a step stands in the file and what it is called do not change what it does.
_NOT_FINGERPRINTED = frozenset({"name", "index", "position"})


class ResumeError(WfrunError):
    """`--resume` cannot go on: no earlier run, an unknown run, another file's run, a broken
    journal. The message says which, and what to do."""


# ---- fingerprints ------------------------------------------------------------------------------


_FIELDS: dict[
    type, tuple[str, ...]
] = {}  # a model class (a NamedTuple) -> its fingerprinted fields
_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """A model value as JSON-able data with a stable order."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _FIELDS.get(kind)
    if names is None and isinstance(value, tuple) and hasattr(kind, "_fields"):  # the model's
        names = _FIELDS[kind] = tuple(f for f in kind._fields if f not in _NOT_FINGERPRINTED)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        if not value:
            return {}
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, frozenset | set):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class Fingerprints:
    """Fingerprints of one workflow's steps. The workflow's env is the same in every one: it is
    encoded once, not once a step (the journal fingerprints every step that ends)."""

    def __init__(self, workflow: Workflow) -> None:
        self._workflow = workflow
        self._env = _dumps(_plain(workflow.env))

    def of(self, step: Step) -> str:
        """A stable hash of what the step does: its definition (after matrix expansion), the
        agent it uses, and the workflow's env and vars."""
        workflow = self._workflow
        agent = None
        if isinstance(step.config, AgentConfig):
            declared = workflow.agents.get(step.config.agent)
            agent = None if declared is None else _plain(declared)
        # Only the variables the step reads: `--set` of another one does not rerun it.
        read = _variables_read(step, workflow)
        variables = _plain({name: workflow.vars[name] for name in read}) if read else {}
        # The text of json.dumps({"agent", "env", "step", "vars"}, sort_keys=True), built from
        # its parts so that the env is encoded once: the hashes equal those of earlier runs.
        text = (
            f'{{"agent": {_dumps(agent) if agent else "null"}, "env": {self._env}, '
            f'"step": {_dumps(_plain(step))}, "vars": {_dumps(variables) if read else "{}"}}}'
        )
        import hashlib  # imported at the first finished step, not at start-up

        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=True, default=str)


def fingerprint(workflow: Workflow, step: Step) -> str:
    """A stable hash of what the step does: its definition (after matrix expansion), the agent
    it uses, and the workflow's env and vars."""
    return Fingerprints(workflow).of(step)


def _variables_read(step: Step, workflow: Workflow) -> list[str]:
    if step.condition is None and not step.config_has_references():
        return []
    from wfrun.substitution import references_of

    read = references_of(step)
    if "vars" in read:  # `vars[...]` with a computed name: any of them
        return sorted(workflow.vars)
    names = [ref.split(".", 1)[1] for ref in read if ref.startswith("vars.")]
    return sorted({name.split(".")[0].split("[")[0] for name in names} & set(workflow.vars))


# ---- writing -----------------------------------------------------------------------------------


WRITE_EVERY = 0.05  # seconds: how long a finished step's line may wait for its write
SYNC_EVERY = 1.0  # seconds: how long a written line may wait for its fsync


class JournalWriter:
    """Appends a run's journal. A write that fails (a full disk) turns journaling off and is
    kept in `error`, never raised: the run itself must go on.

    `record` encodes a finished step's line. Lines are written in the order recorded, whole, in
    one `write` per batch: by `flush` once the oldest is `WRITE_EVERY` old, by `flush(force=
    True)` (the scheduler's, before it starts a step whose dependency is not written yet), and
    by `close`. A written line is fsync'd once it is `SYNC_EVERY` old while the run goes on. `due`
    says how long the scheduler may wait before calling `flush`.
    """

    def __init__(
        self,
        run_dir: Path,
        run_id: str,
        workflow: Workflow,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = run_dir / JOURNAL_NAME
        self.error: str | None = None
        self._fingerprints = Fingerprints(workflow)
        self._steps = {step.id: step for step in workflow.steps}
        self._clock = clock
        self._fd: int | None = None
        self._pending: list[str] = []  # lines recorded, not written yet
        self._pending_steps: set[str] = set()  # whose lines they are
        self._pending_since = 0.0  # when the oldest of them was recorded
        self._unsynced_since: float | None = None  # when the oldest unsynced line was written
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            self._fd = os.open(self.path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as err:
            self.error = f"cannot create {self.path}: {err.strerror}"
            return
        file = workflow.file
        self._pending.append(
            _line(
                {
                    "journal": JOURNAL_VERSION,
                    "runId": run_id,
                    "workflow": {
                        "name": workflow.name,
                        "file": None if file is None else str(file),
                        "path": None if file is None else str(file.resolve()),
                    },
                }
            )
        )
        # The header goes out with the first batch (the scheduler forces one before anything
        # starts): a resume's reused steps then share its write, so a resume killed at once
        # leaves either nothing, which the next resume passes over, or what it reused.

    def record(self, result: StepResult) -> None:
        """One finished step, written whole with the next batch."""
        if self._fd is None:
            return
        outputs = result.outputs
        if not self._pending:
            self._pending_since = self._clock()
        self._pending_steps.add(result.step_id)
        self._pending.append(
            _line(
                {
                    "step": result.step_id,
                    "status": result.status.value,
                    "reused": result.reused,
                    "fingerprint": self._fingerprints.of(self._steps[result.step_id]),
                    "outputs": dict(outputs) if outputs else {},
                    "attempts": result.attempts,
                    "startTime": ms(result.start_time),
                    "endTime": ms(result.end_time),
                }
            )
        )

    def unwritten(self, step_ids: Iterable[str]) -> bool:
        """Whether the line of one of `step_ids` is recorded but not written yet."""
        pending = self._pending_steps
        return bool(pending) and any(sid in pending for sid in step_ids)

    def flush(self, force: bool = False) -> None:
        """Write the recorded lines if the oldest is `WRITE_EVERY` old (or `force`); fsync the
        written ones if the oldest of those is `SYNC_EVERY` old."""
        if self._fd is None:
            return
        now = self._clock()
        if self._pending and (force or now - self._pending_since >= WRITE_EVERY):
            data = "".join(self._pending).encode("utf-8")
            self._pending.clear()
            self._pending_steps.clear()
            self._write(data, now)
        since = self._unsynced_since
        if since is not None and now - since >= SYNC_EVERY:
            self._sync()

    def due(self) -> float | None:
        """Seconds until `flush` has a batch to write or lines to fsync; None: nothing waits."""
        if self._fd is None:
            return None
        times = []
        if self._pending:
            times.append(self._pending_since + WRITE_EVERY)
        if self._unsynced_since is not None:
            times.append(self._unsynced_since + SYNC_EVERY)
        return max(0.0, min(times) - self._clock()) if times else None

    def close(self) -> None:
        self.flush(force=True)  # written, not fsync'd: see the module's docstring
        self._drop()

    def _sync(self) -> None:
        if self._fd is None or self._unsynced_since is None:
            return
        try:
            os.fsync(self._fd)
            self._unsynced_since = None
        except OSError as err:
            self.error = f"cannot write {self.path} any more: {err.strerror}"
            self._drop()

    def _drop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _write(self, data: bytes, now: float) -> None:
        assert self._fd is not None
        try:
            # Whole lines in one write (O_APPEND): a kill can cut only the last line short.
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if self._unsynced_since is None:
                self._unsynced_since = now
        except OSError as err:
            self.error = f"cannot write {self.path} any more: {err.strerror}"
            self._drop()


def _line(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"


# ---- reading -----------------------------------------------------------------------------------


class JournalEntry(NamedTuple):
    """A step as an earlier run's journal recorded it."""

    step_id: str
    status: StepStatus
    fingerprint: str
    outputs: Mapping[str, str]


class Journal(NamedTuple):
    """An earlier run's journal: the steps it recorded, by id."""

    run_id: str
    run_dir: Path
    workflow_path: str | None  # the workflow file, absolute
    entries: Mapping[str, JournalEntry]
    notes: tuple[str, ...] = ()  # e.g. a last line cut short by a kill, ignored


def read_journal(run_dir: Path) -> Journal:
    """Read `<run_dir>/journal.jsonl`; raise ResumeError when it is missing or broken (a last
    line cut short is not broken: a killed run leaves one, and it is ignored with a note)."""
    path = run_dir / JOURNAL_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ResumeError(
            f"run {run_dir.name} has no {JOURNAL_NAME} (it was made by an older wfrun, or it "
            "never started): it cannot be resumed"
        ) from None
    except OSError as err:
        raise ResumeError(f"cannot read {path}: {err.strerror}") from None
    lines = data.split(b"\n")
    notes: list[str] = []
    if lines[-1]:
        notes.append(
            f"{path}: the last line was cut short (the run was killed while writing it); "
            "it is ignored"
        )
    complete = lines[:-1]
    if not complete:
        raise ResumeError(f"{path}:1: the journal is empty: the run cannot be resumed")
    header = _json_line(path, 1, complete[0])
    if not isinstance(header, dict) or header.get("journal") != JOURNAL_VERSION:
        raise ResumeError(f"{path}:1: not a wfrun journal (its first line names no run)")
    workflow = header.get("workflow")
    recorded = workflow.get("path") if isinstance(workflow, dict) else None
    entries: dict[str, JournalEntry] = {}
    for number, raw in enumerate(complete[1:], start=2):
        if raw.strip():
            entry = _entry(path, number, _json_line(path, number, raw))
            entries[entry.step_id] = entry
    return Journal(
        run_id=str(header.get("runId", run_dir.name)),
        run_dir=run_dir,
        workflow_path=recorded if isinstance(recorded, str) else None,
        entries=entries,
        notes=tuple(notes),
    )


def _json_line(path: Path, number: int, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        text = raw[:60].decode("utf-8", "replace")
        raise ResumeError(
            f"{path}:{number}: not JSON ({text!r}): the journal is damaged; resume another run "
            "with --resume RUN-ID, or run without --resume"
        ) from None


def _entry(path: Path, number: int, value: Any) -> JournalEntry:
    statuses = {s.value for s in StepStatus}
    if (
        isinstance(value, dict)
        and isinstance(value.get("step"), str)
        and value.get("status") in statuses
        and isinstance(value.get("fingerprint"), str)
        and isinstance(value.get("outputs", {}), dict)
    ):
        outputs = {str(k): str(v) for k, v in value.get("outputs", {}).items()}
        return JournalEntry(
            value["step"], StepStatus(value["status"]), value["fingerprint"], outputs
        )
    raise ResumeError(f"{path}:{number}: not a journal entry of a step (step, status, fingerprint)")


# ---- finding the run to resume -----------------------------------------------------------------


def _same_file(journal_path: str | None, workflow_file: Path) -> bool:
    return journal_path is not None and Path(journal_path) == workflow_file.resolve()


def _header_path(run_dir: Path) -> str | None:
    """The workflow file a run's journal names, without reading the whole journal."""
    try:
        with open(run_dir / JOURNAL_NAME, "rb") as handle:
            header = json.loads(handle.readline())
        recorded = header["workflow"]["path"]
        return recorded if isinstance(recorded, str) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_journal(log_dir: Path, workflow_file: Path, run_id: str | None = None) -> Journal:
    """The journal of run `run_id`, or of the newest run of `workflow_file` under `log_dir`."""
    try:
        runs = sorted(
            (name for name in os.listdir(log_dir) if (log_dir / name).is_dir()), reverse=True
        )
    except OSError:
        runs = []
    if run_id is None:
        for name in runs:
            if _same_file(_header_path(log_dir / name), workflow_file):
                return read_journal(log_dir / name)
        raise ResumeError(
            f"no earlier run of {workflow_file} under {log_dir} to resume: run it once without "
            "--resume (or give --log-dir where its runs are)"
        )
    if run_id not in runs:
        from wfrun.suggest import Vocabulary, listed

        hint = Vocabulary(runs).did_you_mean(run_id)
        newest = f"; the newest are: {listed(runs[:3])}" if runs and not hint else ""
        raise ResumeError(f"no run {run_id!r} under {log_dir}{hint}{newest}")
    journal = read_journal(log_dir / run_id)
    if not _same_file(journal.workflow_path, workflow_file):
        other = journal.workflow_path or "a workflow built in code"
        raise ResumeError(
            f"run {run_id} is a run of {other}, not of {workflow_file}: resume a run of the "
            "same file"
        )
    return journal


# ---- deciding what to reuse --------------------------------------------------------------------


class ResumeDecision(NamedTuple):
    """Whether a step is reused from the earlier run, and if not, why it runs."""

    step_id: str
    reuse: bool
    why: str  # "succeeded, unchanged", "failed", "changed", "never ran", "dependency 'x' runs"


class Resume(NamedTuple):
    """What `--resume` takes from an earlier run."""

    run_id: str
    decisions: tuple[ResumeDecision, ...]  # in topological order
    outputs: Mapping[str, Mapping[str, str]]  # reused step -> its outputs, restored
    notes: tuple[str, ...] = ()

    @property
    def reused(self) -> tuple[str, ...]:
        return tuple(d.step_id for d in self.decisions if d.reuse)

    def lines(self) -> tuple[str, ...]:
        """What the summary and `plan` say: what is reused, and why the rest runs."""
        from wfrun.suggest import listed

        reused = self.reused
        rerun = [f"{d.step_id} ({d.why})" for d in self.decisions if not d.reuse]
        text = [f"resuming run {self.run_id}: reusing {_count(len(reused))}"]
        if reused:
            text[0] += f" ({listed(reused)})"
        text.append(f"running {_count(len(rerun))}" + (f": {listed(rerun)}" if rerun else ""))
        return (*self.notes, *text)


def _count(n: int) -> str:
    return f"{n} step{'s' if n != 1 else ''}"


_PAST = {
    StepStatus.FAILED: "failed",
    StepStatus.TIMED_OUT: "timed out",
    StepStatus.SKIPPED: "was skipped",
    StepStatus.CANCELLED: "was cancelled",
}


def plan_resume(workflow: Workflow, journal: Journal) -> Resume:
    """Decide for every step whether the earlier run's success can stand."""
    decisions: list[ResumeDecision] = []
    reused: set[str] = set()
    outputs: dict[str, Mapping[str, str]] = {}
    steps = {step.id: step for step in workflow.steps}
    fingerprints = Fingerprints(workflow)
    for step_id in topological_order(workflow):
        step = steps[step_id]
        entry = journal.entries.get(step_id)
        rerun_dep = next((d for d in step.depends_on if d not in reused), None)
        if entry is None:
            why = "never ran"
        elif entry.status is not StepStatus.SUCCEEDED:
            why = _PAST[entry.status]
        elif entry.fingerprint != fingerprints.of(step):
            why = "changed"
        elif rerun_dep is not None:
            why = f"dependency '{rerun_dep}' runs again"
        else:
            reused.add(step_id)
            outputs[step_id] = entry.outputs
            decisions.append(ResumeDecision(step_id, True, "succeeded, unchanged"))
            continue
        decisions.append(ResumeDecision(step_id, False, why))
    return Resume(journal.run_id, tuple(decisions), outputs, journal.notes)


def load_resume(workflow: Workflow, log_dir: Path, run_id: str | None = None) -> Resume:
    """Find the run to resume and decide what to reuse; raise ResumeError if there is none."""
    if workflow.file is None:
        raise ResumeError("a workflow built in code has no earlier runs to resume")
    return plan_resume(workflow, find_journal(log_dir, workflow.file, run_id))
