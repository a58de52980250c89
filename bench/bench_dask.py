"""`--executor dask` on a local cluster against the local executor: per-step cost and makespan.

    python bench/bench_dask.py [--rounds 5] [--quick]

Every figure is a median of alternated rounds, compared within one call, the two executors on
the same files at -j 8:

- per-step cost: (t(flat 200) - t(flat 1)) / 199 of `wfrun run --ui quiet`, per executor; the
  one-step run carries start-up (and for dask, importing it and starting the in-process local
  cluster), so the slope is what each further `true` step costs.
- makespan: `stagger 5 0.2 0.01` (critical path 1.05 s) and `pool 200` (200 x `sleep 0.01` in a
  pool of 2: bound 1 s), each minus the same executor's one-step run.

Needs the dask extra (`pip install 'wfrun[dask]'`) in the interpreter that runs wfrun.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import benchlib as bl
from bench_run import JOBS, Bench
from workloads import generate

EXECUTORS = ("local", "dask")


def cases(b: Bench, key: str) -> dict[str, bl.Case]:
    return {f"{ex} {key}": b.run(key, "--executor", ex) for ex in EXECUTORS}


def per_step(b: Bench, report: bl.Report, s: dict[str, list[float]]) -> dict[str, float]:
    slopes = {
        ex: bl.paired(s[f"{ex} flat1"], s[f"{ex} flat200"], lambda a, c: (c - a) / 199)
        for ex in EXECUTORS
    }
    extra = slopes["dask"] - slopes["local"]
    report.add(
        bl.Row(
            "per-step cost, local executor (flat 200 of true, -j 8)",
            f"{slopes['local'] * 1e3:.1f} ms/step",
            note="slope from a one-step run: start-up cancels",
        ),
        bl.Row(
            "per-step cost, dask on a local cluster (1 worker, 8 threads)",
            f"{slopes['dask'] * 1e3:.1f} ms/step = {slopes['dask'] / slopes['local']:.1f}× local",
            note=f"{extra * 1e3:.1f} ms more per step, with 8 steps at once",
        ),
        bl.Row(
            "start-up, dask - local (one-step run)",
            bl.fmt_s(bl.paired(s["dask flat1"], s["local flat1"], lambda d, lo: d - lo)),
            note="importing dask and starting the in-process cluster",
        ),
    )
    return slopes


def makespans(b: Bench, report: bl.Report, s: dict[str, list[float]]) -> None:
    critical = float(b.meta["stagger"]["critical_path_s"])  # type: ignore[arg-type]
    bound = float(b.meta["pool200"]["pool_bound_s"])  # type: ignore[arg-type]
    for key, what, floor in (
        ("stagger", "stagger 5 0.2 0.01", f"critical path {critical:g} s"),
        ("pool200", "pool 200 x sleep 0.01, cpu=2", f"pool bound {bound:g} s"),
    ):
        limit = critical if key == "stagger" else bound
        for ex in EXECUTORS:
            span = bl.paired(s[f"{ex} {key}"], s[f"{ex} flat1"], lambda a, one: a - one)
            report.add(
                bl.Row(
                    f"{what}: {ex}, run - its one-step run",
                    f"{span:.3f} s = {span / limit:.2f}× {floor}",
                )
            )


def main() -> None:
    p = bl.parser(__doc__ or "", rounds=5)
    args = p.parse_args()
    rounds = bl.rounds_of(args)
    bl.warn_if_busy()
    title = "--executor dask (local cluster) vs the local executor"
    report = bl.Report("bench_dask", title, rounds)
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-dask-") as tmp:
        b = Bench(Path(tmp), peers=False)
        b.files["flat1"], b.meta["flat1"] = generate("flat", (1,), Path(tmp) / "flat1", jobs=JOBS)
        timed: dict[str, bl.Case] = {}
        for key in ("flat1", "flat200", "stagger", "pool200"):
            timed |= cases(b, key)
        s = bl.alternate(timed, rounds, label="dask")
        report.keep(s)
        slopes = per_step(b, report, s)
        makespans(b, report, s)
    extra = slopes["dask"] - slopes["local"]
    for share in (0.05, 0.01):
        report.add(
            bl.Row(
                f"step length at which dask's extra per-step cost is {share:.0%}",
                bl.fmt_s(extra / share),
                note="below it, the cluster's extra machines must win back the overhead",
            )
        )
    report.notes.append(
        "the local cluster's workers are threads of wfrun on the same machine: it runs the same "
        "processes on the same CPUs, so it can only add cost; a cluster of other machines adds "
        "their CPUs and a network round trip per message (a few ms on a LAN)."
    )
    bl.publish(report)


if __name__ == "__main__":
    main()
