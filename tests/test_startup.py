"""What the common commands import: start-up is most of the time of `wfrun validate` and of a
short run, so the modules only some cases need are imported for those cases only. Measured
with the real CLI under `python -X importtime`, which lists every module a process imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import cli_env

VALID = "steps:\n  - {id: a, config: {command: 'true'}}\n"
INVALID = "steps:\n  - {id: a, config: {command: 'true', timeout: 5}}\n"


def _imports(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "wfrun", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return done, modules


def _imported(modules: set[str], *names: str) -> list[str]:
    return sorted(m for m in modules for n in names if m == n or m.startswith(n + "."))


def test_validating_a_valid_file_does_not_import_jsonschema(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    done, modules = _imports("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert "wfrun.compiled_schemas.workflow" in modules  # the check did run
    unused = _imported(
        modules,
        "jsonschema",
        "fastjsonschema",
        "importlib.resources",  # the schema files are not read
        "decimal",  # the compiled schema's stand-in
        "rich",  # text output needs no terminal library
        "wfrun.runner",
        "wfrun.scheduler",
        "wfrun.results",  # nothing has run: no results, no bottleneck
        "wfrun.bottleneck",
        "concurrent",
        "wfrun.expressions",  # no reference, condition or matrix in the file
        "wfrun.flow_checks",
    )
    assert unused == []


def test_an_invalid_file_is_explained_by_jsonschema_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID)
    done, modules = _imports("validate", str(path))
    assert done.returncode == 1
    assert f"{path}:2:48: 'config.timeout' of step 'a': duration" in done.stdout
    assert "jsonschema" in modules


def test_an_agents_file_that_is_valid_does_not_import_jsonschema(tmp_path: Path) -> None:
    agents = tmp_path / "agents.yaml"
    agents.write_text("agents:\n  echo: {command: [cat]}\n")
    path = tmp_path / "wf.yaml"
    path.write_text("steps:\n  - {id: a, type: agent, config: {agent: echo, prompt: hi}}\n")
    done, modules = _imports("validate", "--agents", str(agents), str(path))
    assert done.returncode == 0, done.stderr
    assert "wfrun.compiled_schemas.agents_file" in modules
    assert _imported(modules, "jsonschema") == []


def test_a_quiet_run_of_scripts_imports_only_what_it_uses(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(VALID)
    done, modules = _imports("run", "--ui", "quiet", "--log-dir", str(tmp_path / "runs"), str(path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs").is_dir()
    unused = _imported(
        modules,
        "jsonschema",  # the file is valid
        "xml",  # no --junit
        "secrets",  # run ids come from os.urandom
        "wfrun.executors.agent",  # no agent step
        "rich.live",  # no live view
        "wfrun.reporters.live",
        "wfrun.reporters.live_view",  # the quiet summary draws no pool bars without pools
        "wfrun.reporters.state",  # the quiet mode folds no events into a run state
        "wfrun.reporters.html_page",  # no --html
        "wfrun.expressions",  # no step reads a reference or has a condition
        "wfrun.executors.cluster",  # runs here, not on Dask
        "wfrun.executors.dask_runner",
        "dask",
        "distributed",
        "wfrun.simulate",  # plan --simulate only
        "wfrun.variables",  # no --set
        "wfrun.targets",  # no target steps named
        "rich.table",  # the quiet summary draws no table
        "rich.box",
    )
    assert unused == []


# After a quiet one-step run in this process: each record class of wfrun it imported (a
# dataclass or a NamedTuple), whether it has a docstring of its own, and, for a dataclass, the
# comparison and immutability methods it generated.
_RECORDS_OF_A_RUN = """
import dataclasses, inspect, sys, typing
from wfrun.__main__ import main
try:
    main()
except SystemExit:
    pass
for module in [m for name, m in sorted(sys.modules.items()) if name.startswith("wfrun")]:
    for cls in vars(module).values():
        if not (inspect.isclass(cls) and cls.__module__ == module.__name__):
            continue
        generated = (cls.__doc__ or "").startswith(cls.__name__ + "(")  # not written by us
        if dataclasses.is_dataclass(cls):
            params = cls.__dataclass_params__
            made = (params.eq, params.frozen)
            print(module.__name__, cls.__name__, "dataclass", not generated, *made)
        elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
            hints = cls.__annotations__.values()
            quoted = sum(isinstance(t, (str, typing.ForwardRef)) for t in hints)
            print(module.__name__, cls.__name__, "namedtuple", not generated, True, quoted)
"""


def test_the_records_a_run_creates_cost_only_what_they_need(tmp_path: Path) -> None:
    """Python 3.11 compiles each method a dataclass generates with exec (~0.15 ms each; a frozen
    one with equality has six), and builds a missing docstring from inspect.signature. So the
    immutable records, the model (compared by value) as much as what a run makes (events,
    outcomes, journal entries, process specs), are NamedTuples, whose class is made without
    compiling its methods; dataclasses are left for the records that change as a run goes on
    (a step's result, the dispatcher's classes), and none of those compares by value."""
    path = tmp_path / "one.yaml"
    path.write_text(VALID)
    argv = ["wfrun", "run", "--ui", "quiet", "--log-dir", str(tmp_path / "runs"), str(path)]
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv = {argv!r}\n" + _RECORDS_OF_A_RUN],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("wfrun")]
    classes = {f"{module}.{name}": tuple(rest) for module, name, *rest in rows}
    assert len(classes) > 40  # the run's records were found
    assert [name for name, (_, doc, _, _) in classes.items() if doc != "True"] == []
    dataclasses_made = sorted(name for name, (kind, *_) in classes.items() if kind == "dataclass")
    assert len(dataclasses_made) <= 15, dataclasses_made
    assert [name for name in dataclasses_made if classes[name][2:] != ("False", "False")] == []
    for module in ("wfrun.model.", "wfrun.events.", "wfrun.errors.", "wfrun.retry."):
        records = [name for name in classes if name.startswith(module)]
        assert records and all(classes[name][0] == "namedtuple" for name in records), module
    # A NamedTuple compiles each annotation written as a string (a ForwardRef), as every
    # annotation is under `from __future__ import annotations`: the modules that define several
    # do without it, and quote only the names they cannot import (RunStarted's two). Modules of
    # one record, whose other annotations need names imported only for type checking, keep it.
    tuples = [name for name, (kind, *_) in classes.items() if kind == "namedtuple"]
    quoted = {name for name in tuples if classes[name][3] != "0"}
    lone = {"planner.Plan", "scheduler.RunSettings", "executors.supervisor.Launch"}
    assert quoted <= {"wfrun.events.RunStarted", "wfrun.schema_errors._SchemaFacts"} | {
        f"wfrun.{name}" for name in lone
    }, quoted
    assert classes["wfrun.events.RunStarted"][3] == "2"


def test_junit_still_works_where_it_is_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(VALID)
    junit = tmp_path / "j.xml"
    done, modules = _imports(
        "run", "--ui", "quiet", "--junit", str(junit), "--log-dir", str(tmp_path / "r"), str(path)
    )
    assert done.returncode == 0, done.stderr
    assert "xml.etree.ElementTree" in modules
    assert '<testcase classname="one" name="a"' in junit.read_text()


def _collector_after(*args: str) -> str:
    """gc.isenabled() and whether objects were frozen, after `wfrun ARGS` ran in this process."""
    code = (
        "import gc, sys\n"
        f"sys.argv = ['wfrun', *{list(args)!r}]\n"
        "from wfrun.__main__ import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120
    )
    return done.stderr.strip().splitlines()[-1]


def test_the_collector_is_paused_while_starting_and_resumed_for_the_work(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(VALID)
    # A run and validate resume it, with start-up's objects frozen out of every collection.
    assert _collector_after("run", "--ui", "quiet", "--log-dir", str(tmp_path), str(path)) == (
        "True True"
    )
    assert _collector_after("validate", str(path), str(path)) == "True True"
    # plan loads one file and exits: the collector stays paused.
    assert _collector_after("plan", str(path)) == "False False"
