"""Why a step waits, in the words the live view and the report use."""

from __future__ import annotations

import pytest

from wfrun.events import WaitKind, WaitReason


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (WaitReason(WaitKind.DEPENDENCY, held_by=("build-frontend",)), "needs build-frontend"),
        (
            WaitReason(WaitKind.POOL, "database", 1, 1, ("prepare-database",)),
            "pool database 1/1 held by prepare-database",
        ),
        (WaitReason(WaitKind.POOL, "cpu", 0, 2), "pool cpu 0/2"),
        (WaitReason(WaitKind.GLOBAL_CAP, in_use=8, capacity=8), "global cap 8/8"),
        (WaitReason(WaitKind.RUNS_ALONE, capacity=1), "runs alone"),
        (
            WaitReason(WaitKind.RUNS_ALONE, in_use=3, capacity=2),
            "runs with at most 2 steps (3 running)",
        ),
        (WaitReason(WaitKind.RUNS_ALONE, capacity=1, limit_step="migrate"), "migrate runs alone"),
        (
            WaitReason(WaitKind.RUNS_ALONE, capacity=2, limit_step="lim"),
            "lim allows at most 2 running",
        ),
        (WaitReason(WaitKind.STOPPING), "run is stopping"),
    ],
)
def test_wait_reasons_read_as_the_view_shows_them(reason: WaitReason, text: str) -> None:
    assert str(reason) == text
