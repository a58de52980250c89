"""Issue 15's targets, side by side in one call: the supervising loop against the floor and ninja.

    python bench/bench_reaper.py [--rounds 5] [--quick] [--baseline /path/to/other/checkout]

Every case is a separate process, timed from start to exit, with its CPU time (user + system of
the process and every child it reaped, from wait4) taken from the same run. Cases are alternated
round by round (A B C, C B A, ...) after one unrecorded warm-up pass; figures are medians.

- per step: slope (t(1000) - t(200)) / 800 of `wfrun run flat N -j 8 --ui quiet` (logs and the
  report written, as always) against the slope of `floor.py popen N 8`; the same slope of CPU
  time. Targets: wall ≤ 1.0x the floor's, CPU ≤ the floor's.
- total wall: flat 1000, chain 300, random 1000 against `ninja -j 8` (start-up included).
  Target ≤ 1.3x ninja.
- stagger 5 0.2 0.01: wfrun minus its own --dry-run against the critical path 1.05 s (≤ 3%).
- pool 200 x sleep 0.01, capacity 2: against `floor.py popen 200 2 sleep 0.01` (≤ 5% over).
- random 10000 / random 1000, end to end (≤ 11x).
- with --baseline DIR: the same wfrun cases run from another checkout (PYTHONPATH=DIR), e.g. the
  thread-per-step engine before the loop, alternated with the rest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import benchlib as bl
from workloads import generate

JOBS = 8
SHAPES: dict[str, tuple[str, tuple[float, ...]]] = {
    "flat200": ("flat", (200,)),
    "flat1000": ("flat", (1000,)),
    "chain300": ("chain", (300,)),
    "random1000": ("random", (1000,)),
    "random10000": ("random", (10000,)),
    "pool200": ("pool", (200,)),
    "stagger": ("stagger", (5, 0.2, 0.01)),
}


def run_measured(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the process and its reaped children) of one command."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped above; Popen must not wait
    if proc.returncode != 0:
        bl.FAILURES.append(f"exit {proc.returncode}: {' '.join(map(str, argv))}")
    return elapsed, usage.ru_utime + usage.ru_stime


class Cases:
    """The workloads, written once, and timed cases on them that also keep their CPU time."""

    def __init__(self, root: Path, baseline: Path | None) -> None:
        self.root = root
        self.files = {}
        self.meta = {}
        for key, (shape, args) in SHAPES.items():
            self.files[key], self.meta[key] = generate(shape, args, root / key, jobs=JOBS)
        self.cpu: dict[str, list[float]] = {}
        self.baseline = baseline
        self.ninja = shutil.which("ninja")
        self._runs = 0

    def measured(self, name: str, argv: Callable[[], list[str]], env: Mapping[str, str]) -> bl.Case:
        def case() -> float:
            # Run from the workloads' folder: `python -m` puts the current directory first on
            # sys.path, so from a checkout's root every case would import that checkout's
            # wfrun, whatever PYTHONPATH says (the baseline ran this tree's code before).
            wall, cpu = run_measured(argv(), env, cwd=self.root)
            self.cpu.setdefault(name, []).append(cpu)
            return wall

        return case

    def wfrun(self, key: str, *extra: str, base: bool = False) -> bl.Case:
        env = dict(bl.CHILD_ENV)
        if base and self.baseline is not None:
            env["PYTHONPATH"] = str(self.baseline)
            # Its own bytecode cache: the two checkouts have modules of the same names.
            env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "wfrun-bench-baseline")

        def argv() -> list[str]:
            self._runs += 1
            logs = self.root / "logs" / str(self._runs)
            shutil.rmtree(logs.parent, ignore_errors=True)  # the previous run's, off the clock
            return [
                *bl.wfrun_module(),
                "run",
                str(self.files[key]["yaml"]),
                "-j",
                str(JOBS),
                "--ui",
                "quiet",
                "--log-dir",
                str(logs),
                *extra,
            ]

        label = ("baseline " if base else "wfrun ") + key + (" " + " ".join(extra) if extra else "")
        return self.measured(label, argv, env)

    def floor(self, *args: object) -> bl.Case:
        argv = bl.floor_argv(*args)
        return self.measured("floor " + " ".join(map(str, args)), lambda: argv, bl.CHILD_ENV)

    def ninja_case(self, key: str) -> bl.Case:
        assert self.ninja is not None
        folder = self.files[key]["make"].parent

        def argv() -> list[str]:
            (folder / ".ninja_log").unlink(missing_ok=True)  # or it skips everything
            return [str(self.ninja), "-C", str(folder), f"-j{JOBS}"]

        return self.measured(f"ninja {key}", argv, bl.CHILD_ENV)


def slope(small: list[float], large: list[float]) -> float:
    return bl.paired(small, large, lambda a, b: (b - a) / 800)


def per_step(c: Cases, report: bl.Report) -> None:
    cases = {
        "wfrun flat200": c.wfrun("flat200"),
        "wfrun flat1000": c.wfrun("flat1000"),
        "floor popen 200 8": c.floor("popen", 200, JOBS),
        "floor popen 1000 8": c.floor("popen", 1000, JOBS),
    }
    if c.baseline is not None:
        cases["baseline flat200"] = c.wfrun("flat200", base=True)
        cases["baseline flat1000"] = c.wfrun("flat1000", base=True)
    s = bl.alternate(cases, report.rounds, label="per-step")
    report.keep(s)
    cpu = {name: c.cpu[name][-report.rounds :] for name in cases}
    report.keep({f"CPU {name}": v for name, v in cpu.items()}, unit="s CPU")
    wall_w = slope(s["wfrun flat200"], s["wfrun flat1000"])
    wall_f = slope(s["floor popen 200 8"], s["floor popen 1000 8"])
    cpu_w = slope(cpu["wfrun flat200"], cpu["wfrun flat1000"])
    cpu_f = slope(cpu["floor popen 200 8"], cpu["floor popen 1000 8"])
    report.add(
        bl.ratio_row(
            "per-step wall, wfrun / floor popen (-j 8, logs and report on)",
            wall_w / wall_f,
            1.0,
            f"{wall_w * 1e6:.0f} vs {wall_f * 1e6:.0f} µs/step",
            note="slope 200 → 1000 steps: start-up cancels",
        ),
        bl.ratio_row(
            "per-step CPU (wfrun and its children) / the floor's",
            cpu_w / cpu_f,
            1.0,
            f"{cpu_w * 1e6:.0f} vs {cpu_f * 1e6:.0f} µs CPU/step",
            note="includes each `true`'s own CPU, the same on both sides",
        ),
    )
    if c.baseline is not None:
        wall_b = slope(s["baseline flat200"], s["baseline flat1000"])
        cpu_b = slope(cpu["baseline flat200"], cpu["baseline flat1000"])
        report.add(
            bl.ratio_row(
                "per-step wall, baseline / floor popen",
                wall_b / wall_f,
                None,
                f"{wall_b * 1e6:.0f} µs/step",
                note=f"baseline: {c.baseline}",
            ),
            bl.ratio_row(
                "per-step CPU, baseline / floor",
                cpu_b / cpu_f,
                None,
                f"{cpu_b * 1e6:.0f} µs CPU/step",
            ),
        )


def against_ninja(c: Cases, report: bl.Report) -> None:
    keys = ("flat1000", "chain300", "random1000")
    cases = {f"wfrun {k}": c.wfrun(k) for k in keys}
    if c.ninja:
        cases |= {f"ninja {k}": c.ninja_case(k) for k in keys}
    if c.baseline is not None:
        cases |= {f"baseline {k}": c.wfrun(k, base=True) for k in keys}
    cases["wfrun flat1000 --dry-run"] = c.wfrun("flat1000", "--dry-run")
    s = bl.alternate(cases, report.rounds, label="ninja")
    report.keep(s)
    for k in keys:
        wf = bl.median(s[f"wfrun {k}"])
        if c.ninja:
            nj = bl.median(s[f"ninja {k}"])
            report.add(
                bl.ratio_row(
                    f"{k}: wfrun / ninja -j 8, total wall",
                    wf / nj,
                    1.3,
                    f"{bl.fmt_s(wf)} vs {bl.fmt_s(nj)}",
                    note="start-up and YAML load included",
                )
            )
        if c.baseline is not None:
            base = bl.median(s[f"baseline {k}"])
            report.add(bl.ratio_row(f"{k}: wfrun / baseline", wf / base, None))
    if not c.ninja:
        report.notes.append("ninja is not installed: the ninja rows are missing")
    dry = bl.median(s["wfrun flat1000 --dry-run"])
    report.add(
        bl.Row(
            "flat1000: wfrun --dry-run (start-up, load, plan, schedule; no process)",
            bl.fmt_s(dry),
            note="what the total wall holds before any process starts",
        )
    )


def makespan_and_pool(c: Cases, report: bl.Report) -> None:
    critical = float(c.meta["stagger"]["critical_path_s"])  # type: ignore[arg-type]
    cases = {
        "wfrun stagger": c.wfrun("stagger"),
        "wfrun stagger --dry-run": c.wfrun("stagger", "--dry-run"),
        "wfrun pool200": c.wfrun("pool200"),
        "wfrun pool200 --dry-run": c.wfrun("pool200", "--dry-run"),
        "floor popen 200 2 sleep 0.01": c.floor("popen", 200, 2, "sleep", 0.01),
    }
    s = bl.alternate(cases, report.rounds, label="makespan")
    report.keep(s)
    span = bl.paired(s["wfrun stagger"], s["wfrun stagger --dry-run"], lambda a, d: a - d)
    report.add(
        bl.Row(
            "stagger 5 0.2 0.01: wfrun - its --dry-run, against the critical path",
            f"{span:.3f} s = {span / critical:.3f}× {critical:g} s",
            f"≤ {critical * 1.03:.3f} s (3%)",
            span <= critical * 1.03,
        )
    )
    floor = bl.median(s["floor popen 200 2 sleep 0.01"])
    total = bl.median(s["wfrun pool200"])
    run_only = bl.paired(s["wfrun pool200"], s["wfrun pool200 --dry-run"], lambda a, d: a - d)
    report.add(
        bl.ratio_row(
            "pool 200, cpu=2: wfrun / floor popen 200 2, total wall",
            total / floor,
            1.05,
            f"{bl.fmt_s(total)} vs {bl.fmt_s(floor)}",
            note="start-up and YAML load included",
        ),
        bl.ratio_row(
            "pool 200: (wfrun - its --dry-run) / floor popen 200 2",
            run_only / floor,
            1.05,
            note="start-up taken out of wfrun only",
        ),
    )


def linear(c: Cases, report: bl.Report) -> None:
    cases = {"wfrun random1000": c.wfrun("random1000"), "wfrun random10000": c.wfrun("random10000")}
    rounds = max(3, report.rounds // 2)
    s = bl.alternate(cases, rounds, label="10000")
    report.keep({f"{k} (linearity)": v for k, v in s.items()})
    ratio = bl.median(s["wfrun random10000"]) / bl.median(s["wfrun random1000"])
    report.add(
        bl.ratio_row(
            "random 10000 / random 1000, end to end",
            ratio,
            11,
            f"{bl.fmt_s(bl.median(s['wfrun random10000']))} vs "
            f"{bl.fmt_s(bl.median(s['wfrun random1000']))}",
            note=f"{rounds} rounds",
        )
    )


def main() -> None:
    p = bl.parser(__doc__ or "", rounds=5)
    p.add_argument("--baseline", type=Path, help="another checkout to run alongside")
    args = p.parse_args()
    rounds = bl.rounds_of(args)
    bl.warn_if_busy()
    report = bl.Report("bench_reaper", "issue 15: the supervising loop", rounds)
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-reaper-") as tmp:
        c = Cases(Path(tmp), args.baseline)
        per_step(c, report)
        against_ninja(c, report)
        makespan_and_pool(c, report)
        if not args.quick:
            linear(c, report)
    report.notes.append(
        "wfrun runs as `python -m wfrun` with a bytecode cache (benchlib.CHILD_ENV); ratios are of "
        "medians; '- its --dry-run' pairs each run with the dry run of the same round."
    )
    bl.publish(report)


if __name__ == "__main__":
    main()
