"""Write benchmark workloads: the same DAG as a wfrun workflow, a Makefile and a build.ninja.

    python bench/workloads.py SHAPE ARGS... -o DIR [-j 8] [--seed 42] [--pool-cap 2]

Shapes (every step runs `true` unless said otherwise):

    flat N                 N independent steps
    chain N                s0 -> s1 -> ... -> s(N-1)
    random N               seeded DAG: step i depends on 0..3 earlier steps, drawn uniformly
    pool N [SECONDS]       N independent `sleep SECONDS` steps (default 0.01), all in pool
                           `cpu` (capacity 2)
    diamond N SECONDS      a source, N middle steps that depend on it, a sink that depends on
                           them all; every step `sleep SECONDS`
    stagger K SLOW FAST    chain A = K x `sleep SLOW`; chain B = K x `sleep FAST` then
                           K x `sleep SLOW`. Critical path K*(SLOW+FAST); a runner that waits
                           for each dependency level to finish needs 2*K*SLOW.

DIR receives wfrun.yaml, Makefile, build.ninja, dag.json (read by floor.py) and meta.json
(steps, edges, levels, critical path, level-barrier time, pool bound). Stdlib only, so the
benchmarks run anywhere wfrun does.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

SHAPES = ("flat", "chain", "random", "pool", "stagger", "diamond")
POOL = "cpu"


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step of a workload, independent of any runner's format."""

    id: str
    argv: tuple[str, ...]
    deps: tuple[str, ...] = ()
    pool: bool = False  # takes one unit of pool `cpu`

    @property
    def seconds(self) -> float:
        """How long the step's command takes, as far as the bounds in meta.json care."""
        return float(self.argv[1]) if self.argv[0] == "sleep" else 0.0


@dataclass(slots=True)
class Workload:
    shape: str
    args: tuple[float, ...]
    steps: list[StepSpec]
    jobs: int = 8
    pool_cap: int = 2
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def uses_pool(self) -> bool:
        return any(s.pool for s in self.steps)


TRUE = ("true",)


def _step(i: int, deps: list[int] | range = (), argv: tuple[str, ...] = TRUE) -> StepSpec:
    return StepSpec(f"s{i}", argv, tuple(f"s{d}" for d in deps))


def random_deps(steps: int, seed: int = 42) -> list[list[int]]:
    """Dependencies of the random DAG: step i depends on 0..min(3, i) earlier steps.

    Shared with bench_dispatch.py, which builds the same DAG in memory.
    """
    rng = random.Random(seed)
    return [sorted(rng.sample(range(i), rng.randint(0, min(3, i)))) for i in range(steps)]


def build_steps(shape: str, args: tuple[float, ...], seed: int = 42) -> list[StepSpec]:
    """The steps of a shape, in a topological order (every dependency comes first)."""
    if shape == "flat":
        return [_step(i) for i in range(int(args[0]))]
    if shape == "chain":
        return [_step(i, [i - 1] if i else []) for i in range(int(args[0]))]
    if shape == "random":
        return [_step(i, deps) for i, deps in enumerate(random_deps(int(args[0]), seed))]
    if shape == "pool":
        argv = ("sleep", f"{args[1]:g}" if len(args) > 1 else "0.01")
        return [StepSpec(f"s{i}", argv, pool=True) for i in range(int(args[0]))]
    if shape == "diamond":
        return _diamond(int(args[0]), float(args[1]))
    if shape == "stagger":
        return _stagger(int(args[0]), float(args[1]), float(args[2]))
    raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")


def _stagger(k: int, slow: float, fast: float) -> list[StepSpec]:
    slow_argv, fast_argv = ("sleep", f"{slow:g}"), ("sleep", f"{fast:g}")
    chain_a = [_step(i, [i - 1] if i else [], slow_argv) for i in range(k)]
    chain_b = [
        _step(k + i, [k + i - 1] if i else [], fast_argv if i < k else slow_argv)
        for i in range(2 * k)
    ]
    return chain_a + chain_b


def _diamond(n: int, seconds: float) -> list[StepSpec]:
    argv = ("sleep", f"{seconds:g}")
    middle = [_step(i, [0], argv) for i in range(1, n + 1)]
    return [_step(0, [], argv), *middle, _step(n + 1, range(1, n + 1), argv)]


def analyse(steps: list[StepSpec], pool_cap: int) -> dict[str, object]:
    """Bounds any runner is measured against: critical path, level barriers, pool bound."""
    level: dict[str, int] = {}
    finish: dict[str, float] = {}
    for s in steps:  # topological order, so every dependency is already known
        level[s.id] = 1 + max((level[d] for d in s.deps), default=-1)
        finish[s.id] = s.seconds + max((finish[d] for d in s.deps), default=0.0)
    levels: list[list[StepSpec]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for s in steps:
        levels[level[s.id]].append(s)
    pool_work = sum(s.seconds for s in steps if s.pool)
    return {
        "steps": len(steps),
        "edges": sum(len(s.deps) for s in steps),
        "levels": len(levels),
        "max_width": max((len(lv) for lv in levels), default=0),
        "critical_path_s": round(max(finish.values(), default=0.0), 4),
        # a runner with a barrier between dependency levels waits for each level's slowest step
        "level_barrier_s": round(sum(max(s.seconds for s in lv) for lv in levels), 4),
        "pool_bound_s": round(pool_work / pool_cap, 4),
    }


def make_workload(
    shape: str, args: tuple[float, ...], jobs: int = 8, seed: int = 42, pool_cap: int = 2
) -> Workload:
    steps = build_steps(shape, args, seed)
    workload = Workload(shape, args, steps, jobs, pool_cap)
    workload.meta = analyse(steps, pool_cap) | {
        "shape": shape,
        "args": list(args),
        "seed": seed,
        "jobs": jobs,
        "pool_cap": pool_cap,
    }
    return workload


# ---- formats -----------------------------------------------------------------------------------


def wfrun_yaml(w: Workload) -> str:
    """Flow-style mappings keep the file small, so YAML parsing does not dominate small runs."""
    lines = [
        "name: bench",
        "version: 1.0.0",
        "parallel:",
        "  enabled: true",
        f"  defaultMaxConcurrency: {w.jobs}",
    ]
    if w.uses_pool:
        lines.append(f"  resources: {{{POOL}: {w.pool_cap}}}")
    lines.append("steps:")
    for s in w.steps:
        command, args = json.dumps(s.argv[0]), json.dumps(list(s.argv[1:]))
        lines += [
            f"  - id: {s.id}",
            f"    name: {s.id}",
            "    type: script",
            f"    config: {{command: {command}, args: {args}}}",
        ]
        if s.deps:
            lines.append(f"    dependsOn: [{', '.join(s.deps)}]")
        pool = f", resource: {POOL}" if s.pool else ""
        lines.append(f"    parallel: {{enabled: true{pool}}}")
    return "\n".join(lines) + "\n"


def _sinks(steps: list[StepSpec]) -> list[str]:
    used = {d for s in steps for d in s.deps}
    return [s.id for s in steps if s.id not in used]


def makefile(w: Workload) -> str:
    """Phony targets, so every step runs on each call. Make has no pools: for the pool shape
    run it with -j<capacity>, which is the same bound."""
    ids = " ".join(s.id for s in w.steps)
    lines = [
        "MAKEFLAGS += --no-builtin-rules",
        ".SUFFIXES:",
        f".PHONY: all {ids}",
        "all: " + " ".join(_sinks(w.steps)),
    ]
    for s in w.steps:
        lines += [f"{s.id}: {' '.join(s.deps)}".rstrip(), f"\t@{' '.join(s.argv)}"]
    return "\n".join(lines) + "\n"


def build_ninja(w: Workload) -> str:
    """Outputs are never written, so ninja runs every edge each time (delete .ninja_log too)."""
    lines = ["ninja_required_version = 1.5", "rule run", "  command = $cmd"]
    if w.uses_pool:
        lines += [f"pool {POOL}", f"  depth = {w.pool_cap}"]
    for s in w.steps:
        lines += [f"build {s.id}: run {' '.join(s.deps)}".rstrip(), f"  cmd = {' '.join(s.argv)}"]
        if s.pool:
            lines.append(f"  pool = {POOL}")
    lines += ["build all: phony " + " ".join(_sinks(w.steps)), "default all"]
    return "\n".join(lines) + "\n"


def dag_json(w: Workload) -> str:
    """The DAG for floor.py's dependency-aware loop."""
    steps = [{"id": s.id, "argv": list(s.argv), "deps": list(s.deps)} for s in w.steps]
    return json.dumps({"jobs": w.jobs, "steps": steps})


def write_workload(w: Workload, out: Path) -> dict[str, Path]:
    """Write every format into `out`; return the paths by kind."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "yaml": (out / "wfrun.yaml", wfrun_yaml(w)),
        "make": (out / "Makefile", makefile(w)),
        "ninja": (out / "build.ninja", build_ninja(w)),
        "dag": (out / "dag.json", dag_json(w)),
        "meta": (out / "meta.json", json.dumps(w.meta, indent=1) + "\n"),
    }
    for path, text in files.values():
        path.write_text(text, encoding="utf-8")
    return {kind: path for kind, (path, _) in files.items()}


def generate(
    shape: str, args: tuple[float, ...], out: Path, jobs: int = 8, seed: int = 42
) -> tuple[dict[str, Path], dict[str, object]]:
    """Build and write one workload; return its files and its metadata."""
    w = make_workload(shape, args, jobs=jobs, seed=seed)
    return write_workload(w, out), w.meta


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("shape", choices=SHAPES)
    parser.add_argument("args", nargs="+", type=float)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("-j", "--jobs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pool-cap", type=int, default=2)
    o = parser.parse_args()
    args = tuple(int(a) if a == int(a) else a for a in o.args)  # `flat 1000`, not 1000.0
    w = make_workload(o.shape, args, jobs=o.jobs, seed=o.seed, pool_cap=o.pool_cap)
    write_workload(w, o.out)
    print(json.dumps(asdict(w)["meta"]))


if __name__ == "__main__":
    main()
