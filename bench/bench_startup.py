"""Start-up and validation cost of the `wfrun` command.

    python bench/bench_startup.py [--rounds 7] [--quick] [--first-use]

- `wfrun --version` against `python -c pass` with the same interpreter (target ≤ 3×);
- `wfrun --help` (no target; the typer and rich import cost a user sees first);
- `wfrun validate random1000.yaml` against running the work itself, `floor.py popen 1000 8` with
  1000 `true` steps (target: validating takes no longer than running);
- `wfrun validate` of 10,000 steps against 1,000 (target ≤ 12×: linear plus start-up);
- first use: `wfrun validate` of a small valid file and a one-step `wfrun run --ui quiet` against
  `python -c "import typer, rich.console"`, the import cost of the CLI framework and the terminal
  library in the same interpreter (target ≤ 1.5× each: wfrun's own work on a small file should
  cost less than half of what its two main libraries cost to import).

The installed console script (`<venv>/bin/wfrun`) is the main figure; `python -m wfrun` is
measured too, since both are documented. The short commands get three times the rounds: they
take tens of milliseconds, where timer and scheduler noise weigh more.
"""

from __future__ import annotations

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


def first_use(report: bl.Report, root: Path, script: list[str]) -> None:
    small = root / "small.yaml"
    small.write_text(SMALL_WORKFLOW, encoding="utf-8")
    one = root / "one.yaml"
    one.write_text(ONE_STEP_WORKFLOW, encoding="utf-8")
    runs = root / "runs"
    imports = "import typer, rich.console"
    cases = {
        "python -c 'import typer, rich.console'": bl.command([sys.executable, "-c", imports]),
        "wfrun validate small.yaml": bl.command([*script, "validate", str(small)]),
        "wfrun run --ui quiet one.yaml": bl.command(
            [*script, "run", "--ui", "quiet", "--log-dir", str(runs), str(one)]
        ),
    }
    s = bl.alternate(cases, report.rounds * 3, label="first use")
    report.keep(s)
    base = bl.median(s["python -c 'import typer, rich.console'"])
    for name in ("wfrun validate small.yaml", "wfrun run --ui quiet one.yaml"):
        t = bl.median(s[name])
        report.add(
            bl.ratio_row(
                f"{name} / import typer, rich.console",
                t / base,
                1.5,
                f"{bl.fmt_s(t)} vs {bl.fmt_s(base)}",
                note="main figure" if name.startswith("wfrun run") else "",
            )
        )


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
    args = p.parse_args()
    rounds = bl.rounds_of(args)
    bl.warn_if_busy()
    report = bl.Report("bench_startup", "wfrun start-up and validate", rounds)
    script, module = bl.wfrun_script(), bl.wfrun_module()
    if not args.first_use:
        short_commands(report, script, module)
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-startup-") as tmp:
        first_use(report, Path(tmp), script)
        if not args.first_use:
            validation(report, Path(tmp), script, module)
    report.notes.append(f"console script: {script[0]}; interpreter: {sys.executable}")
    bl.publish(report)


if __name__ == "__main__":
    main()
