"""Validation and planning stay linear in the size of the file (issue 9's quadratic cases).

    PYTHONPATH=. python bench/bench_sizes.py [--rounds 3]

Times the real command line (`python -m wfrun ...`, start-up included) on:
- `validate` of N steps each depending on a misspelt step id (500, 1,000, 2,000): each gets a
  "did you mean" suggestion, so suggestions must not compare every pair;
- `validate` of a file with 10,000 and 100,000 unknown top-level keys;
- `plan` of a 20,000-step chain as text and as JSON (text drew 20,000 rich tables: 40 s).
Cases are alternated round by round and medians reported; before the fix these took 2.8 s,
8.6 s, 31.6 s; 27 s, over 300 s; 40.6 s text against 4.1 s JSON.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def misspelt_dependencies(steps: int) -> str:
    return "steps:\n" + "".join(
        f"  - {{id: step-{i:05d}, config: {{command: x}}, dependsOn: [stpe-{i:05d}]}}\n"
        for i in range(steps)
    )


def unknown_keys(keys: int) -> str:
    return (
        "".join(f"unknown{i}: 1\n" for i in range(keys))
        + "steps: [{id: a, config: {command: x}}]\n"
    )


def chain(steps: int) -> str:
    lines = ["steps:", "  - {id: s0, config: {command: 'true'}}"]
    lines += [
        f"  - {{id: s{i}, config: {{command: 'true'}}, dependsOn: [s{i - 1}]}}"
        for i in range(1, steps)
    ]
    return "\n".join(lines) + "\n"


def timed(args: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "wfrun", *args], cwd=cwd, env=env, capture_output=True, check=False
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        where = Path(folder)
        cases: dict[str, list[str]] = {}
        for steps in (500, 1_000, 2_000):
            (where / f"deps{steps}.yaml").write_text(misspelt_dependencies(steps))
            cases[f"validate: {steps:,} misspelt dependencies"] = ["validate", f"deps{steps}.yaml"]
        for keys in (10_000, 100_000):
            (where / f"keys{keys}.yaml").write_text(unknown_keys(keys))
            cases[f"validate: {keys:,} unknown top-level keys"] = ["validate", f"keys{keys}.yaml"]
        (where / "chain.yaml").write_text(chain(20_000))
        cases["plan: 20,000-step chain as text"] = ["plan", "chain.yaml", "--log-dir", "logs"]
        cases["plan: 20,000-step chain as JSON"] = [
            "plan",
            "chain.yaml",
            "--format",
            "json",
            "--log-dir",
            "logs",
        ]
        times: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases)
        for round_number in range(args.rounds):
            for name in order if round_number % 2 == 0 else reversed(order):
                times[name].append(timed(cases[name], where))
    width = max(len(name) for name in cases)
    for name, values in times.items():
        print(
            f"{name:<{width}}  {statistics.median(values):6.2f} s  (runs: "
            + ", ".join(f"{v:.2f}" for v in values)
            + ")"
        )


if __name__ == "__main__":
    main()
