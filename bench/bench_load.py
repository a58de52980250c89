"""Time `load_workflow` on random DAG workflows of 1,000 and 10,000 steps.

    python bench/bench_load.py [--repeat 5] [--sizes 1000 10000] [--seed 42]

Each workflow is written once into a temporary folder: step i depends on 0-3 earlier steps,
drawn with a seeded RNG, and runs `true`. The script prints the median load time of each size,
the part of it spent in JSON Schema validation, and the ratio of the largest size to the smallest
(linear scaling gives the ratio of the sizes). The machine may be noisy: sizes are alternated
and medians reported.
"""

from __future__ import annotations

import argparse
import functools
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from wfrun import loader, schema_errors, yaml_source


def random_workflow(steps: int, seed: int) -> str:
    """YAML text of a random DAG: step i depends on 0-3 earlier steps."""
    rng = random.Random(seed)
    lines = ["name: bench", "version: 1.0.0", "parallel:", "  enabled: true"]
    lines += ["  defaultMaxConcurrency: 8", "steps:"]
    for i in range(steps):
        deps = sorted(rng.sample(range(i), rng.randint(0, min(3, i))))
        lines += [
            f"  - id: s{i}",
            f"    name: s{i}",
            "    type: script",
            '    config: {command: "true", args: []}',
        ]
        if deps:
            lines.append(f"    dependsOn: [{', '.join(f's{d}' for d in deps)}]")
        lines.append("    parallel: {enabled: true}")
    return "\n".join(lines) + "\n"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def validation_time(path: Path) -> float:
    """The JSON Schema part of a load alone: jsonschema over the converted document."""
    text = path.read_text(encoding="utf-8")
    data, _, tree = yaml_source.parse(text, str(path), str)
    validator = schema_errors.workflow_validator()
    was_enabled = gc.isenabled()
    gc.disable()  # as during a load
    try:
        return timed(lambda: schema_errors.validate(data, tree, str(path), "workflow", validator))
    finally:
        if was_enabled:
            gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seed", type=int, default=42)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        files = {n: Path(folder) / f"random-{n}.yaml" for n in options.sizes}
        for n, path in files.items():
            path.write_text(random_workflow(n, options.seed), encoding="utf-8")
        loader.load_workflow(files[options.sizes[0]])  # warm up: imports, compiled schema
        loads: dict[int, list[float]] = {n: [] for n in options.sizes}
        checks: dict[int, list[float]] = {n: [] for n in options.sizes}
        for _ in range(options.repeat):
            for n, path in files.items():  # alternate the sizes against drifting noise
                loads[n].append(timed(functools.partial(loader.load_workflow, path)))
                checks[n].append(validation_time(path))
        for n in options.sizes:
            size = files[n].stat().st_size // 1024
            load, validation = statistics.median(loads[n]), statistics.median(checks[n])
            print(
                f"{n:>6} steps ({size} KB): load_workflow {load:.3f} s median, "
                f"(jsonschema alone, the path of small or invalid files: {validation:.3f} s)"
            )
        smallest, largest = min(options.sizes), max(options.sizes)
        ratio = statistics.median(loads[largest]) / statistics.median(loads[smallest])
        print(f"ratio {largest}/{smallest}: {ratio:.1f}x (sizes ratio {largest / smallest:g}x)")


if __name__ == "__main__":
    main()
