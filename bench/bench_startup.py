"""Start-up and validation cost of the `wfrun` command.

    python bench/bench_startup.py [--rounds 7] [--quick] [--first-use] [--before DIR]

- `wfrun --version` against `python -c pass` with the same interpreter (target ≤ 3×);
- `wfrun --help` (no target; the typer and rich import cost a user sees first);
- `wfrun validate random1000.yaml` against running the work itself, `floor.py popen 1000 8` with
  1000 `true` steps (target: validating takes no longer than running);
- `wfrun validate` of 10,000 steps against 1,000 (target ≤ 12×: linear plus start-up);
- first use: `wfrun validate` of a small valid file and a one-step `wfrun run --ui quiet` against
  `python -c "import typer, rich.console"`, the import cost of the CLI framework and the terminal
  library in the same interpreter (target ≤ 1.5× each: wfrun's own work on a small file should
  cost less than half of what its two main libraries cost to import). Also as CPU time, which
  a busy machine disturbs less; the run's imports alone, to split import cost from the run's
  own work; and, with `--before DIR`, the same commands from an earlier checkout side by side
  (`git archive COMMIT wfrun schemas | tar -x -C DIR`).

The installed console script (`<venv>/bin/wfrun`) is the main figure; `python -m wfrun` is
measured too, since both are documented. The short commands get three times the rounds: they
take tens of milliseconds, where timer and scheduler noise weigh more.
"""

from __future__ import annotations

import resource
import sys
import tempfile
from pathlib import Path

import benchlib as bl
from workloads import generate


def short_commands(report: bl.Report, script: list[str], module: list[str]) -> None:
    cases = {
        "python -c pass": bl.command([sys.executable, "-c", "pass"]),
        "wfrun --version (script)": bl.command([*script, "--version"]),
        "python -m wfrun --version": bl.command([*module, "--version"]),
        "wfrun --help (script)": bl.command([*script, "--help"]),
        "python -m wfrun --help": bl.command([*module, "--help"]),
    }
    s = bl.alternate(cases, report.rounds * 3, label="start-up")
    report.keep(s)
    bare = bl.median(s["python -c pass"])
    for name, target in (
        ("wfrun --version (script)", 3.0),
        ("python -m wfrun --version", 3.0),
        ("wfrun --help (script)", None),
        ("python -m wfrun --help", None),
    ):
        t = bl.median(s[name])
        report.add(
            bl.ratio_row(
                f"{name} / python -c pass",
                t / bare,
                target,
                f"{bl.fmt_s(t)} vs {bl.fmt_s(bare)}",
                note="main figure" if name == "wfrun --version (script)" else "",
            )
        )


SMALL_WORKFLOW = """\
name: small
parallel:
  resources: {cpu: 2}
steps:
  - id: build
    config: {command: "true", timeout: 1m}
    parallel: {resource: cpu}
  - id: test
    config: {command: "true", args: ["-x"]}
    dependsOn: [build]
"""

ONE_STEP_WORKFLOW = """\
steps:
  - id: only
    config: {command: "true"}
"""


# The modules a one-step `run --ui quiet` imports, for the "of which imports" figure: what the
# run costs beyond them is its own work (loading, a process, the report, the summary). The
# collector is paused as wfrun.__main__ pauses it, or the imports would cost more here than in
# the run itself.
RUN_IMPORTS = (
    "import gc; gc.disable(); "
    "import typer, rich.console, wfrun.cli, wfrun.loader, wfrun.planner, wfrun.runner, "
    "wfrun.reporters.plain, wfrun.executors.routing, wfrun.executors.local_runner, "
    "wfrun.compiled_schemas.workflow, wfrun.report_files"
)


def _with_cpu(
    argv: list[str], cpu: list[float], env: dict[str, str] | None = None, cwd: Path | None = None
) -> bl.Case:
    """A case that also records the CPU seconds (user + system) of the command and the children
    it waits for: on a shared machine, CPU time moves far less with the load than wall time.
    (The guardian outlives wfrun and is not waited for, so its few ms are not counted.)"""

    def case() -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = bl.run_timed(argv, env=env, cwd=cwd)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        return wall

    return case


def first_use(report: bl.Report, root: Path, script: list[str], before: Path | None) -> None:
    small = root / "small.yaml"
    small.write_text(SMALL_WORKFLOW, encoding="utf-8")
    one = root / "one.yaml"
    one.write_text(ONE_STEP_WORKFLOW, encoding="utf-8")
    runs = root / "runs"
    base = "python -c 'import typer, rich.console'"
    validate, run = "wfrun validate small.yaml", "wfrun run --ui quiet one.yaml"
    argvs = {
        base: [sys.executable, "-c", "import typer, rich.console"],
        validate: [*script, "validate", str(small)],
        run: [*script, "run", "--ui", "quiet", "--log-dir", str(runs), str(one)],
        "python -c 'import <the run's modules>'": [sys.executable, "-c", RUN_IMPORTS],
    }
    envs: dict[str, dict[str, str] | None] = dict.fromkeys(argvs)
    if before is not None:
        # The same commands from an earlier checkout, in the same rounds: before and after
        # compared side by side rather than across days.
        # What the console script runs (no runpy, unlike `python -m`), from the old checkout.
        old = [sys.executable, "-c", "import sys; from wfrun.__main__ import main; main()"]
        argvs[f"before: {validate}"] = [*old, "validate", str(small)]
        argvs[f"before: {run}"] = [*old, "run", "--ui", "quiet", "--log-dir", str(runs), str(one)]
        env = dict(bl.CHILD_ENV, PYTHONPATH=str(before))
        envs[f"before: {validate}"] = envs[f"before: {run}"] = env
    cpu: dict[str, list[float]] = {name: [] for name in argvs}
    # `python -m` puts the working directory first on sys.path: the earlier checkout's commands
    # run from inside it, or they would import the wfrun of the directory the bench runs in.
    cases = {
        name: _with_cpu(argv, cpu[name], envs[name], before if name.startswith("before:") else None)
        for name, argv in argvs.items()
    }
    # At least 11 rounds: these commands take a fifth of a second, where noise weighs most.
    s = bl.alternate(cases, max(11, report.rounds * 3), label="first use")
    cpu = {name: values[-len(s[name]) :] for name, values in cpu.items()}  # not the warm-up
    report.keep(s)
    report.keep({f"{name} [CPU]": values for name, values in cpu.items()})
    for name in (validate, run):
        t, b = bl.median(s[name]), bl.median(s[base])
        c, cb = bl.median(cpu[name]), bl.median(cpu[base])
        report.add(
            bl.ratio_row(
                f"{name} / import typer, rich.console",
                t / b,
                1.5,
                f"{bl.fmt_s(t)} vs {bl.fmt_s(b)}",
                note="main figure" if name == run else "",
            ),
            bl.ratio_row(
                f"{name} / import typer, rich.console, CPU time",
                c / cb,
                1.5,
                f"{bl.fmt_s(c)} vs {bl.fmt_s(cb)}",
                note="less sensitive to the machine's load",
            ),
        )
    imports = bl.median(s["python -c 'import <the run's modules>'"])
    report.add(
        bl.ratio_row(
            "imports of the run's modules / import typer, rich.console",
            imports / bl.median(s[base]),
            None,
            f"{bl.fmt_s(imports)}; the run's own work: {bl.fmt_s(bl.median(s[run]) - imports)}",
        )
    )
    if before is not None:
        for name in (validate, run):
            t, old_t = bl.median(s[name]), bl.median(s[f"before: {name}"])
            report.add(
                bl.ratio_row(
                    f"{name}: now / before",
                    t / old_t,
                    None,
                    f"{bl.fmt_s(t)} vs {bl.fmt_s(old_t)}; CPU {bl.fmt_s(bl.median(cpu[name]))} "
                    f"vs {bl.fmt_s(bl.median(cpu[f'before: {name}']))}",
                )
            )
        report.notes.append(f"before: the checkout in {before}, run as its console script would")


def validation(report: bl.Report, root: Path, script: list[str], module: list[str]) -> None:
    small, _ = generate("random", (1000,), root / "random1000")
    large, _ = generate("random", (10000,), root / "random10000")
    cases = {
        "wfrun validate random 1000 (script)": bl.command(
            [*script, "validate", str(small["yaml"])]
        ),
        "python -m wfrun validate random 1000": bl.command(
            [*module, "validate", str(small["yaml"])]
        ),
        "floor popen 1000 8 (true)": bl.command(bl.floor_argv("popen", 1000, 8)),
        "wfrun validate random 10000 (script)": bl.command(
            [*script, "validate", str(large["yaml"])]
        ),
    }
    s = bl.alternate(cases, report.rounds, label="validate")
    report.keep(s)
    v1000 = bl.median(s["wfrun validate random 1000 (script)"])
    m1000 = bl.median(s["python -m wfrun validate random 1000"])
    floor = bl.median(s["floor popen 1000 8 (true)"])
    v10000 = bl.median(s["wfrun validate random 10000 (script)"])
    report.add(
        bl.ratio_row(
            "wfrun validate random 1000 / floor popen 1000 8",
            v1000 / floor,
            1.0,
            f"{bl.fmt_s(v1000)} vs {bl.fmt_s(floor)}",
            note="main figure: checking 1000 steps vs running 1000 `true`",
        ),
        bl.ratio_row(
            "python -m wfrun validate random 1000 / floor",
            m1000 / floor,
            1.0,
            f"{bl.fmt_s(m1000)} vs {bl.fmt_s(floor)}",
        ),
        bl.ratio_row(
            "wfrun validate 10,000 steps / 1,000 steps",
            v10000 / v1000,
            12.0,
            f"{bl.fmt_s(v10000)} vs {bl.fmt_s(v1000)}",
            note="10× the steps; start-up is paid once",
        ),
    )


def main() -> None:
    p = bl.parser(__doc__ or "")
    p.add_argument("--first-use", action="store_true", help="only the first-use comparison")
    p.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="also time validate and run from an earlier source checkout in DIR (the folder "
        "holding its wfrun/ package), in the same rounds",
    )
    args = p.parse_args()
    rounds = bl.rounds_of(args)
    bl.warn_if_busy()
    report = bl.Report("bench_startup", "wfrun start-up and validate", rounds)
    script, module = bl.wfrun_script(), bl.wfrun_module()
    if not args.first_use:
        short_commands(report, script, module)
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-startup-") as tmp:
        first_use(report, Path(tmp), script, args.before)
        if not args.first_use:
            validation(report, Path(tmp), script, module)
    report.notes.append(f"console script: {script[0]}; interpreter: {sys.executable}")
    bl.publish(report)


if __name__ == "__main__":
    main()
