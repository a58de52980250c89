"""Fuzz wfrun with 10,000 workflow files: count tracebacks, hangs and unpositioned diagnostics.

    PYTHONPATH=. python bench/fuzz.py [--cases 10000] [--seed 9] [--timeout 20] [--memory 1024]
                                      [--cli-every 200] [--keep DIR]

The cases (tests/fuzzing.py): the hand-made attacks, hypothesis-drawn workflow-shaped documents,
and random edits of every sample and test scenario. Each goes through validate, plan (text, JSON,
Mermaid, dot) and run --dry-run in a worker process that has a memory limit (RLIMIT_AS) and a
time limit per file; a worker that dies or overruns is counted and replaced. Every
`--cli-every`th case also goes through the real command line (`python -m wfrun validate`,
`plan`, `run --dry-run`), whose stderr must hold no traceback. The bar is 0, 0, 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def cases(count: int, seed: int) -> list[str]:
    import fuzzing
    from hypothesis import HealthCheck, given, settings

    texts = list(fuzzing.attacks())
    drawn: list[str] = []

    @settings(
        max_examples=count // 4,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(document=fuzzing.workflow_values())
    def draw(document: object) -> None:
        drawn.append(fuzzing.dump(document))

    draw()
    texts += drawn
    rng = random.Random(seed)
    seeds = fuzzing.seed_texts()
    while len(texts) < count:
        texts.append(fuzzing.mutate(rng.choice(seeds), rng))
    return texts[:count]


# ---- the worker: one process, many files, each under a time limit -----------------------------


def worker(timeout: int) -> None:
    """Read a file path per line, answer a JSON line per file."""
    import signal
    import traceback

    import fuzzing

    def overrun(signum: int, frame: object) -> None:
        raise TimeoutError("time limit")

    signal.signal(signal.SIGALRM, overrun)
    base = Path(tempfile.mkdtemp())
    for line in sys.stdin:
        path = Path(line.strip())
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        started = time.perf_counter()
        signal.alarm(timeout)
        try:
            outcome = fuzzing.exercise(text, base, file=path.name)
            fuzzing.exercise_agents_file(text)
            answer = {
                "result": "valid" if outcome.valid else "invalid",
                "unpositioned": list(outcome.unpositioned),
            }
        except TimeoutError:
            answer = {"result": "hang"}
        except MemoryError:
            answer = {"result": "memory"}
        except Exception:
            answer = {"result": "traceback", "traceback": traceback.format_exc(limit=-4)}
        finally:
            signal.alarm(0)
        answer["seconds"] = time.perf_counter() - started
        print(json.dumps(answer), flush=True)


def _limits(memory_mib: int) -> None:
    limit = memory_mib * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class Worker:
    def __init__(self, timeout: int, memory: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--timeout", str(timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: _limits(memory),
        )

    def ask(self, path: Path) -> dict[str, object]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:  # the worker died: out of memory, or worse
            self.process.wait()
            return {"result": "died", "code": self.process.returncode}
        answer: dict[str, object] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait()


def through_cli(path: Path, timeout: int) -> list[str]:
    """The problems of one file through the real command line: tracebacks, hangs, odd codes."""
    problems = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for command in (["validate"], ["plan"], ["run", "--dry-run"]):
        try:
            done = subprocess.run(
                [sys.executable, "-m", "wfrun", *command, str(path)],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=path.parent,
                env=env,
                errors="replace",
            )
        except subprocess.TimeoutExpired:
            problems.append(f"{' '.join(command)}: hang")
            continue
        if "Traceback" in done.stderr or done.returncode not in (0, 1, 2):
            problems.append(f"{' '.join(command)}: exit {done.returncode}: {done.stderr[-300:]}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--timeout", type=int, default=20, help="seconds per file")
    parser.add_argument("--memory", type=int, default=1024, help="MiB per worker")
    parser.add_argument("--cli-every", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="write the failing files here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.timeout)
        return
    started = time.perf_counter()
    texts = cases(args.cases, args.seed)
    tally: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []
    unpositioned = 0
    slowest = 0.0
    with tempfile.TemporaryDirectory() as folder:
        current = Worker(args.timeout, args.memory)
        for index, text in enumerate(texts):
            path = Path(folder) / f"case{index:05d}.yaml"
            path.write_text(text, encoding="utf-8", errors="surrogateescape")
            answer = current.ask(path)
            result = str(answer["result"])
            tally[result] += 1
            slowest = max(slowest, float(answer.get("seconds", 0.0)))  # type: ignore[arg-type]
            if answer.get("unpositioned"):
                unpositioned += 1
                failures.append((text, f"unpositioned: {answer['unpositioned']}"))
            if result in ("traceback", "hang", "memory", "died"):
                failures.append((text, f"{result}: {answer.get('traceback', '')}"))
                if result != "traceback":
                    current.close()
                    current = Worker(args.timeout, args.memory)
            if args.cli_every and index % args.cli_every == 0:
                for problem in through_cli(path, args.timeout * 3):
                    tally["cli problem"] += 1
                    failures.append((text, f"cli: {problem}"))
        current.close()
    for text, why in failures[:20]:
        print(f"--- {why}\n{text[:300]!r}")
    if args.keep is not None and failures:
        args.keep.mkdir(parents=True, exist_ok=True)
        for number, (text, why) in enumerate(failures):
            (args.keep / f"failure{number:04d}.yaml").write_text(
                f"# {why.splitlines()[0] if why else ''}\n{text}", errors="surrogateescape"
            )
    hangs = tally["hang"] + tally["died"] + tally["memory"]
    print(
        f"{len(texts):,} files in {time.perf_counter() - started:.0f}s: "
        f"{tally['valid']:,} valid, {tally['invalid']:,} invalid; slowest {slowest:.2f}s\n"
        f"tracebacks {tally['traceback']}, hangs or out of memory {hangs}, "
        f"unpositioned diagnostics {unpositioned}, CLI problems {tally['cli problem']} "
        f"(CLI on every {args.cli_every}th file)"
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
