"""Where the CPU time of a one-step `wfrun run --ui quiet` goes beyond `import typer, rich.console`.

    python bench/startup_parts.py [--rounds 11] [--root DIR]

Each round is a fresh interpreter that imports typer and rich.console (the baseline of
`bench_startup.py --first-use`), then times, in turn and in CPU time of the process: the
third-party and standard modules a run adds, wfrun's own modules (and, within them, the
creation of their dataclasses), typer converting the run command, and the run itself. The
collector is paused, as `wfrun.__main__` pauses it. Prints the minimum and median of each part
over the rounds; `--root DIR` measures the wfrun package in DIR (an earlier checkout, say).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib as bl

ONE_STEP = "steps:\n  - id: only\n    config: {command: 'true'}\n"

PROBE = r"""
import gc; gc.disable()
import json as _json, sys, time
clock = time.process_time
parts = {}
def timed(name, start):
    parts[name] = (clock() - start) * 1000
import typer, rich.console
t = clock(); import yaml; timed("PyYAML", t)
t = clock(); import hashlib; timed("hashlib", t)
t = clock(); import ctypes; timed("ctypes", t)
t = clock(); import json, tempfile, queue, graphlib, shlex
timed("json, tempfile, queue, graphlib, shlex", t)
import dataclasses
process_class, made = dataclasses._process_class, [0.0]
def counting(cls, *args):
    t = clock(); made_cls = process_class(cls, *args); made[0] += clock() - t; return made_cls
dataclasses._process_class = counting
t = clock()
import wfrun.cli, wfrun.loader, wfrun.planner, wfrun.runner, wfrun.reporters.plain
import wfrun.executors.routing, wfrun.executors.local_runner, wfrun.compiled_schemas.workflow
import wfrun.report_files, wfrun.stats, wfrun.journal
timed("wfrun's modules", t)
parts["  of which creating dataclasses"] = made[0] * 1000
import typer.main
app_for = getattr(wfrun.cli, "_app_for", lambda args: wfrun.cli.app)
t = clock(); typer.main.get_command(app_for(["run"])); timed("typer converting the run command", t)
sys.argv = ["wfrun", *sys.argv[1:]]
t = clock()
try:
    wfrun.cli.main()
except SystemExit:
    pass
timed("the run (converting the command again, loading, running, the summary)", t)
print(_json.dumps(parts), file=sys.stderr)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--root", type=Path, help="the folder holding the wfrun package to measure")
    args = p.parse_args()
    env = dict(bl.CHILD_ENV)
    if args.root is not None:
        env["PYTHONPATH"] = str(args.root)
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="wfrun-startup-parts-") as tmp:
        one = Path(tmp) / "one.yaml"
        one.write_text(ONE_STEP, encoding="utf-8")
        argv = ["run", "--ui", "quiet", "--log-dir", str(Path(tmp) / "runs"), str(one)]
        for i in range(args.rounds + 1):
            done = subprocess.run(
                [sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True
            )
            if done.returncode != 0:
                sys.exit(done.stderr)
            if i:  # the first round warms the file cache and the bytecode
                rows.append(json.loads(done.stderr.strip().splitlines()[-1]))
    for name in rows[0]:
        values = [row[name] for row in rows]
        print(f"{name:72} {min(values):6.1f} {statistics.median(values):6.1f} ms (min, median)")


if __name__ == "__main__":
    main()
