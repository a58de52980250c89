"""Per-step cost of ScriptExecutor against bare `subprocess.Popen(['true']).wait()`.

Runs 1000 `true` steps through a ThreadPoolExecutor(8) three ways, alternating the ways round
after round so that drift in machine load hits all of them alike, and prints medians and ratios:

    python bench/bench_executor.py [--steps 1000] [--rounds 7] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wfrun.executors.base import CancelToken, StepContext
from wfrun.executors.script import ScriptExecutor
from wfrun.model import ScriptConfig, Step, StepType, Workflow


def bare(_: int) -> None:
    subprocess.Popen(["true"]).wait()


def executor_run(log_dir: Path | None) -> Callable[[int], None]:
    step = Step(id="t", name="t", type=StepType.SCRIPT, config=ScriptConfig("true"))
    workflow = Workflow(name="bench", steps=(step,), base_dir=Path.cwd())
    executor = ScriptExecutor()
    env = dict(os.environ)

    def run(i: int) -> None:
        log_path = None if log_dir is None else log_dir / f"step-{i}.log"
        context = StepContext("bench", workflow, step, env, CancelToken(), log_path)
        outcome = executor.execute(context)
        assert outcome.succeeded, outcome.reason

    return run


def timed(pool: ThreadPoolExecutor, run: Callable[[int], None], steps: int) -> float:
    started = time.perf_counter()
    list(pool.map(run, range(steps)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.workers) as pool:
        ways = {
            "Popen(['true']).wait()": bare,
            "ScriptExecutor, no log": executor_run(None),
            "ScriptExecutor, log file": executor_run(Path(tmp)),
        }
        timed(pool, bare, 50)  # warm up the pool's threads and the page cache
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, run in ways.items():
                times[name].append(timed(pool, run, args.steps))
    report(times, args.steps)


def report(times: dict[str, list[float]], steps: int) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = next(iter(medians.values()))
    for name, median in medians.items():
        per_step = median / steps * 1e6
        sys.stdout.write(
            f"{name:28} median {median:6.3f}s  {per_step:7.1f} µs/step  "
            f"ratio {median / baseline:5.2f}\n"
        )


if __name__ == "__main__":
    main()
