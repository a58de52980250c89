"""What every benchmark script shares: alternated timing, medians, the results table and files.

The machine these run on is small and noisy (2 cores, ±20% run to run), so nothing here trusts a
single time: cases are run round after round, each round in the opposite order to the previous
one (A B C, C B A, ...) so that drift in load hits every case alike, and figures are medians and
ratios of medians. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
MIB = 1024 * 1024

Case = Callable[[], float]  # runs once, returns the seconds (or other unit) it measured


def _child_env() -> dict[str, str]:
    """The environment of every measured command.

    Users run wfrun with compiled bytecode (pip writes it at install, Python on first import).
    Under PYTHONDONTWRITEBYTECODE an editable checkout never gets any, so each start would
    recompile wfrun's sources; the children get a bytecode cache of their own instead, outside
    the repository, warmed by each benchmark's first pass.
    """
    env = dict(os.environ)
    if env.pop("PYTHONDONTWRITEBYTECODE", None) and "PYTHONPYCACHEPREFIX" not in env:
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "wfrun-bench-pycache")
    return env


CHILD_ENV = _child_env()


# ---- command line ------------------------------------------------------------------------------


def parser(description: str, rounds: int = 7) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=None, help=f"alternated rounds (default {rounds})")
    p.add_argument("--quick", action="store_true", help="3 rounds and fewer cases: a smoke run")
    p.set_defaults(default_rounds=rounds)
    return p


def rounds_of(args: argparse.Namespace) -> int:
    if args.rounds is not None:
        return max(1, int(args.rounds))
    return 3 if args.quick else int(args.default_rounds)


# ---- the programs under test -------------------------------------------------------------------


def wfrun_script() -> list[str]:
    """The installed console script: what users run, so the main figure of every benchmark."""
    beside = Path(sys.executable).with_name("wfrun")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("wfrun")
    return [found] if found else wfrun_module()


def wfrun_module() -> list[str]:
    return [sys.executable, "-m", "wfrun"]


def floor_argv(*args: object) -> list[str]:
    return [sys.executable, str(BENCH_DIR / "floor.py"), *map(str, args)]


# ---- timing ------------------------------------------------------------------------------------

FAILURES: list[str] = []  # reported under the table; a benchmark reports, it does not stop


def run_timed(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
) -> float:
    """Wall seconds from start to exit of one command, output discarded."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=CHILD_ENV if env is None else env,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
    )
    code = proc.wait()
    elapsed = time.perf_counter() - started
    if code != 0:
        FAILURES.append(f"exit {code}: {' '.join(map(str, argv))}")
    return elapsed


def command(
    argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Case:
    return lambda: run_timed(argv, cwd=cwd, env=env)


def alternate(
    cases: Mapping[str, Case], rounds: int, warmup: bool = True, label: str = ""
) -> dict[str, list[float]]:
    """Run every case once per round, reversing the order on odd rounds; return all samples.

    One warm-up pass first (not recorded) fills the page cache and Python's bytecode caches, which
    a user's second run would also find warm.
    """
    names = list(cases)
    if warmup:
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            samples[name].append(cases[name]())
        progress(f"{label} round {r + 1}/{rounds}")
    progress("")
    return samples


def progress(text: str) -> None:
    """A transient status line on stderr, only when a person is watching."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[K{text}")
        sys.stderr.flush()


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def paired(a: Sequence[float], b: Sequence[float], fn: Callable[[float, float], float]) -> float:
    """Median of a per-round figure: pairs samples of one round, so slow rounds cancel out."""
    return median([fn(x, y) for x, y in zip(a, b, strict=True)])


# ---- reporting ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    """One reported figure, with its target and whether it is met (None: no target)."""

    measure: str
    value: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.met]


@dataclass(slots=True)
class Report:
    name: str  # file stem under bench/results/
    title: str
    rounds: int
    rows: list[Row] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)  # sample group -> unit, default seconds
    notes: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def keep(self, samples: Mapping[str, list[float]], unit: str = "s") -> None:
        for name, values in samples.items():
            self.samples[name] = list(values)
            self.units[name] = unit


def machine() -> dict[str, object]:
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_1min_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "bytecode_cache": CHILD_ENV.get("PYTHONPYCACHEPREFIX", "default (__pycache__)"),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, padded so that it also reads well in a terminal."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def fmt_s(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if abs(seconds) < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if abs(seconds) < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.3f} s"


def fmt_sample(value: float, unit: str) -> str:
    if unit == "s":
        return fmt_s(value)
    return f"{value:.1f} {unit}"


def render(report: Report, info: Mapping[str, object]) -> list[str]:
    out = [f"## {report.title}", ""]
    out.append(
        f"{info['date']} · {info['cpus']} CPUs · Python {info['python']} · "
        f"{report.rounds} alternated rounds · load at start {info['load_1min_at_start']}"
    )
    out.append("")
    rows = [[r.measure, r.value, r.target, r.verdict, r.note] for r in report.rows]
    out += table(["measure", "figure (medians)", "target", "met?", "note"], rows)
    if report.samples:
        out += ["", "Samples (median, min-max):", ""]
        sample_rows = []
        for name, values in report.samples.items():
            unit = report.units.get(name, "s")
            spread = f"{fmt_sample(min(values), unit)} - {fmt_sample(max(values), unit)}"
            sample_rows.append([name, fmt_sample(median(values), unit), spread, str(len(values))])
        out += table(["case", "median", "min - max", "n"], sample_rows)
    notes = report.notes + [f"command failed: {f}" for f in sorted(set(FAILURES))]
    if notes:
        out += ["", *(f"- {n}" for n in notes)]
    return out


def publish(report: Report) -> None:
    """Print the tables and write bench/results/<name>.json and .md (gitignored)."""
    info = machine()
    lines = render(report, info)
    print("\n".join(lines))
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{report.name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    document = {
        "machine": info,
        "title": report.title,
        "rounds": report.rounds,
        "rows": [asdict(r) | {"verdict": r.verdict} for r in report.rows],
        "samples": report.samples,
        "units": report.units,
        "notes": report.notes,
        "failures": sorted(set(FAILURES)),
    }
    path = RESULTS_DIR / f"{report.name}.json"
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"\nwritten: {path.relative_to(BENCH_DIR.parent)} and .md")


def warn_if_busy() -> None:
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load > 0.5 * cpus:
        sys.stderr.write(
            f"warning: 1-min load average {load:.2f} on {cpus} CPUs (other jobs, or the previous "
            "benchmark); figures may be noisier\n"
        )


def ratio_row(
    measure: str, ratio: float, target: float | None, detail: str = "", note: str = ""
) -> Row:
    """A 'x.xx×' figure checked against an upper bound."""
    met = None if target is None or math.isnan(ratio) else ratio <= target
    value = f"{ratio:.2f}×" + (f" ({detail})" if detail else "")
    return Row(measure, value, f"≤ {target:g}×" if target is not None else "", met, note)
