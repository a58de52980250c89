"""A step that counts its runs: `attempt.py NAME OUT [FAIL_CODE FAILURES] [SLEEP]`.

Each run appends `start end` (wall-clock seconds) to OUT/NAME.runs, and exits FAIL_CODE while
fewer than FAILURES runs came before it (so `1 2` fails twice, then succeeds). SLEEP seconds
pass between start and end; `hang-first` sleeps an hour on the first run only (the one that
leaves OUT/NAME.started), which a test kills.
"""

import sys
import time
from pathlib import Path

name, out = sys.argv[1], Path(sys.argv[2])
code = int(sys.argv[3]) if len(sys.argv) > 3 else 0
failures = int(sys.argv[4]) if len(sys.argv) > 4 else 0
sleep = sys.argv[5] if len(sys.argv) > 5 else "0"
runs = out / f"{name}.runs"
before = len(runs.read_text().splitlines()) if runs.exists() else 0
start = time.time()
print(f"{name}: run {before + 1}", flush=True)
if sleep == "hang-first":
    marker = out / f"{name}.started"
    if not marker.exists():
        marker.write_text(str(start))
        time.sleep(3600)
elif float(sleep):
    time.sleep(float(sleep))
with open(runs, "a") as handle:
    handle.write(f"{start} {time.time()}\n")
sys.exit(code if before < failures else 0)
