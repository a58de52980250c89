"""How the local runner should start processes: Popen or posix_spawn, on starter threads or not.

    python bench/bench_spawn.py [--rounds 5] [--quick] [--steps 500]

In one process, `--steps` x `true` at 8 at a time, through `LocalProcessRunner.start` in each
configuration, and through the two thread-pool floors (`Popen(argv).wait()` and
`os.posix_spawn` + `waitpid` in a ThreadPoolExecutor(8)). Per-step wall time, and per-step CPU
time of this process plus its reaped children (getrusage), medians of alternated rounds.
The steps run in the current directory, so that posix_spawn (which cannot change directory) is
usable.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import benchlib as bl

from wfrun.executors.base import CancelToken
from wfrun.executors.local_runner import LocalProcessRunner
from wfrun.executors.process import ProcessResult, ProcessSpec

JOBS = 8


class _Discard:
    def feed(self, stream: int, data: bytes) -> None:
        pass


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def through_runner(steps: int, posix_spawn: bool, starters: int) -> Callable[[], None]:
    def run() -> None:
        runner = LocalProcessRunner(posix_spawn=posix_spawn, starters=starters)
        spec = ProcessSpec(["true"], Path.cwd(), dict(os.environ))
        slots = threading.Semaphore(JOBS)
        left = [steps]
        finished = threading.Event()

        def on_done(result: ProcessResult) -> None:
            slots.release()
            left[0] -= 1
            if not left[0]:
                finished.set()

        for _ in range(steps):
            slots.acquire()
            runner.start(spec, CancelToken(), _Discard(), on_done)
        finished.wait()
        runner.close()

    return run


def floor_popen(steps: int) -> Callable[[], None]:
    def run() -> None:
        with ThreadPoolExecutor(JOBS) as pool:
            list(pool.map(lambda _: subprocess.Popen(["true"]).wait(), range(steps)))

    return run


def floor_spawn(steps: int) -> Callable[[], None]:
    true = shutil.which("true") or "/bin/true"
    env = dict(os.environ)

    def one(_: int) -> None:
        os.waitpid(os.posix_spawn(true, ["true"], env, setsid=True), 0)

    def run() -> None:
        with ThreadPoolExecutor(JOBS) as pool:
            list(pool.map(one, range(steps)))

    return run


def main() -> None:
    p = bl.parser(__doc__ or "", rounds=5)
    p.add_argument("--steps", type=int, default=500)
    args = p.parse_args()
    rounds, steps = bl.rounds_of(args), args.steps
    bl.warn_if_busy()
    variants = {
        "runner: Popen, 8 starter threads (the default)": through_runner(steps, False, 8),
        "runner: Popen, spawned by the caller": through_runner(steps, False, 0),
        "runner: posix_spawn, 8 starter threads": through_runner(steps, True, 8),
        "runner: posix_spawn, spawned by the caller": through_runner(steps, True, 0),
        "floor: ThreadPoolExecutor(8) of Popen.wait": floor_popen(steps),
        "floor: ThreadPoolExecutor(8) of posix_spawn + waitpid": floor_spawn(steps),
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}

    def timed(name: str) -> bl.Case:
        def case() -> float:
            before_cpu, started = _cpu(), time.perf_counter()
            variants[name]()
            elapsed = time.perf_counter() - started
            cpu[name].append((_cpu() - before_cpu) / steps)
            return elapsed / steps

        return case

    s = bl.alternate({name: timed(name) for name in variants}, rounds, label="spawn")
    report = bl.Report("bench_spawn", f"starting {steps} x `true`, 8 at a time", rounds)
    report.keep(s)
    report.keep({f"CPU {n}": [v * 1e6 for v in cpu[n][-rounds:]] for n in variants}, "µs CPU")
    floor = bl.median(s["floor: ThreadPoolExecutor(8) of Popen.wait"])
    floor_cpu = bl.median(cpu["floor: ThreadPoolExecutor(8) of Popen.wait"][-rounds:])
    for name in variants:
        wall, used = bl.median(s[name]), bl.median(cpu[name][-rounds:])
        report.add(
            bl.Row(
                name,
                f"{wall * 1e6:.0f} µs/step ({wall / floor:.2f}× the Popen floor); "
                f"CPU {used * 1e6:.0f} µs/step ({used / floor_cpu:.2f}×)",
            )
        )
    report.notes.append(
        "CPython's os.posix_spawn keeps the GIL while glibc waits for the child's exec "
        "(CLONE_VFORK); Popen's vfork releases it. Per-step figures include each `true`'s own CPU."
    )
    bl.publish(report)


if __name__ == "__main__":
    main()
