"""The run engine against the Python floor: per-step overhead, DAG shapes, makespan, memory.

    python bench/bench_run.py [--rounds 7] [--quick] [--no-peers]

Every figure is a median of alternated rounds, compared within one call:

- per-step overhead: `wfrun run flat N -j 8 --ui quiet` at N=200 and N=1000; the slope
  (t1000 - t200) / 800 removes start-up and is compared with the slope of `floor.py popen N 8`.
  wfrun always writes a log file per step (no CLI flag turns that off), so `floor.py file`, the
  floor with per-step log files, is shown too. Target ≤ 1.5× the popen floor, goal 1.2×.
- chain 300 and random 1000: total wall time against the popen floor (`-j 1` for the chain) and
  against floor.py's minimal dependency-driven loop.
- makespan: `stagger 5 0.2 0.01` minus a `--dry-run` of the same file (wfrun's start-up) against
  the critical path 1.05 s (target within 10%); `pool 200` against `floor.py popen 200 2 sleep
  0.01` (target 0.95-1.1×; faster means the pool let more than 2 run).
- memory: peak RSS of `wfrun run flat 1000` against the interpreter with wfrun's imports
  (target: less than 40 MiB more).
- peers when installed: `make -j` and `ninja -j` on the same DAG (ninja's pool for `pool`).
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import benchlib as bl
from workloads import generate

SMALL, LARGE = 200, 1000
JOBS = 8
IMPORTS = (
    "import wfrun.cli, wfrun.loader, wfrun.scheduler, wfrun.reporters.plain, "
    "jsonschema, yaml, rich, typer"
)
GNU_TIME = Path("/usr/bin/time")


class Bench:
    """The workloads of one call, written once into a temporary folder, and the cases on them."""

    def __init__(self, root: Path, peers: bool) -> None:
        self.root = root
        self.wfrun = bl.wfrun_script()
        self.peers = {name: shutil.which(name) for name in ("make", "ninja")} if peers else {}
        self.files: dict[str, dict[str, Path]] = {}
        self.meta: dict[str, dict[str, object]] = {}
        self._runs = itertools.count()
        for key, shape, args in (
            ("flat200", "flat", (SMALL,)),
            ("flat1000", "flat", (LARGE,)),
            ("chain300", "chain", (300,)),
            ("random1000", "random", (1000,)),
            ("pool200", "pool", (200,)),
            ("stagger", "stagger", (5, 0.2, 0.01)),
        ):
            self.files[key], self.meta[key] = generate(shape, args, root / key, jobs=JOBS)

    def run(self, key: str, *extra: str, jobs: int = JOBS) -> bl.Case:
        """`wfrun run` with logs in a fresh folder per run, removed after the clock stops."""

        def case() -> float:
            logs = self.root / "logs" / str(next(self._runs))
            argv = [*self.wfrun, "run", str(self.files[key]["yaml"]), "-j", str(jobs)]
            elapsed = bl.run_timed([*argv, "--ui", "quiet", "--log-dir", str(logs), *extra])
            shutil.rmtree(logs, ignore_errors=True)
            return elapsed

        return case

    def floor_file(self, steps: int) -> bl.Case:
        """floor.py file with its logs in a fresh folder, made and removed off the clock."""

        def case() -> float:
            logs = self.root / "logs" / str(next(self._runs))
            logs.mkdir(parents=True)
            env = bl.CHILD_ENV | {"FLOOR_LOGS": str(logs)}
            elapsed = bl.run_timed(bl.floor_argv("file", steps, JOBS), env=env)
            shutil.rmtree(logs, ignore_errors=True)
            return elapsed

        return case

    def dry_run(self, key: str) -> bl.Case:
        return self.run(key, "--dry-run")

    def floor_dag(self, key: str, jobs: int = JOBS) -> bl.Case:
        return bl.command(bl.floor_argv("dag", self.files[key]["dag"], jobs))

    def peer_cases(self, key: str, jobs: int = JOBS) -> dict[str, bl.Case]:
        """make and ninja on the same DAG, when installed; `make` has no pools, so -j<cap>."""
        cases: dict[str, bl.Case] = {}
        folder = self.files[key]["make"].parent
        make_jobs = 2 if key == "pool200" else jobs
        if self.peers.get("make"):
            argv = [str(self.peers["make"]), "-s", f"-j{make_jobs}", "-C", str(folder)]
            cases[f"make -j{make_jobs}"] = bl.command(argv)
        if self.peers.get("ninja"):
            ninja = str(self.peers["ninja"])

            def run_ninja() -> float:
                (folder / ".ninja_log").unlink(missing_ok=True)  # or it skips nothing, but grows
                return bl.run_timed([ninja, "-C", str(folder), f"-j{jobs}"])

            cases[f"ninja -j{jobs}"] = run_ninja
        return cases


# ---- sections ----------------------------------------------------------------------------------


def slope(small: list[float], large: list[float]) -> float:
    """Median per-round seconds per extra step between the two sizes."""
    return bl.paired(small, large, lambda a, b: (b - a) / (LARGE - SMALL))


def per_step(b: Bench, report: bl.Report) -> None:
    cases = {
        f"wfrun flat {SMALL}": b.run("flat200"),
        f"wfrun flat {LARGE}": b.run("flat1000"),
        f"floor popen {SMALL} 8": bl.command(bl.floor_argv("popen", SMALL, JOBS)),
        f"floor popen {LARGE} 8": bl.command(bl.floor_argv("popen", LARGE, JOBS)),
        f"floor file {SMALL} 8": b.floor_file(SMALL),
        f"floor file {LARGE} 8": b.floor_file(LARGE),
        f"wfrun flat {SMALL} --dry-run": b.dry_run("flat200"),
        f"wfrun flat {LARGE} --dry-run": b.dry_run("flat1000"),
    }
    s = bl.alternate(cases, report.rounds, label="per-step")
    report.keep(s)
    wf = slope(s[f"wfrun flat {SMALL}"], s[f"wfrun flat {LARGE}"])
    fl = slope(s[f"floor popen {SMALL} 8"], s[f"floor popen {LARGE} 8"])
    ff = slope(s[f"floor file {SMALL} 8"], s[f"floor file {LARGE} 8"])
    dry = slope(s[f"wfrun flat {SMALL} --dry-run"], s[f"wfrun flat {LARGE} --dry-run"])
    us = f"{wf * 1e6:.0f} vs {fl * 1e6:.0f} µs/step"
    report.add(
        bl.ratio_row(
            "per-step cost, wfrun / floor popen (-j 8, logs on)",
            wf / fl,
            1.5,
            us,
            note="goal 1.2×; slope 200→1000 steps, start-up cancels",
        ),
        bl.ratio_row(
            "per-step cost, wfrun / floor with per-step log files",
            wf / ff,
            None,
            f"{wf * 1e6:.0f} vs {ff * 1e6:.0f} µs/step",
            note="how much of the gap wfrun's always-on step logs explain",
        ),
        bl.Row(
            "per-step cost of wfrun --dry-run (load, plan, schedule, no process)",
            f"{dry * 1e6:.0f} µs/step = {dry / wf:.0%} of wfrun's per-step cost",
            note="the rest is starting, watching and logging processes",
        ),
        bl.ratio_row(
            "per-step cost, (wfrun - its --dry-run) / floor with log files",
            (wf - dry) / ff,
            None,
            f"{(wf - dry) * 1e6:.0f} vs {ff * 1e6:.0f} µs/step",
            note="process handling alone, against the floor that also writes logs",
        ),
        bl.ratio_row(
            f"flat {LARGE} total wall, wfrun / floor popen",
            bl.median(s[f"wfrun flat {LARGE}"]) / bl.median(s[f"floor popen {LARGE} 8"]),
            None,
            note="includes wfrun's start-up and YAML load",
        ),
    )
    report.notes.append(
        "wfrun has no CLI switch to turn step logs off; every run writes one log per step into "
        "--log-dir (a fresh temporary folder per run, removed outside the timed region)."
    )


def dag_shape(b: Bench, report: bl.Report, key: str, title: str, floor: list[str]) -> None:
    cases = {
        f"wfrun {title}": b.run(key),
        f"wfrun {title} --dry-run": b.dry_run(key),
        f"floor popen ({title})": bl.command(floor),
        f"floor dag ({title})": b.floor_dag(key),
    } | {f"{name} ({title})": case for name, case in b.peer_cases(key).items()}
    s = bl.alternate(cases, report.rounds, label=title)
    report.keep(s)
    wf = s[f"wfrun {title}"]
    for name in cases:
        if name.startswith("wfrun"):
            continue
        what = "physical floor" if "popen" in name else "deps-aware floor" if "dag" in name else ""
        report.add(
            bl.ratio_row(
                f"{title}: wfrun / {name.split(' (')[0]}",
                bl.median(wf) / bl.median(s[name]),
                None,
                f"{bl.fmt_s(bl.median(wf))} vs {bl.fmt_s(bl.median(s[name]))}",
                note=what or "peer",
            )
        )
    run_only = bl.paired(wf, s[f"wfrun {title} --dry-run"], lambda a, d: a - d)
    dag_floor = bl.median(s[f"floor dag ({title})"])
    report.add(
        bl.ratio_row(
            f"{title}: (wfrun - its --dry-run) / floor dag",
            run_only / dag_floor,
            None,
            f"{bl.fmt_s(run_only)} vs {bl.fmt_s(dag_floor)}",
            note="start-up and YAML load taken out of wfrun only",
        )
    )


def makespan(b: Bench, report: bl.Report) -> None:
    critical = float(b.meta["stagger"]["critical_path_s"])  # type: ignore[arg-type]
    barrier = float(b.meta["stagger"]["level_barrier_s"])  # type: ignore[arg-type]
    cases = {"wfrun stagger": b.run("stagger"), "wfrun stagger --dry-run": b.dry_run("stagger")}
    cases |= {f"{n} (stagger)": c for n, c in b.peer_cases("stagger").items()}
    s = bl.alternate(cases, report.rounds, label="stagger")
    report.keep(s)
    span = bl.paired(s["wfrun stagger"], s["wfrun stagger --dry-run"], lambda a, d: a - d)
    report.add(
        bl.Row(
            "stagger 5 0.2 0.01: wfrun run - its --dry-run",
            f"{span:.3f} s = {span / critical:.3f}× critical path {critical:g} s",
            f"≤ {critical * 1.1:.3f} s (within 10%)",
            span <= critical * 1.1,
            note=f"a level-by-level runner needs {barrier:g} s",
        )
    )
    for name in cases:
        if not name.startswith("wfrun"):
            total = bl.median(s[name])
            report.add(bl.Row(f"stagger: {name}", f"{total:.3f} s total", note="peer"))


def pool(b: Bench, report: bl.Report) -> None:
    bound = float(b.meta["pool200"]["pool_bound_s"])  # type: ignore[arg-type]
    cases = {
        "wfrun pool 200": b.run("pool200"),
        "wfrun pool 200 --dry-run": b.dry_run("pool200"),
        "floor popen 200 2 sleep 0.01": bl.command(bl.floor_argv("popen", 200, 2, "sleep", 0.01)),
    }
    cases |= {f"{n} (pool 200)": c for n, c in b.peer_cases("pool200").items()}
    s = bl.alternate(cases, report.rounds, label="pool")
    report.keep(s)
    ratio = bl.median(s["wfrun pool 200"]) / bl.median(s["floor popen 200 2 sleep 0.01"])
    report.add(
        bl.Row(
            "pool 200 x sleep 0.01, cpu=2: wfrun / floor popen 200 2",
            f"{ratio:.2f}×",
            "0.95-1.1×",
            0.95 <= ratio <= 1.1,
            note="below 0.95 would mean the pool let more than 2 run",
        )
    )
    span = bl.paired(s["wfrun pool 200"], s["wfrun pool 200 --dry-run"], lambda a, d: a - d)
    report.add(
        bl.ratio_row(
            "pool 200: (wfrun - its --dry-run) / floor popen 200 2",
            span / bl.median(s["floor popen 200 2 sleep 0.01"]),
            None,
            note="the same ratio without wfrun's start-up and YAML load",
        ),
        bl.Row(
            "pool 200: wfrun run - its --dry-run",
            f"{span:.3f} s = {span / bound:.2f}× pool bound {bound:g} s",
            note="200 x 10 ms / 2; every process start adds to it",
        ),
    )
    for name in cases:
        if not name.startswith(("wfrun", "floor")):
            ratio = bl.median(s[name]) / bl.median(s["floor popen 200 2 sleep 0.01"])
            report.add(bl.ratio_row(f"pool 200: {name.split(' (')[0]} / floor", ratio, None))


# ---- memory ------------------------------------------------------------------------------------


def peak_rss_mib(argv: list[str]) -> float:
    """Peak resident set of a command: GNU time's %M when present, else wait4's rusage (the same
    number: both come from the kernel's accounting of the waited-for child)."""
    if GNU_TIME.exists():
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
            bl.run_timed([str(GNU_TIME), "-f", "%M", "-o", out.name, *argv])
            text = out.read().strip().splitlines()
        return int(text[-1]) / 1024 if text else math.nan
    proc = subprocess.Popen(
        argv, env=bl.CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped above; keep Popen from waiting again
    return usage.ru_maxrss / 1024  # KiB on Linux


def memory(b: Bench, report: bl.Report) -> None:
    def rss(argv: list[str]) -> Callable[[], float]:
        return lambda: peak_rss_mib(argv)

    logs = b.root / "logs" / "rss"
    flat = str(b.files["flat1000"]["yaml"])
    cases = {
        "peak RSS wfrun run flat 1000": rss(
            [*b.wfrun, "run", flat, "-j", "8", "--ui", "quiet", "--log-dir", str(logs)]
        ),
        "peak RSS python + wfrun's imports": rss([sys.executable, "-c", IMPORTS]),
        "peak RSS floor popen 1000 8": rss(bl.floor_argv("popen", LARGE, JOBS)),
    }
    s = bl.alternate(cases, max(3, report.rounds // 2), label="memory")
    shutil.rmtree(logs, ignore_errors=True)
    report.keep(s, unit="MiB")
    run = bl.median(s["peak RSS wfrun run flat 1000"])
    imports = bl.median(s["peak RSS python + wfrun's imports"])
    floor = bl.median(s["peak RSS floor popen 1000 8"])
    report.add(
        bl.Row(
            "peak RSS: wfrun run flat 1000 - python with its imports",
            f"{run - imports:.1f} MiB ({run:.1f} vs {imports:.1f} MiB)",
            "< 40 MiB",
            run - imports < 40,
            note=f"floor popen 1000 8: {floor:.1f} MiB",
        )
    )


def main() -> None:
    p = bl.parser(__doc__ or "")
    p.add_argument("--no-peers", action="store_true", help="skip make/ninja rows")
    args = p.parse_args()
    rounds = bl.rounds_of(args)
    bl.warn_if_busy()
    report = bl.Report("bench_run", "wfrun run engine vs the Python floor", rounds)
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-run-") as tmp:
        b = Bench(Path(tmp), peers=not (args.no_peers or args.quick))
        per_step(b, report)
        dag_shape(b, report, "chain300", "chain 300", bl.floor_argv("popen", 300, 1))
        dag_shape(b, report, "random1000", "random 1000", bl.floor_argv("popen", 1000, JOBS))
        makespan(b, report)
        pool(b, report)
        memory(b, report)
    report.notes.append(
        "ratios are of medians; 'wfrun - its --dry-run' pairs each run with the dry run of the "
        "same round. chain 300 runs wfrun at -j 8 (its dependencies serialise it); its popen "
        "floor is floor.py popen 300 1."
    )
    bl.publish(report)


if __name__ == "__main__":
    main()
