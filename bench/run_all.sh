#!/usr/bin/env bash
# Run every wfrun benchmark in sequence; results land in bench/results/ (gitignored).
#
#   PYTHON=/path/to/venv/bin/python bench/run_all.sh [--rounds N] [--quick]
#
# The arguments go to every script. Use the interpreter wfrun is installed in: the benchmarks
# call `wfrun` next to it (or `python -m wfrun`). Run on an idle machine: the scripts alternate
# their cases and quote medians, but a busy machine still widens the spread.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

echo "machine: $(nproc) CPUs; $(uptime)"
for script in bench_startup bench_dispatch bench_run bench_live; do
    echo
    echo "== $script"
    "$PY" "bench/$script.py" "$@"
done

# Benchmarks kept by other parts of the project, run with their defaults.
echo
echo "== bench_executor"
"$PY" bench/bench_executor.py
echo
echo "== bench_load"
"$PY" bench/bench_load.py
