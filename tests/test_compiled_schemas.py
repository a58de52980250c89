"""The schema validators compiled into wfrun (wfrun/compiled_schemas/): generated from the schema
and identical to what the script writes, free of fastjsonschema at run time, and of the same
verdict as jsonschema, which explains the invalid documents."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest
import yaml
from fuzzing import workflow_values
from hypothesis import HealthCheck, given, settings

from wfrun.compiled_schemas import agents_file_valid, workflow_valid
from wfrun.schemas import agents_file_schema, workflow_schema

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "compile_schemas.py"
GENERATED = ("workflow.py", "agents_file.py")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compile_schemas", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", GENERATED)
def test_the_committed_module_is_exactly_what_the_script_generates(name: str) -> None:
    committed = (ROOT / "wfrun" / "compiled_schemas" / name).read_text(encoding="utf-8")
    assert _script().generate(name) == committed, (
        f"wfrun/compiled_schemas/{name} is stale: run python scripts/compile_schemas.py"
    )


def test_the_script_check_mode_agrees() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (0, "")


@pytest.mark.parametrize("name", GENERATED)
def test_the_generated_code_imports_nothing_of_fastjsonschema(name: str) -> None:
    tree = ast.parse((ROOT / "wfrun" / "compiled_schemas" / name).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= {"re", "wfrun"}


def test_validate_works_without_fastjsonschema_or_jsonschema_for_a_valid_file() -> None:
    # Both blocked: importing either raises ImportError, so passing proves neither is needed.
    code = (
        "import sys\n"
        "sys.modules['fastjsonschema'] = None\n"
        "sys.modules['jsonschema'] = None\n"
        "from wfrun.loader import load_workflow\n"
        f"wf = load_workflow({str(ROOT / 'sample-workflows' / 'demo.yaml')!r})\n"
        "print(len(wf.steps))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0


_WORKFLOW_JSONSCHEMA = jsonschema.Draft7Validator(workflow_schema())
_AGENTS_JSONSCHEMA = jsonschema.Draft7Validator(agents_file_schema())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflow_values())
def test_the_compiled_workflow_check_agrees_with_jsonschema(document: object) -> None:
    # The compiled verdict is final for a valid document: it must never accept what jsonschema
    # rejects (and a document it rejects is explained by jsonschema, so it should agree there too).
    assert workflow_valid(document) == _WORKFLOW_JSONSCHEMA.is_valid(document)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflow_values())
def test_the_compiled_agents_check_agrees_with_jsonschema(document: object) -> None:
    agents = {"agents": document.get("agents")} if isinstance(document, dict) else document
    assert agents_file_valid(agents) == _AGENTS_JSONSCHEMA.is_valid(agents)


def _yaml_documents() -> list[Path]:
    return sorted(
        [
            *(ROOT / "tests" / "workflows").rglob("*.yaml"),
            *(ROOT / "sample-workflows").rglob("*.yaml"),
        ]
    )


@pytest.mark.parametrize("path", _yaml_documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_sample_and_test_file_gets_the_same_verdict(path: Path) -> None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        pytest.skip("not YAML: the schema never sees it")
    assert workflow_valid(data) == _WORKFLOW_JSONSCHEMA.is_valid(data)
    if isinstance(data, dict) and set(data) == {"agents"}:
        assert agents_file_valid(data) == _AGENTS_JSONSCHEMA.is_valid(data)
