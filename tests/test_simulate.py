"""`plan --simulate`: the real dispatcher on a virtual clock, its predictions and its advice."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import wfrun

from wfrun.loader import load_workflow
from wfrun.simulate import DurationSource, advise, simulate, step_durations

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from workloads import make_workload, write_workload

Write = Callable[..., Path]

POOL_BOUND = """\
parallel:
  defaultMaxConcurrency: 8
  resources: {cpu: 2}
steps:
""" + "".join(
    f"  - {{id: s{i}, config: {{command: 'true'}}, estimate: 1s, parallel: {{resource: cpu}}}}\n"
    for i in range(6)
)


def test_estimates_drive_the_real_dispatcher(write: Write) -> None:
    # Two chains: a = 3 x 300ms; b = 3 x 100ms then 3 x 300ms. The critical path is b's 1.2s;
    # a runner with barriers between levels would need 1.8s.
    steps = "".join(
        f"  - {{id: a{i}, config: {{command: 'true'}}, estimate: 300ms"
        + (f", dependsOn: [a{i - 1}]" if i else "")
        + "}\n"
        for i in range(3)
    )
    steps += "".join(
        f"  - {{id: b{i}, config: {{command: 'true'}}, estimate: {'100ms' if i < 3 else '300ms'}"
        + (f", dependsOn: [b{i - 1}]" if i else "")
        + "}\n"
        for i in range(6)
    )
    workflow = load_workflow(write("steps:\n" + steps))
    durations, sources = step_durations(workflow, None)
    assert set(sources.values()) == {DurationSource.ESTIMATE}
    predicted = simulate(workflow, durations, sources=sources)
    assert predicted.makespan == pytest.approx(1.2)
    starts = {s.step_id: s.start for s in predicted.steps}
    assert starts["b3"] == pytest.approx(0.3)  # not held back until level 3 of chain a ends
    assert predicted.bottleneck is None  # nothing waited: the chain itself is the limit


def test_pool_bound_prediction_and_advice_name_the_pool(write: Write) -> None:
    workflow = load_workflow(write(POOL_BOUND))
    durations, _ = step_durations(workflow, None)
    predicted = simulate(workflow, durations)
    assert predicted.makespan == pytest.approx(3.0)
    assert predicted.pools["cpu"].saturation == pytest.approx(1.0)
    assert predicted.pools["cpu"].wait_time == pytest.approx(2 * 1 + 2 * 2)  # 2 wait 1s, 2 wait 2s
    # The bottleneck as a run would name it: from the last step back through its waits, the
    # pool held the end up 2s (s4/s5 waited 0-2s; s2/s3's waits 0-1s lie inside that).
    assert predicted.bottleneck is not None
    assert (predicted.bottleneck.kind.value, predicted.bottleneck.name) == ("pool", "cpu")
    assert predicted.bottleneck.wait == pytest.approx(2.0)
    assert len(predicted.bottleneck.steps) == 2
    advice = advise(predicted)
    assert advice.change is not None and advice.change.pool == "cpu"
    assert advice.change.after > 2 and advice.saved > 0
    # Every change tried was a real simulation of the same workflow with that one change.
    tried = {(c.pool, c.after): t for c, t in advice.tried}
    assert tried[("cpu", 3)] == pytest.approx(2.0)
    assert tried[("cpu", 1)] == pytest.approx(6.0)
    assert tried[(None, 9)] == pytest.approx(3.0)


def test_a_bigger_change_that_saves_a_little_more_is_not_advised(write: Write) -> None:
    # cpu 3 ends at 1.01s, cpu 4 at 1.00s: within 2%, so the smaller change is the advice.
    text = "parallel:\n  defaultMaxConcurrency: 8\n  resources: {cpu: 2}\nsteps:\n" + "".join(
        f"  - {{id: s{i}, config: {{command: 'true'}}, estimate: {d}, "
        "parallel: {resource: cpu}}\n"
        for i, d in enumerate(["1s", "1s", "1s", "10ms"])
    )
    workflow = load_workflow(write(text))
    durations, _ = step_durations(workflow, None)
    advice = advise(simulate(workflow, durations))
    tried = {(c.pool, c.after): t for c, t in advice.tried}
    assert tried[("cpu", 4)] < tried[("cpu", 3)] <= tried[("cpu", 4)] * 1.02
    assert advice.change is not None and (advice.change.pool, advice.change.after) == ("cpu", 3)


def test_cap_bound_advice_names_the_cap(write: Write) -> None:
    steps = "".join(f"  - {{id: s{i}, config: {{command: 'true'}}}}\n" for i in range(6))
    workflow = load_workflow(write("parallel: {defaultMaxConcurrency: 2}\nsteps:\n" + steps))
    durations, sources = step_durations(workflow, None)
    assert set(sources.values()) == {DurationSource.DEFAULT}  # 1s each
    predicted = simulate(workflow, durations)
    assert predicted.makespan == pytest.approx(3.0)
    assert predicted.cap_saturation == pytest.approx(1.0)
    advice = advise(predicted)
    assert advice.change is not None and advice.change.pool is None
    assert advice.makespan < 3.0
    wide = wfrun("plan", str(write("steps:\n" + steps)), "--simulate", "-f", "json", "-j", "3")
    doc = json.loads(wide.stdout)
    assert doc["maxConcurrency"] == 3 and doc["makespan"] == 2000
    assert doc["cap"]["saturation"] == 1.0
    assert doc["bottleneck"]["kind"] == "cap" and doc["bottleneck"]["waitTime"] == 1000


def test_step_limits_hold_in_the_simulation(write: Write) -> None:
    steps = "".join(f"  - {{id: s{i}, config: {{command: 'true'}}}}\n" for i in range(3))
    steps += "  - {id: alone, config: {command: 'true'}, parallel: {enabled: false}}\n"
    workflow = load_workflow(write("steps:\n" + steps))
    predicted = simulate(workflow, {s.id: 1.0 for s in workflow.steps})
    alone = next(s for s in predicted.steps if s.step_id == "alone")
    for other in predicted.steps:
        if other.step_id != "alone":
            assert other.end <= alone.start or other.start >= alone.end
    assert predicted.makespan == pytest.approx(2.0)


def test_cli_says_when_no_change_helps(write: Write, workdir: Path) -> None:
    path = write(
        "steps:\n  - {id: a, config: {command: 'true'}, estimate: 2s}\n"
        "  - {id: b, config: {command: 'true'}, estimate: 3s, dependsOn: [a]}\n"
    )
    done = wfrun("plan", str(path), "--simulate", "--log-dir", str(workdir / "none"))
    assert done.returncode == 0, done.stderr
    assert "predicted makespan 5.0s" in done.stdout
    assert "no single change" in done.stdout
    assert "2 steps from estimate:" in done.stdout


def test_cli_text_and_json(write: Write, workdir: Path) -> None:
    path = write(POOL_BOUND)
    text = wfrun("plan", str(path), "--simulate", "--log-dir", str(workdir / "none"))
    assert text.returncode == 0, text.stderr
    assert "predicted makespan 3.0s" in text.stdout
    assert "pool cpu (2)  full 100% of the time" in text.stdout
    assert (
        "advice: pool cpu 2 → 3 shortens the predicted makespan by 1.0s (3.0s → 2.0s)"
        in text.stdout
    )
    assert "│" in text.stdout and "█" in text.stdout and "·" in text.stdout  # the timeline
    assert "waited 2.0s: pool cpu" in text.stdout
    assert "cap 8         full 0% of the time" in text.stdout
    assert "bottleneck    pool cpu: held up the run 2.0s (2 steps waited)" in text.stdout
    doc = json.loads(
        wfrun("plan", str(path), "--simulate", "-f", "json", "--log-dir", str(workdir)).stdout
    )
    assert doc["makespan"] == 3000
    assert doc["resources"]["cpu"] == {"capacity": 2, "saturation": 1.0, "waitTime": 6000}
    assert doc["advice"]["change"] == {"pool": "cpu", "from": 2, "to": 3}  # 4 is no faster
    assert doc["advice"]["saved"] == 1000
    assert {s["durationFrom"] for s in doc["steps"].values()} == {"estimate"}
    assert len(doc["steps"]) == 6


def test_simulate_refuses_graph_formats(write: Write) -> None:
    done = wfrun("plan", str(write(POOL_BOUND)), "--simulate", "-f", "dot")
    assert done.returncode == 2
    assert "--simulate prints text or json" in done.stderr


# -- against real runs of the benchmark shapes ------------------------------------------------

SHAPES = [
    ("stagger", (3, 0.3, 0.1), 8),  # critical path 1.2s, against 1.8s with level barriers
    ("pool", (6, 0.2), 8),  # six 0.2s steps through a pool of 2: 0.6s
    ("diamond", (4, 0.2), 2),  # 0.2s, then four 0.2s steps two at a time, then 0.2s: 0.8s
]


@pytest.mark.parametrize(("shape", "args", "jobs"), SHAPES, ids=[s[0] for s in SHAPES])
def test_prediction_within_ten_percent_of_a_real_run(
    tmp_path: Path, shape: str, args: tuple[float, ...], jobs: int
) -> None:
    """The simulator, given the step times of a real run, predicts that run's makespan: the
    scheduling (cap, pool, dependencies, order) is what is checked, not the machine's noise
    from one run to the next, which on a shared machine alone can exceed 10%."""
    files = write_workload(make_workload(shape, args, jobs=jobs), tmp_path / shape)
    logs, report = tmp_path / "logs", tmp_path / "report.json"
    run = ("run", str(files["yaml"]), "--ui", "quiet", "--log-dir", str(logs))
    done = wfrun(*run, "--report", str(report))
    assert done.returncode == 0, done.stderr
    real = json.loads(report.read_text())["executionTime"]
    predicted = json.loads(
        wfrun("plan", str(files["yaml"]), "--simulate", "-f", "json", "--log-dir", str(logs)).stdout
    )
    assert {s["durationFrom"] for s in predicted["steps"].values()} == {"history"}
    print(f"{shape}: predicted {predicted['makespan']} ms, real {real} ms")
    assert abs(predicted["makespan"] - real) <= 0.1 * real, (predicted["makespan"], real)
    if shape == "pool":
        assert predicted["advice"]["change"]["pool"] == "cpu"


def test_a_sequential_simulation_names_no_bottleneck(write: Write) -> None:
    done = wfrun("plan", str(write(POOL_BOUND)), "--simulate", "--no-parallel", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bottleneck"] is None
