"""What the live terminal view costs: `--ui live` against `--ui quiet`, both on a terminal.

    python bench/bench_live.py [--rounds 7] [--quick] [--steps 1000]

Runs `wfrun run flat 1000 -j 8` (1000 `true` steps) with stdout and stderr on the slave side of
a pseudo-terminal (TERM=xterm-256color, 120 x 40), a thread draining the master side the way a
terminal emulator would, so the live view really renders and `isatty()` is true. The two modes
are alternated round by round. Target (issue 15): live costs at most 5% more wall time than
quiet.
"""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import struct
import subprocess
import tempfile
import termios
import threading
import time
from pathlib import Path

import benchlib as bl
from workloads import generate

COLUMNS, LINES = 120, 40


def drain(master: int, counter: list[int]) -> None:
    """Read the terminal's output until the slave side is gone (EIO) — a terminal that keeps up."""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        counter[0] += len(data)


def run_on_pty(argv: list[str], rendered: list[int]) -> float:
    """Wall seconds of `argv` with a terminal as stdout/stderr; adds the bytes it drew."""
    master, slave = pty.openpty()
    # The size a real terminal reports through TIOCGWINSZ; rich asks it before $COLUMNS.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    env = bl.CHILD_ENV | {"TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
    env.pop("NO_COLOR", None)
    counter = [0]
    reader = threading.Thread(target=drain, args=(master, counter), daemon=True)
    reader.start()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    code = proc.wait()
    elapsed = time.perf_counter() - started
    os.close(slave)  # the reader sees EIO once the child's copies are closed too
    reader.join(timeout=5)
    os.close(master)
    if code != 0:
        bl.FAILURES.append(f"exit {code}: {' '.join(argv)}")
    rendered.append(counter[0])
    return elapsed


def main() -> None:
    p = bl.parser(__doc__ or "")
    p.add_argument("--steps", type=int, default=1000)
    args = p.parse_args()
    rounds = bl.rounds_of(args)
    bl.warn_if_busy()
    report = bl.Report("bench_live", "wfrun live view vs --ui quiet, under a pty", rounds)
    script = bl.wfrun_script()
    rendered: dict[str, list[int]] = {"live": [], "quiet": []}
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-live-") as tmp:
        root = Path(tmp)
        files, _ = generate("flat", (args.steps,), root / "flat")
        runs = iter(range(1_000_000))

        def case(ui: str) -> bl.Case:
            def run() -> float:
                logs = root / "logs" / str(next(runs))
                argv = [*script, "run", str(files["yaml"]), "-j", "8", "--ui", ui]
                elapsed = run_on_pty([*argv, "--log-dir", str(logs)], rendered[ui])
                shutil.rmtree(logs, ignore_errors=True)
                return elapsed

            return run

        cases = {
            f"--ui live, flat {args.steps}": case("live"),
            f"--ui quiet, flat {args.steps}": case("quiet"),
        }
        s = bl.alternate(cases, rounds, label="live")
    report.keep(s)
    live = bl.median(s[f"--ui live, flat {args.steps}"])
    quiet = bl.median(s[f"--ui quiet, flat {args.steps}"])
    paired = bl.paired(
        s[f"--ui live, flat {args.steps}"], s[f"--ui quiet, flat {args.steps}"], lambda a, b: a / b
    )
    report.add(
        bl.Row(
            f"live view overhead, flat {args.steps} x true, -j 8",
            f"{(live / quiet - 1) * 100:+.1f}% ({bl.fmt_s(live)} vs {bl.fmt_s(quiet)})",
            "≤ +5%",
            live / quiet <= 1.05,
            note=f"median of per-round ratios: {(paired - 1) * 100:+.1f}%",
        ),
        bl.Row(
            "bytes drawn on the terminal per run (median)",
            f"live {bl.median(rendered['live']) / 1024:.0f} KiB, "
            f"quiet {bl.median(rendered['quiet']) / 1024:.1f} KiB",
            note="shows the live view did render",
        ),
    )
    bl.publish(report)


if __name__ == "__main__":
    main()
