"""The dispatcher stepped by hand: no threads, no clock, no processes."""

from __future__ import annotations

import random

from builders import step, workflow

from wfrun.dispatch import Completion, Dispatcher
from wfrun.events import WaitKind
from wfrun.model import Workflow
from wfrun.planner import make_plan
from wfrun.results import StepStatus


def dispatcher(wf: Workflow, parallel: bool = True, keep_going: bool = False) -> Dispatcher:
    return Dispatcher(make_plan(wf, parallel=parallel), keep_going=keep_going)


def test_steps_start_as_soon_as_their_own_dependencies_are_done() -> None:
    # b depends on a only; c is slow and unrelated. b must not wait for c (no level barrier).
    d = dispatcher(workflow(step("a"), step("c"), step("b", ("a",)), step("x", ("b", "c"))))
    assert sorted(d.startable()) == ["a", "c"]
    effects = d.finish("a", Completion.SUCCEEDED)
    assert effects.ready == ["b"]
    assert d.startable() == ["b"]
    assert d.why("x") is not None and str(d.why("x")) == "needs b, c"


def test_global_cap_is_never_exceeded_and_says_why() -> None:
    d = dispatcher(workflow(*(step(f"s{i}") for i in range(5)), cap=2))
    assert d.startable() == ["s0", "s1"]
    assert d.startable() == []
    reason = d.why("s2")
    assert reason is not None and reason.kind is WaitKind.GLOBAL_CAP
    assert str(reason) == "global cap 2/2"
    d.finish("s0", Completion.SUCCEEDED)
    assert d.startable() == ["s2"]
    assert len(d.running) == 2


def test_pool_capacity_and_holders_in_the_reason() -> None:
    wf = workflow(
        step("db1", pools={"database": 1}),
        step("db2", pools={"database": 1}),
        step("free"),
        pools={"database": 1},
    )
    d = dispatcher(wf)
    assert d.startable() == ["db1", "free"]
    assert str(d.why("db2")) == "pool database 1/1 held by db1"
    assert d.pool_usage() == {"database": (1, 1)}
    d.finish("db1", Completion.SUCCEEDED)
    assert d.startable() == ["db2"]


def test_a_step_waiting_for_one_pool_never_blocks_other_pools() -> None:
    wf = workflow(
        step("c1", pools={"cpu": 1}),
        step("c2", pools={"cpu": 1}),
        step("n1", pools={"net": 1}),
        step("plain"),
        pools={"cpu": 1, "net": 1},
    )
    d = dispatcher(wf)
    assert d.startable() == ["c1", "n1", "plain"]


def test_weighted_request_takes_all_units_together_and_is_not_overtaken() -> None:
    wf = workflow(
        step("one", pools={"cpu": 1}),
        step("big", ("one0",), pools={"cpu": 2, "mem": 1}),
        step("small", ("one0",), pools={"cpu": 1}),
        step("one0"),
        pools={"cpu": 2, "mem": 1},
        cap=8,
    )
    d = Dispatcher(make_plan(wf, parallel=True, max_concurrency=8))
    assert sorted(d.startable()) == ["one", "one0"]
    d.finish("one0", Completion.SUCCEEDED)
    # big needs 2 cpu, only 1 is free; small would fit, but big is ahead of it: no overtaking.
    assert d.startable() == []
    assert str(d.why("big")) == "pool cpu 1/2 held by one"
    assert d.why("small") is not None and d.why("small").pool == "cpu"  # type: ignore[union-attr]
    assert d.pool_usage()["mem"] == (0, 1)  # nothing is taken partially
    d.finish("one", Completion.SUCCEEDED)
    assert d.startable() == ["big"]
    assert d.pool_usage() == {"cpu": (2, 2), "mem": (1, 1)}
    d.finish("big", Completion.SUCCEEDED)
    assert d.startable() == ["small"]


def test_runs_alone_waits_for_a_drain_and_then_runs_alone() -> None:
    wf = workflow(step("a"), step("b"), step("alone", enabled=False), step("c"), cap=4)
    d = dispatcher(wf)
    assert d.startable() == ["a", "b"]
    assert str(d.why("alone")) == "runs alone"
    assert str(d.why("c")) == "alone runs alone"  # reserved: c may not overtake
    d.finish("a", Completion.SUCCEEDED)
    assert d.startable() == []
    d.finish("b", Completion.SUCCEEDED)
    assert d.startable() == ["alone"]
    assert str(d.why("c")) == "alone runs alone"
    d.finish("alone", Completion.SUCCEEDED)
    assert d.startable() == ["c"]


def test_max_concurrency_n_tolerates_n_running_itself_included() -> None:
    wf = workflow(step("lim", limit=2), step("a"), step("b"), step("c"), cap=4)
    d = dispatcher(wf)
    assert d.startable() == ["lim", "a"]  # lim tolerates 2 running, itself included
    assert str(d.why("b")) == "lim allows at most 2 running"
    d.finish("lim", Completion.SUCCEEDED)
    assert d.startable() == ["b", "c"]


def test_sequential_mode_runs_a_deterministic_topological_order() -> None:
    wf = workflow(step("z", ("b",)), step("a"), step("b"), step("c", ("a",)))
    d = dispatcher(wf, parallel=False)
    order = []
    while d.is_active():
        (sid,) = d.startable()
        order.append(sid)
        d.finish(sid, Completion.SUCCEEDED)
    assert order == ["a", "b", "z", "c"]


def test_parallel_mode_puts_the_critical_path_first() -> None:
    wf = workflow(step("short"), step("long1"), step("long2", ("long1",)), cap=1)
    d = dispatcher(wf)
    assert d.startable() == ["long1"]


def test_fatal_failure_skips_dependents_and_stops_the_run() -> None:
    wf = workflow(
        step("a"), step("slow"), step("b", ("a",)), step("c", ("b",)), step("later", ("slow",))
    )
    d = dispatcher(wf)
    assert d.startable() == ["a", "slow"]
    effects = d.finish("a", Completion.FATAL_FAILURE)
    assert sorted(s.step_id for s in effects.skipped) == ["b", "c"]
    assert {s.reason for s in effects.skipped} == {"dependency 'a' failed"}
    assert d.stopping and d.is_active()  # slow still runs and finishes
    d.finish("slow", Completion.SUCCEEDED)
    assert d.startable() == []
    assert not d.is_active()
    left = d.abandon()
    assert [(s.step_id, s.status) for s in left] == [("later", StepStatus.SKIPPED)]


def test_keep_going_runs_independent_steps() -> None:
    wf = workflow(step("a"), step("b", ("a",)), step("x"), step("y", ("x",)), cap=1)
    d = dispatcher(wf, parallel=False, keep_going=True)
    assert d.startable() == ["a"]
    effects = d.finish("a", Completion.FATAL_FAILURE)
    assert [s.step_id for s in effects.skipped] == ["b"]
    assert d.startable() == ["x"]
    d.finish("x", Completion.SUCCEEDED)
    assert d.startable() == ["y"]


def test_allowed_failure_lets_dependents_run() -> None:
    d = dispatcher(workflow(step("a"), step("b", ("a",))))
    d.startable()
    effects = d.finish("a", Completion.ALLOWED_FAILURE)
    assert effects.ready == ["b"] and not d.stopping


def test_isolate_errors_false_cancels_running_siblings_and_skips_unstarted_ones() -> None:
    wf = workflow(
        step("root"),
        step("sib", ("root",)),
        step("bad", ("root",), isolate_errors=False),
        step("queued", ("root",)),
        step("after", ("sib",)),
        step("other"),
    )
    d = Dispatcher(make_plan(wf, max_concurrency=2), keep_going=True)
    assert d.startable() == ["root", "other"]
    d.finish("root", Completion.SUCCEEDED)
    d.finish("other", Completion.SUCCEEDED)
    assert d.startable() == ["sib", "bad"]
    effects = d.finish("bad", Completion.FATAL_FAILURE)
    assert [(c.step_id, c.status) for c in effects.cancel] == [("sib", StepStatus.CANCELLED)]
    assert "isolateErrors: false" in effects.cancel[0].reason
    assert [s.step_id for s in effects.skipped] == ["queued"]
    effects = d.finish("sib", Completion.CANCELLED)
    assert [(s.step_id, s.reason) for s in effects.skipped] == [
        ("after", "dependency 'sib' was cancelled")
    ]
    assert not d.is_active()


def test_wait_changes_are_reported_once_per_change() -> None:
    wf = workflow(*(step(f"s{i}") for i in range(4)), cap=1)
    d = dispatcher(wf, parallel=False)
    d.startable()
    first = d.take_wait_changes()
    assert sorted(sid for sid, _ in first) == ["s1", "s2", "s3"]  # order is not promised
    assert d.take_wait_changes() == []
    d.finish("s0", Completion.SUCCEEDED)
    d.startable()
    assert d.take_wait_changes() == []  # still the global cap: nothing new to say


def test_random_runs_respect_every_limit() -> None:
    rng = random.Random(7)
    pools = {"cpu": 2, "db": 1, "net": 3}
    steps = []
    for i in range(300):
        deps = tuple(f"s{d}" for d in rng.sample(range(i), min(i, rng.randint(0, 3))))
        req = {p: rng.randint(1, c) for p, c in pools.items() if rng.random() < 0.3}
        limit = rng.choice([None, None, None, 1, 2, 3])
        steps.append(step(f"s{i}", deps, pools=req, limit=limit))
    wf = workflow(*steps, pools=pools, cap=5)
    d = dispatcher(wf)
    by_id = {s.id: s for s in wf.steps}
    finished: set[str] = set()
    while d.is_active():
        for sid in d.startable():
            assert all(dep in finished for dep in by_id[sid].depends_on)
        running = d.running
        assert 0 < len(running) <= 5
        for pool, (used, cap) in d.pool_usage().items():
            assert used == sum(by_id[r].parallel.resources.get(pool, 0) for r in running) <= cap
        for r in running:
            limit = by_id[r].parallel.effective_max_concurrency
            assert limit is None or len(running) <= limit
        victim = rng.choice(running)
        d.finish(victim, Completion.SUCCEEDED)
        finished.add(victim)
    assert finished == set(by_id)


def test_a_full_pool_stays_the_reason_when_the_cap_is_also_reached() -> None:
    wf = workflow(
        step("db1", pools={"db": 1}),
        step("free1"),
        step("db2", pools={"db": 1}),
        step("free2"),
        pools={"db": 1},
        cap=2,
    )
    d = dispatcher(wf)
    assert d.startable() == ["db1", "free1"]
    d.take_wait_changes()
    assert str(d.why("db2")) == "pool db 1/1 held by db1"  # not "global cap 2/2"
    assert str(d.why("free2")) == "global cap 2/2"
    d.finish("free1", Completion.SUCCEEDED)
    assert d.startable() == ["free2"]
    assert d.take_wait_changes() == []  # db2 still waits for the pool: nothing new to say


def test_a_changed_reason_is_told_once_for_the_whole_class() -> None:
    wf = workflow(
        step("db1", pools={"db": 1}),
        step("f1"),
        step("f2"),
        *(step(f"db{i}", pools={"db": 1}) for i in range(2, 5)),
        pools={"db": 1},
        cap=2,
    )
    d = dispatcher(wf)
    assert d.startable() == ["db1", "f1"]
    first = d.take_wait_changes()
    assert sorted(sid for sid, _ in first) == ["db2", "db3", "db4", "f2"]  # each new waiter
    d.finish("db1", Completion.SUCCEEDED)
    assert d.startable() == ["f2"]  # the pool is free now, but the cap is full again
    changes = d.take_wait_changes()
    assert [(sid, str(reason)) for sid, reason in changes] == [("db2", "global cap 2/2")]
    assert str(d.why("db4")) == "global cap 2/2"  # the class shares the reason
