"""The Python floor: the least any Python runner can spend to run the same processes.

    python bench/floor.py popen N J [CMD ARGS...]   N copies of CMD (default `true`), J at a time
    python bench/floor.py file N J [CMD ARGS...]    the same, each step's output to a log file
    python bench/floor.py dag DAG.json J            a DAG from workloads.py, respecting deps

`popen` is a ThreadPoolExecutor(J) of `subprocess.Popen(argv).wait()`. `file` adds the per-step
log file that wfrun always writes, to show how much of a gap logging explains; the logs go into
$FLOOR_LOGS when set (left there), else into a temporary folder removed at the end. `dag` is the
minimal dependency-driven loop (indegree counts, a ready list, J workers), the fair floor for
chain and random shapes. Exit status 1 if any step failed. Stdlib only.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def popen(argv: list[str]) -> Callable[[int], int]:
    return lambda _: subprocess.Popen(argv).wait()


def to_file(argv: list[str], logs: Path) -> Callable[[int], int]:
    def run(i: int) -> int:
        with open(logs / f"{i}.log", "wb") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT).wait()

    return run


def run_copies(run: Callable[[int], int], n: int, jobs: int) -> int:
    with ThreadPoolExecutor(jobs) as pool:
        return 1 if any(pool.map(run, range(n))) else 0


def run_dag(steps: list[dict[str, list[str] | str]], jobs: int) -> int:
    """Start each step once its dependencies succeeded; at most `jobs` at once."""
    argvs = {str(s["id"]): list(s["argv"]) for s in steps}
    waiting = {str(s["id"]): len(s["deps"]) for s in steps}
    dependents: dict[str, list[str]] = {sid: [] for sid in argvs}
    for s in steps:
        for dep in s["deps"]:
            dependents[dep].append(str(s["id"]))
    ready = [sid for sid, n in waiting.items() if n == 0]
    ready.reverse()  # pop() from the end starts the roots in file order
    done: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
    running = failed = 0

    def work(sid: str) -> None:
        try:
            code = subprocess.Popen(argvs[sid]).wait()
        except OSError:
            code = 127  # still report, or the loop would wait for it forever
        done.put((sid, code))

    with ThreadPoolExecutor(jobs) as pool:
        while ready or running:
            while ready and running < jobs:
                pool.submit(work, ready.pop())
                running += 1
            sid, code = done.get()
            running -= 1
            if code:
                failed += 1  # its dependents never become ready
                continue
            for child in dependents[sid]:
                waiting[child] -= 1
                if not waiting[child]:
                    ready.append(child)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("popen", "file", "dag"):
        sys.stderr.write(__doc__ or "")
        return 2
    mode, jobs = argv[0], int(argv[2])
    if mode == "dag":
        dag = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        return run_dag(dag["steps"], jobs)
    n, command = int(argv[1]), argv[3:] or ["true"]
    if mode == "file" and os.environ.get("FLOOR_LOGS"):
        # The caller makes and removes the folder, outside its clock, as it does for wfrun's.
        return run_copies(to_file(command, Path(os.environ["FLOOR_LOGS"])), n, jobs)
    if mode == "file":
        with tempfile.TemporaryDirectory(prefix="floor-logs-") as logs:
            return run_copies(to_file(command, Path(logs)), n, jobs)
    return run_copies(popen(command), n, jobs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
