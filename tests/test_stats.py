"""Statistics measured from the steps' own start and end times."""

from __future__ import annotations

from builders import plan_of, result, step

from wfrun.results import StepStatus
from wfrun.stats import parallel_stats, peak
from wfrun.waits import WaitKind, WaitReason


def test_peak_counts_an_end_before_a_start_at_the_same_instant() -> None:
    assert peak([(0.0, 1.0, 1), (1.0, 2.0, 1)]) == 1
    assert peak([(0.0, 2.0, 1), (1.0, 3.0, 2), (1.5, 1.8, 1)]) == 4


def test_statistics_of_a_run() -> None:
    plan = plan_of(
        step("a", pools={"cpu": 1}),
        step("b", pools={"cpu": 1}),
        step("c", ("a",)),
        step("never", ("c",)),
        pools={"cpu": 2},
    )
    results = {
        "a": result(plan, "a", StepStatus.SUCCEEDED, 0.0, 1.0, ready_time=0.0),
        "b": result(
            plan,
            "b",
            StepStatus.SUCCEEDED,
            0.5,
            1.0,
            ready_time=0.0,
            wait=WaitReason(WaitKind.POOL, "cpu", 2, 2, ("a", "x")),
        ),
        "c": result(plan, "c", StepStatus.SUCCEEDED, 1.0, 3.0, ready_time=1.0),
        "never": result(plan, "never", StepStatus.SKIPPED, None, None),
    }
    stats = parallel_stats(plan, results, wall=4.0)
    assert stats.total_groups == 3
    assert stats.max_concurrent_steps == 2
    assert stats.critical_path == ["a", "c"] and stats.critical_path_time == 3.0
    assert stats.sequential_time == 3.5 and stats.speedup == 3.5 / 4.0
    cpu = stats.resources["cpu"]
    assert (cpu.capacity, cpu.peak, cpu.busy_time, cpu.wait_time) == (2, 2, 1.5, 0.5)
    assert stats.resource_utilization["cpu"] == 1.5 / (2 * 4.0)
