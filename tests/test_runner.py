"""The Python API of SPEC §7, on a real sample, and the report it produces."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from wfrun import WorkflowRunner, load_workflow, make_plan
from wfrun.schemas import report_schema

SAMPLES = Path(__file__).parent.parent / "sample-workflows"


def test_the_api_of_the_specification(tmp_path: Path) -> None:
    wf = load_workflow(SAMPLES / "complex-parallel.yaml")
    result = WorkflowRunner(log_dir=tmp_path).execute(wf, parallel_enabled=True, max_concurrency=8)
    assert result.success
    assert result.parallel_stats is not None
    assert result.parallel_stats.total_groups == 4
    assert 2 <= result.parallel_stats.max_concurrent_steps <= 8
    assert 0 < result.parallel_stats.resource_utilization["cpu"] <= 1
    assert result.parallel_stats.resources["database"].peak == 1
    deploy = result.step_results["deploy"]
    assert deploy.parallel_group == 3
    assert deploy.execution_time is not None and deploy.execution_time >= 250  # ms
    report = result.to_dict()
    assert report["stepResults"]["deploy"]["parallelGroup"] == 3
    assert report["parallelStats"]["criticalPath"][-1] == "deploy"
    jsonschema.Draft7Validator(report_schema()).validate(report)
    on_disk = json.loads((tmp_path / result.run_id / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))


def test_result_times_and_model_records_are_as_the_readme_says() -> None:
    import wfrun

    wf = load_workflow(SAMPLES / "complex-parallel.yaml")
    deploy = WorkflowRunner().execute(wf).step_results["deploy"]
    assert deploy.start_time is not None and deploy.end_time is not None
    assert deploy.duration == deploy.end_time - deploy.start_time < 60  # seconds
    assert deploy.execution_time == round(deploy.duration * 1000)  # whole milliseconds
    step = wf.step("deploy")
    renamed = step._replace(name="ship")
    assert renamed.name == "ship" and step.name != "ship"  # a copy: the model does not change
    assert renamed == step._replace(name="ship") and renamed != step  # compared by value
    assert step.index == wf.steps.index(step)  # the position in the file
    assert isinstance(step, tuple)
    assert dir(wfrun) == sorted(wfrun.__all__)


def test_sequential_runs_have_no_parallel_stats_and_the_report_still_validates() -> None:
    wf = load_workflow(SAMPLES / "error-handling.yaml")
    result = WorkflowRunner().execute(wf, parallel_enabled=False)
    assert result.success  # optional-step fails, but continueOnError allows it
    assert result.parallel_stats is None and result.max_concurrency == 1
    assert result.step_results["optional-step"].allowed_failure
    jsonschema.Draft7Validator(report_schema()).validate(result.to_dict())


def test_the_workflow_decides_when_the_run_does_not() -> None:
    wf = load_workflow(SAMPLES / "workflow-level-parallel.yaml")
    assert make_plan(wf).max_concurrency == 4
    result = WorkflowRunner().execute(wf)
    assert result.parallel and result.max_concurrency == 4
    assert result.parallel_stats is not None
    assert result.parallel_stats.max_concurrent_steps == 3


def test_the_core_never_imports_the_terminal_libraries() -> None:
    import subprocess
    import sys

    core = [
        "wfrun.model",
        "wfrun.loader",
        "wfrun.planner",
        "wfrun.dispatch",
        "wfrun.scheduler",
        "wfrun.runner",
        "wfrun.stats",
        "wfrun.history",
        "wfrun.report_files",
        "wfrun.executors.routing",
        "wfrun.executors.dry_run",
    ]
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {core!r}]; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'typer'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
