"""`wfrun plan` as text, Mermaid and Graphviz."""

from __future__ import annotations

import io
import re
import time

from builders import plan_of, step
from rich.console import Console

from wfrun.planner import Plan
from wfrun.reporters.views import plan_dot, plan_mermaid, plan_view

POOLS = {"cpu": 2, "database": 1}

PLAN = plan_of(
    step("setup"),
    step("migrate", ("setup",), {"database": 1}, enabled=False),
    step("build", ("setup",), {"cpu": 2}, limit=3),
    step("deploy", ("migrate", "build")),
    name="CI",
    pools=POOLS,
)


def render(plan: Plan) -> str:
    console = Console(file=io.StringIO(), width=100)
    console.print(plan_view(plan))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def row(out: str, sid: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(sid + " "))


def test_a_table_per_group_with_pools_limits_and_dependencies() -> None:
    out = render(PLAN)
    assert [line.rstrip() for line in out.splitlines() if line.startswith("group ")] == [
        "group 0",
        "group 1",
        "group 2",
    ]
    assert "database 1" in row(out, "migrate") and "runs alone" in row(out, "migrate")
    assert "cpu 2" in row(out, "build") and "at most 3 running" in row(out, "build")
    assert "migrate, build" in row(out, "deploy")


def test_pools_mode_and_critical_path() -> None:
    out = render(PLAN)
    assert "4 steps in 3 groups · parallel, cap 4" in out
    assert re.search(r"^cpu\s+2\s+1$", out, re.MULTILINE)
    assert re.search(r"^database\s+1\s+1$", out, re.MULTILINE)
    assert "critical path: setup → migrate → deploy (3 steps)" in out


def test_sequential_mode_and_a_cap() -> None:
    assert "sequential (cap 1)" in render(
        plan_of(step("a"), name="CI", pools=POOLS, parallel=False)
    )
    assert "parallel, cap 8" in render(
        plan_of(step("a"), name="CI", pools=POOLS, max_concurrency=8)
    )


def test_critical_path_with_durations_of_the_previous_run() -> None:
    plan = plan_of(
        step("a"), step("b", ("a",)), name="CI", pools=POOLS, durations={"a": 2.0, "b": 3.5}
    )
    assert "a → b (about 5.5s, from earlier runs)" in render(plan)


def test_mermaid_has_a_subgraph_per_group_and_the_edges() -> None:
    text = plan_mermaid(PLAN)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '  subgraph g1["group 1"]' in lines
    assert '    s1["migrate"]' in lines
    assert "  s1 --> s3" in lines and "  s2 --> s3" in lines
    assert text.count("subgraph") == 3 and lines.count("  end") == 3


def test_mermaid_labels_are_quoted_and_keywords_are_not_node_ids() -> None:
    named = step("graph", ("end",))._replace(name='Say "hi" <b>#1</b>')
    text = plan_mermaid(plan_of(step("end"), named, name="CI", pools=POOLS))
    assert '    s0["end"]' in text and "  s0 --> s1" in text
    assert '    s1["graph: Say #quot;hi#quot; #lt;b#gt;#35;1#lt;/b#gt;"]' in text


def test_dot_has_a_cluster_per_group_and_quotes_everything() -> None:
    named = step("b", ("a-1",))._replace(name='Say "hi"')
    text = plan_dot(plan_of(step("a-1"), named, name='my "wf" \\ x', pools=POOLS))
    assert '    "b" [label="b: Say \\"hi\\""];' in text
    assert text.startswith('digraph "my \\"wf\\" \\\\ x" {')
    assert 'subgraph "cluster_0" {' in text and 'label="group 1";' in text
    assert '  "a-1" -> "b";' in text
    assert text.rstrip().endswith("}")


def test_terminal_escapes_in_names_are_shown_not_obeyed() -> None:
    hostile = "evil\x1b]0;pwned\x07"
    plan = plan_of(step("a")._replace(name=hostile), name=hostile)
    out = render(plan)
    assert "\x1b" not in out and "\x07" not in out
    assert out.startswith("evil\\x1b]0;pwned\\x07 · 1 step")
    assert "a (evil\\x1b]0;pwned\\x07)" in out


def test_a_group_too_wide_for_the_terminal_is_wrapped_in_its_columns() -> None:
    deps = tuple(f"dependency-number-{i}" for i in range(8))
    plan = plan_of(*(step(d) for d in deps), step("final", deps))
    console = Console(file=io.StringIO(), width=60)
    console.print(plan_view(plan))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert all(len(line) <= 60 for line in out.splitlines())
    assert all(d in out for d in deps)  # wrapped inside the "depends on" column, none lost
    assert "group 1" in out


def test_a_20000_step_chain_is_planned_as_text_in_seconds_not_minutes() -> None:
    chain = [step("s0")] + [step(f"s{i}", (f"s{i - 1}",)) for i in range(1, 20_000)]
    plan = plan_of(*chain)
    console = Console(file=io.StringIO(), width=100)
    started = time.perf_counter()
    console.print(plan_view(plan))
    assert time.perf_counter() - started < 20  # generous: it took 40 s
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "group 19999" in out and "s19999" in out
