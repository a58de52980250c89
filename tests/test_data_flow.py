"""Data between steps (SPEC §10) through the real CLI and real processes: outputs, references,
conditions, matrices, variables and secrets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from conftest import wfrun

PY = sys.executable
RECORD = str(Path(__file__).parent / "steps" / "record.py")
AGENT = str(Path(__file__).parent / "agents" / "fake_agent.py")

# A step that writes its argv (after the program) to OUT/<step id>.argv.json.
ARGV_DUMP = (
    "import json, os, sys; "
    "json.dump(sys.argv[1:], open(os.path.join(os.environ['OUT'], "
    "os.environ['WFRUN_STEP_ID'] + '.argv.json'), 'w'))"
)


def script(tmp_path: Path, name: str, code: str) -> str:
    """A step's Python code as a file: inline code would need YAML's escapes too."""
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    return str(path)


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(tmp_path: Path, workflow: Path, *args: str) -> tuple[int, str, str, dict[str, Any]]:
    logs = tmp_path / "logs"
    report = tmp_path / "report.json"
    done = wfrun(
        "run",
        str(workflow),
        "--ui",
        "plain",
        "--log-dir",
        str(logs),
        "--report",
        str(report),
        *args,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return done.returncode, done.stdout, done.stderr, data


def argv_of(out: Path, step_id: str) -> list[str]:
    result: list[str] = json.loads((out / f"{step_id}.argv.json").read_text())
    return result


# ---- outputs and references --------------------------------------------------------------------


def test_outputs_reach_dependents_exactly_as_one_argument_each(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    writer = script(
        tmp_path,
        "writer",
        "import os\n"
        "f = open(os.environ['WFRUN_OUTPUT'], 'a', encoding='utf-8')\n"
        "f.write('version=1.2=3 ünï\\n')\n"
        "f.write('notes<<END\\nfirst line\\n  second = line\\nEND\\n')\n"
        "f.write('spaced=a b  c\\n')\n",
    )
    workflow = write(
        tmp_path,
        f"""
env: {{OUT: "{out}"}}
steps:
  - id: build
    config: {{command: "{PY}", args: ["{writer}"]}}
  - id: use
    dependsOn: [build]
    config:
      command: "{PY}"
      args:
        - "-c"
        - "{ARGV_DUMP}"
        - "${{{{ steps.build.outputs.version }}}}"
        - "${{{{ steps.build.outputs.notes }}}}"
        - "v=${{{{ steps.build.outputs.spaced }}}}!"
        - "${{{{ steps.build.status }}}}"
""",
    )
    code, stdout, stderr, report = run(tmp_path, workflow)
    assert code == 0, stdout + stderr
    assert argv_of(out, "use") == [
        "1.2=3 ünï",
        "first line\n  second = line",
        "v=a b  c!",
        "succeeded",
    ]
    outputs = report["stepResults"]["build"]["outputs"]
    assert outputs == {
        "version": "1.2=3 ünï",
        "notes": "first line\n  second = line",
        "spaced": "a b  c",
    }
    assert report["stepResults"]["use"]["outputs"] == {}


def test_every_step_gets_its_own_outputs_file_and_the_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dump = (
        "import json, os; json.dump([os.environ['WFRUN_OUTPUT'], os.environ['WFRUN_RUN_DIR'], "
        "os.path.getsize(os.environ['WFRUN_OUTPUT'])], "
        "open(os.path.join(os.environ['OUT'], os.environ['WFRUN_STEP_ID']), 'w'))"
    )
    workflow = write(
        tmp_path,
        f"""
env: {{OUT: "{out}"}}
steps:
  - id: a
    config: {{command: "{PY}", args: ["-c", "{dump}"]}}
  - id: b
    config: {{command: "{PY}", args: ["-c", "{dump}"]}}
""",
    )
    code, stdout, stderr, report = run(tmp_path, workflow)
    assert code == 0, stdout + stderr
    a_file, a_dir, a_size = json.loads((out / "a").read_text())
    b_file, b_dir, _ = json.loads((out / "b").read_text())
    assert a_file != b_file and a_size == 0
    assert a_dir == b_dir == str(Path(report["runDir"]).absolute())
    assert Path(a_file).parent.parent == Path(a_dir)


def test_an_agent_reply_flows_into_the_next_prompt(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    workflow = write(
        tmp_path,
        f"""
env: {{OUT: "{out}"}}
agents:
  llm: {{command: ["{PY}", "{AGENT}", "--model", "m1"]}}
steps:
  - id: research
    type: agent
    config: {{agent: llm, prompt: "find the facts"}}
  - id: write-up
    type: agent
    dependsOn: [research]
    config: {{agent: llm, prompt: "summarise: ${{{{ steps.research.outputs.result }}}}"}}
""",
    )
    code, stdout, stderr, report = run(tmp_path, workflow)
    assert code == 0, stdout + stderr
    first = "model=m1 prompt=find the facts"
    assert report["stepResults"]["research"]["outputs"] == {"result": first}
    assert report["stepResults"]["write-up"]["output"] == f"model=m1 prompt=summarise: {first}"


def test_a_malformed_output_line_fails_the_step_quoting_it(tmp_path: Path) -> None:
    writer = script(
        tmp_path,
        "writer",
        "import os\nopen(os.environ['WFRUN_OUTPUT'], 'a').write('ok=1\\njust words\\n')\n",
    )
    workflow = write(
        tmp_path,
        f"""
steps:
  - id: a
    config: {{command: "{PY}", args: ["{writer}"]}}
  - id: b
    dependsOn: [a]
    config: {{command: "true"}}
""",
    )
    code, _, _, report = run(tmp_path, workflow)
    assert code == 1
    a = report["stepResults"]["a"]
    assert a["status"] == "failed"
    assert "output line 2 'just words' is not NAME=VALUE" in a["reason"]
    assert report["stepResults"]["b"]["status"] == "skipped"


def test_an_output_that_was_not_set_fails_the_reader_before_it_starts(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    workflow = write(
        tmp_path,
        f"""
steps:
  - id: build
    config: {{command: "true"}}
  - id: deploy
    dependsOn: [build]
    config:
      command: "{PY}"
      args: ["-c", "open('{marker}', 'w')", "${{{{ steps.build.outputs.version }}}}"]
""",
    )
    code, _, _, report = run(tmp_path, workflow)
    assert code == 1
    deploy = report["stepResults"]["deploy"]
    assert deploy["status"] == "failed"
    assert deploy["reason"] == "steps.build.outputs.version is not set"
    assert not marker.exists()


def test_plan_json_lists_each_steps_references(tmp_path: Path) -> None:
    workflow = write(
        tmp_path,
        """
vars: {region: eu}
steps:
  - id: build
    config: {command: "true"}
  - id: ship
    dependsOn: [build]
    if: ${{ success() && vars.region == 'eu' }}
    config:
      command: echo
      args: ["${{ steps.build.outputs.v }}", "${{ vars.region }}-${{ run.id }}"]
""",
    )
    done = wfrun("plan", str(workflow), "--format", "json")
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)["steps"]
    assert steps["build"]["references"] == []
    assert steps["ship"]["references"] == ["steps.build.outputs.v", "vars.region", "run.id"]
    assert steps["ship"]["if"] == "${{ success() && vars.region == 'eu' }}"


# ---- conditions --------------------------------------------------------------------------------


def test_failure_and_always_steps_run_after_a_fatal_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    workflow = write(
        tmp_path,
        f"""
steps:
  - id: build
    config: {{command: "{PY}", args: ["{RECORD}", "{out}", "0", "1"]}}
  - id: other
    config: {{command: "{PY}", args: ["{RECORD}", "{out}", "0.5"]}}
  - id: later
    dependsOn: [other]
    config: {{command: "{PY}", args: ["{RECORD}", "{out}", "0"]}}
  - id: notify
    dependsOn: [build]
    if: failure()
    config: {{command: "{PY}", args: ["{RECORD}", "{out}", "0"]}}
  - id: cleanup
    dependsOn: [build, other, later]
    if: ${{{{ always() }}}}
    config: {{command: "{PY}", args: ["{RECORD}", "{out}", "0"]}}
  - id: on-success
    dependsOn: [build]
    if: success()
    config: {{command: "{PY}", args: ["{RECORD}", "{out}", "0"]}}
""",
    )
    code, stdout, stderr, report = run(tmp_path, workflow)
    assert code == 1, stdout + stderr
    results = report["stepResults"]
    assert results["build"]["status"] == "failed"
    assert results["notify"]["status"] == "succeeded"
    assert results["cleanup"]["status"] == "succeeded"
    assert results["later"]["status"] == "skipped"  # the failure stopped the run
    assert results["on-success"]["status"] == "skipped"
    ran = {p.stem for p in out.glob("*.json")}
    assert ran == {"build", "other", "notify", "cleanup"}
    # cleanup waited for all of its dependencies to end: the running 'other' too.
    other_end = json.loads((out / "other.json").read_text())[1]
    assert json.loads((out / "cleanup.json").read_text())[0] >= other_end


def test_always_runs_after_success_and_failure_does_not(tmp_path: Path) -> None:
    workflow = write(
        tmp_path,
        """
steps:
  - id: build
    config: {command: "true"}
  - id: always
    dependsOn: [build]
    if: always()
    config: {command: "true"}
  - id: on-failure
    dependsOn: [build]
    if: failure()
    config: {command: "true"}
""",
    )
    code, _, _, report = run(tmp_path, workflow)
    assert code == 0
    results = report["stepResults"]
    assert results["always"]["status"] == "succeeded"
    assert results["on-failure"]["status"] == "skipped"
    assert results["on-failure"]["reason"] == "condition false: failure()"


def test_a_false_condition_skips_the_step_and_its_dependents(tmp_path: Path) -> None:
    workflow = write(
        tmp_path,
        """
vars: {target: staging}
steps:
  - id: build
    config: {command: "true"}
  - id: deploy
    dependsOn: [build]
    if: vars.target == 'production'
    config: {command: "false"}
  - id: announce
    dependsOn: [deploy]
    config: {command: "false"}
""",
    )
    code, stdout, _, report = run(tmp_path, workflow)
    assert code == 0  # skipping by condition does not fail the run
    results = report["stepResults"]
    assert results["deploy"]["status"] == "skipped"
    assert results["deploy"]["reason"] == "condition false: vars.target == 'production'"
    assert results["announce"]["status"] == "skipped"
    assert results["announce"]["reason"] == "dependency 'deploy' was skipped"
    assert "condition false" in stdout


def test_set_overrides_a_variable_on_run_and_plan(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    workflow = write(
        tmp_path,
        f"""
env: {{OUT: "{out}"}}
vars: {{target: staging, region: eu}}
steps:
  - id: deploy
    if: vars.target == 'production'
    config: {{command: "{PY}", args: ["-c", "{ARGV_DUMP}", "${{{{ vars.target }}}}/${{{{ vars.region }}}}"]}}
""",
    )
    code, _, _, report = run(tmp_path, workflow)
    assert code == 0 and report["stepResults"]["deploy"]["status"] == "skipped"
    code, stdout, stderr, report = run(tmp_path, workflow, "--set", "target=production")
    assert code == 0, stdout + stderr
    assert argv_of(out, "deploy") == ["production/eu"]
    assert wfrun("validate", str(workflow), "--set", "region=us").returncode == 0


def test_set_of_an_undeclared_variable_is_a_usage_error(tmp_path: Path) -> None:
    workflow = write(
        tmp_path, "vars: {target: a}\nsteps:\n  - id: a\n    config: {command: 'true'}\n"
    )
    for command in ("run", "plan", "validate"):
        done = wfrun(command, str(workflow), "--set", "targte=b")
        assert done.returncode == 2, (command, done.stderr)
        assert "did you mean 'target'?" in done.stderr
        assert "Traceback" not in done.stderr
    done = wfrun("run", str(workflow), "--set", "target")
    assert done.returncode == 2 and "write NAME=VALUE" in done.stderr


# ---- matrix ------------------------------------------------------------------------------------


def test_a_matrix_expands_into_instances_that_run_in_parallel_under_a_pool(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    workflow = write(
        tmp_path,
        f"""
parallel:
  defaultMaxConcurrency: 8
  resources: {{slots: 5}}
steps:
  - id: test
    matrix:
      os: [linux, mac]
      py: ["3.11", "3.12", 3.13]
      exclude: [{{os: mac, py: "3.11"}}]
    parallel: {{resource: {{slots: 1}}}}
    config: {{command: "{PY}", args: ["{RECORD}", "{out}", "1", "${{{{ matrix.os }}}}"]}}
  - id: report
    dependsOn: [test]
    config: {{command: "true"}}
""",
    )
    # The exit code argument is the matrix value: record.py takes int("linux") badly, so pass
    # the value through the log instead.
    workflow.write_text(workflow.read_text().replace('"1", "${{ matrix.os }}"', '"1"'))
    code, stdout, stderr, report = run(tmp_path, workflow)
    assert code == 0, stdout + stderr
    instances = [
        "test-linux-3_11",
        "test-linux-3_12",
        "test-linux-3_13",
        "test-mac-3_12",
        "test-mac-3_13",
    ]
    assert [s for s in report["stepResults"] if s.startswith("test")] == instances
    spans = [json.loads((out / f"{i}.json").read_text()) for i in instances]
    # All five held a pool unit at once: each started before any other ended.
    assert max(start for start, _ in spans) < min(end for _, end in spans)
    assert report["stepResults"]["report"]["status"] == "succeeded"
    plan = wfrun("plan", str(workflow), "--format", "json")
    steps = json.loads(plan.stdout)["steps"]
    assert steps["report"]["dependsOn"] == instances
    assert steps["test-mac-3_13"]["matrix"] == {"os": "mac", "py": 3.13}
    assert steps["test-mac-3_13"]["matrixOf"] == "test"


def test_matrix_values_are_substituted_in_each_instance(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    workflow = write(
        tmp_path,
        f"""
env: {{OUT: "{out}"}}
steps:
  - id: build
    name: "build on ${{{{ matrix.os }}}}"
    matrix: {{os: [linux, "win 11"], debug: [true]}}
    config: {{command: "{PY}", args: ["-c", "{ARGV_DUMP}", "${{{{ matrix.os }}}}", "${{{{ matrix.debug }}}}"]}}
""",
    )
    code, stdout, stderr, _ = run(tmp_path, workflow)
    assert code == 0, stdout + stderr
    assert argv_of(out, "build-linux-true") == ["linux", "true"]
    assert argv_of(out, "build-win_11-true") == ["win 11", "true"]
    assert "build on win 11" in wfrun("plan", str(workflow)).stdout


# ---- secrets -----------------------------------------------------------------------------------


def test_a_secret_never_appears_in_anything_wfrun_shows_or_writes(tmp_path: Path) -> None:
    secret = "tok-Zq81-secret"
    env_file = tmp_path / "secrets.env"
    env_file.write_text(f'API_TOKEN="{secret}"\n')
    printer = script(
        tmp_path,
        "printer",
        "import os, sys\nt = os.environ['API_TOKEN']\nprint('token', t)\n"
        "sys.stderr.write(t + '\\n')\n"
        "open(os.environ['WFRUN_OUTPUT'], 'a').write('auth=Bearer ' + t + '\\n')\n"
        "print(sys.argv[1])\nsys.exit(int(sys.argv[2]))\n",
    )
    workflow = write(
        tmp_path,
        f"""
secrets: [API_TOKEN]
steps:
  - id: call
    config:
      command: "{PY}"
      args: ["{printer}", "Bearer ${{{{ env.API_TOKEN }}}}", "0"]
  - id: again
    dependsOn: [call]
    config:
      command: "{PY}"
      args: ["{printer}", "${{{{ steps.call.outputs.auth }}}}", "3"]
""",
    )
    junit = tmp_path / "junit.xml"
    code, stdout, stderr, report = run(
        tmp_path, workflow, "--env-file", str(env_file), "--junit", str(junit)
    )
    assert code == 1, stdout + stderr
    assert report["stepResults"]["call"]["outputs"] == {"auth": "Bearer ***"}
    assert "token ***" in stdout
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != env_file]
    assert any(p.name == "call.log" for p in written)
    assert any(p.parent.name == "outputs" for p in written)
    for path in written:
        assert secret not in path.read_text(errors="replace"), path
    assert secret not in stdout + stderr


def test_a_missing_secret_stops_the_run_before_anything_starts(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    workflow = write(
        tmp_path,
        f"""
secrets: [DEPLOY_KEY]
steps:
  - id: a
    config: {{command: "{PY}", args: ["-c", "open('{marker}', 'w')"]}}
""",
    )
    code, _, stderr, _ = run(tmp_path, workflow)
    assert code == 2
    assert "secret 'DEPLOY_KEY' not set" in stderr
    assert not marker.exists()
    missing = wfrun("run", str(workflow), "--env-file", str(tmp_path / "nope.env"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


# ---- bad input: positioned, every problem at once, nothing started ------------------------------


def test_reference_problems_are_reported_where_they_are_written(tmp_path: Path) -> None:
    text = """vars: {region: eu}
steps:
  - id: build
    matrix: {os: [linux, mac]}
    config: {command: "true"}
  - id: test
    config:
      command: echo
      args: ["${{ stepz.x }}", "a ${{ vars.regoin }}", "${{ steps.build-linux.outputs.v }}"]
  - id: ship
    dependsOn: [build, test]
    if: ${{ failure( }}
    config:
      command: echo
      args: ["${{ steps.build.outputs.v }}", "${{ nosuch('x') }}", "${{ success() }}"]
  - id: sh
    dependsOn: [test]
    config:
      command: echo ${{ steps.test.outputs.v }}
      shell: true
  - id: origin
    config:
      command: echo
      args: ["{{env.TOKEN}}", "${{ matrix.os }}", "${{ run.dir }} ${{ workflow.nme }}", "x ${{ vars.region"]
"""
    workflow = write(tmp_path, text)
    done = wfrun("validate", str(workflow))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    f = str(workflow)

    def at(line: int, needle: str) -> str:
        col = text.splitlines()[line - 1].index(needle) + 1
        return f"{f}:{line}:{col}: "

    expected = [
        (at(9, "stepz"), "unknown context 'stepz' (did you mean 'steps'?"),
        (at(9, "regoin"), "unknown variable 'regoin' (did you mean 'region'?"),
        (at(9, "build-linux"), "add 'build' to dependsOn"),
        (at(15, "build.outputs"), "steps.build.outputs is ambiguous"),
        (at(15, "nosuch"), "nosuch"),
        (at(15, "success()"), "success() can only be used in a step's 'if'"),
        (at(19, "steps.test"), "Pass it through the step's env"),
        (at(24, "{{env.TOKEN}}"), "${{ env.TOKEN }}"),
        (at(24, "matrix.os"), "has no matrix"),
        (at(24, "nme"), "did you mean 'name'?"),
        (at(24, "${{ vars.region"), "never closed"),
    ]
    for prefix, words in expected:
        assert any(line.startswith(prefix) and words in line for line in lines), (
            prefix,
            words,
            done.stdout,
        )
    assert any(f"{f}:12:" in line for line in lines)  # the broken `if`
    assert "Traceback" not in done.stdout + done.stderr


def test_matrix_problems(tmp_path: Path) -> None:
    workflow = write(
        tmp_path,
        """
steps:
  - id: empty
    matrix: {os: []}
    config: {command: "true"}
  - id: huge
    matrix: {a: [1,2,3,4,5,6,7,8,9,10], b: [1,2,3,4,5,6,7,8,9,10], c: [1,2,3,4,5,6,7,8,9,10, 11]}
    config: {command: "true"}
  - id: clash
    matrix: {v: ["a.b", "a_b"]}
    config: {command: "true"}
  - id: ex
    matrix: {os: [linux], exclude: [{oss: linux}]}
    config: {command: "true"}
""",
    )
    done = wfrun("validate", str(workflow))
    assert done.returncode == 1
    out = done.stdout
    assert f"{workflow}:4:" in out  # the empty list
    assert "more than 1,000 instances" in out
    assert "'clash-a_b' that clashes" in out
    assert "did you mean 'os'?" in out
    assert "Traceback" not in out + done.stderr


def test_a_broken_reference_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    workflow = write(
        tmp_path,
        f"""
steps:
  - id: a
    config: {{command: "{PY}", args: ["-c", "open('{marker}', 'w')"]}}
  - id: b
    config: {{command: echo, args: ["${{{{ steps.a.outputs.x }}}}"]}}
""",
    )
    code, _, stderr, _ = run(tmp_path, workflow)
    assert code == 2
    assert "add 'a' to dependsOn" in stderr
    assert not marker.exists()


def test_escaped_reference_and_env_file_under_the_process_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env_file = tmp_path / "vars.env"
    env_file.write_text("# comment\nexport FROM_FILE='file value'\nSHADOWED=from-file\n")
    workflow = write(
        tmp_path,
        f"""
env: {{OUT: "{out}"}}
steps:
  - id: a
    config:
      command: "{PY}"
      args: ["-c", "{ARGV_DUMP}", "$${{{{ literal }}}}", "${{{{ env.FROM_FILE }}}}", "${{{{ env.SHADOWED }}}}"]
""",
    )
    logs = tmp_path / "logs"
    import os
    import subprocess

    env = {**os.environ, "SHADOWED": "from-process", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [
            PY,
            "-m",
            "wfrun",
            "run",
            str(workflow),
            "--ui",
            "quiet",
            "--log-dir",
            str(logs),
            "--env-file",
            str(env_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert argv_of(out, "a") == ["${{ literal }}", "file value", "from-process"]


def test_the_release_pipeline_sample_runs_with_its_stand_in_secret(tmp_path: Path) -> None:
    root = Path(__file__).parent.parent / "sample-workflows"
    sample, env_file = root / "release-pipeline.yaml", root / "release-pipeline.env"
    code, stdout, stderr, report = run(
        tmp_path, sample, "--env-file", str(env_file), "--set", "target=production"
    )
    assert code == 0, stdout + stderr
    results = report["stepResults"]
    assert len([s for s in results if s.startswith("test-")]) == 5
    assert results["deploy"]["status"] == "succeeded"
    assert "deploying 2.4.1 with token ***" in stdout
    assert "stand-in-token-1234" not in stdout
    code, stdout, _, report = run(tmp_path, sample, "--env-file", str(env_file))
    assert code == 0
    assert report["stepResults"]["deploy"]["reason"].startswith("condition false")
    assert report["stepResults"]["cleanup"]["status"] == "succeeded"


def test_matrix_instances_have_their_own_names_logs_and_junit_cases(tmp_path: Path) -> None:
    workflow = write(
        tmp_path,
        """
steps:
  - id: test
    matrix: {os: [linux, mac], py: ["3.12"]}
    config: {command: echo, args: ["on ${{ matrix.os }}"]}
""",
    )
    junit = tmp_path / "junit.xml"
    code, _, _, report = run(tmp_path, workflow, "--junit", str(junit))
    assert code == 0
    run_dir = Path(report["runDir"])
    assert (run_dir / "test-linux-3_12.log").read_text() == "on linux\n"
    assert (run_dir / "test-mac-3_12.log").read_text() == "on mac\n"
    import xml.etree.ElementTree as ET

    cases = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert cases == ["test-linux-3_12", "test-mac-3_12"]
    plan = wfrun("plan", str(workflow), "--format", "mermaid")
    assert "test (linux, 3.12)" in plan.stdout


def test_the_workflow_deadline_starts_no_cleanup_step(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    workflow = write(
        tmp_path,
        f"""
timeout: 1s
steps:
  - id: slow
    config: {{command: "{PY}", args: ["-c", "import time; time.sleep(30)"]}}
  - id: cleanup
    dependsOn: [slow]
    if: always()
    config: {{command: "{PY}", args: ["-c", "open('{marker}', 'w')"]}}
""",
    )
    code, _, _, report = run(tmp_path, workflow, "--grace-period", "1")
    assert code == 1
    assert report["stepResults"]["slow"]["status"] == "timed_out"
    assert report["stepResults"]["cleanup"]["status"] == "cancelled"
    assert not marker.exists()


def test_outputs_and_references_work_on_a_dask_cluster(tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("distributed")
    out = tmp_path / "out"
    out.mkdir()
    writer = script(
        tmp_path,
        "writer",
        "import os\nopen(os.environ['WFRUN_OUTPUT'], 'a').write('v=1 2\\nm<<E\\na\\nb\\nE\\n')\n",
    )
    workflow = write(
        tmp_path,
        f"""
env: {{OUT: "{out}"}}
steps:
  - id: build
    config: {{command: "{PY}", args: ["{writer}"]}}
  - id: use
    dependsOn: [build]
    if: steps.build.outputs.v == '1 2'
    config: {{command: "{PY}", args: ["-c", "{ARGV_DUMP}", "${{{{ steps.build.outputs.v }}}}", "${{{{ steps.build.outputs.m }}}}"]}}
""",
    )
    code, stdout, stderr, report = run(tmp_path, workflow, "--executor", "dask")
    assert code == 0, stdout + stderr
    assert report["stepResults"]["build"]["outputs"] == {"v": "1 2", "m": "a\nb"}
    assert argv_of(out, "use") == ["1 2", "a\nb"]


# ---- what new users found ----------------------------------------------------------------------


def test_a_cleanup_reads_the_status_of_a_step_skipped_before_anything_ran(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    workflow = write(
        tmp_path,
        f"""
env: {{OUT: "{out}"}}
vars: {{target: staging}}
steps:
  - id: deploy
    if: vars.target == 'production'
    config: {{command: "true"}}
  - id: cleanup
    dependsOn: [deploy]
    if: always()
    config: {{command: "{PY}", args: ["-c", "{ARGV_DUMP}", "deploy was ${{{{ steps.deploy.status }}}}"]}}
""",
    )
    code, stdout, stderr, report = run(tmp_path, workflow)
    assert code == 0, stdout + stderr
    assert "Traceback" not in stderr
    assert argv_of(out, "cleanup") == ["deploy was skipped"]
    assert report["stepResults"]["deploy"]["status"] == "skipped"


def test_failure_hears_of_a_failure_further_up_the_chain(tmp_path: Path) -> None:
    workflow = write(
        tmp_path,
        """
steps:
  - id: build
    config: {command: "false"}
  - id: deploy
    dependsOn: [build]
    config: {command: "true"}
  - id: notify
    dependsOn: [deploy]
    if: failure()
    config: {command: "true"}
""",
    )
    code, _, _, report = run(tmp_path, workflow)
    assert code == 1
    assert report["stepResults"]["deploy"]["status"] == "skipped"
    assert report["stepResults"]["notify"]["status"] == "succeeded"


def test_a_secret_in_a_start_failure_is_masked_in_every_file(tmp_path: Path) -> None:
    import os
    import subprocess

    secret = "tok-abc-123456"
    workflow = write(
        tmp_path,
        """
secrets: [TOKEN]
steps:
  - id: wd
    config: {command: pwd, workingDirectory: "/tmp/${{ env.TOKEN }}"}
  - id: prog
    config: {command: "/nonexistent/${{ env.TOKEN }}"}
""",
    )
    logs = tmp_path / "logs"
    done = subprocess.run(
        [
            PY,
            "-m",
            "wfrun",
            "run",
            str(workflow),
            "-k",
            "--ui",
            "plain",
            "--log-dir",
            str(logs),
            "--html",
            str(tmp_path / "page.html"),
            "--junit",
            str(tmp_path / "junit.xml"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TOKEN": secret},
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (run_dir,) = logs.iterdir()
    trace = subprocess.run(
        [PY, "-m", "wfrun", "report", str(run_dir), "--trace", str(tmp_path / "trace.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert trace.returncode == 0, trace.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stepResults"]["prog"]["attemptResults"][0]["reason"].endswith(
        "/nonexistent/***'"
    )
    for path in [p for p in tmp_path.rglob("*") if p.is_file()]:
        assert secret not in path.read_text(errors="replace"), path
    assert secret not in done.stdout + done.stderr + trace.stdout


def test_references_are_refused_where_nothing_substitutes_them(tmp_path: Path) -> None:
    workflow = write(
        tmp_path,
        """
vars: {tool: python3, x: a}
env: {GLOBAL: "${{ vars.x }}"}
steps:
  - id: ok
    config: {command: "${{ vars.tool }}", args: ["-c", "print(1)"]}
  - id: m
    matrix: {v: ["${{ vars.x }}", b], exclude: [{v: c}]}
    config: {command: echo}
  - id: n
    dependsOn: [m]
    if: steps.m.status == 'failed'
    config: {command: echo}
""",
    )
    done = wfrun("validate", str(workflow))
    assert done.returncode == 1
    f = str(workflow)
    assert f"{f}:3:16: 'env.GLOBAL' is used as written" in done.stdout
    assert f"{f}:8:19: a matrix value is used as written" in done.stdout
    assert "exclude names v: c, which is not one of its values (${{ vars.x }}, b)" in done.stdout
    assert "steps.m.status is ambiguous" in done.stdout
    assert "step 'ok'" not in done.stdout  # a reference as the whole command is one program
    assert "4 problems found" in done.stdout


def test_every_unknown_set_is_named_and_a_nul_output_is_refused(tmp_path: Path) -> None:
    workflow = write(
        tmp_path,
        f"""
vars: {{target: a}}
steps:
  - id: a
    config: {{command: "{PY}", args: ["-c", "import os; open(os.environ['WFRUN_OUTPUT'], 'w').write('v=a' + chr(0) + 'b')"]}}
""",
    )
    done = wfrun("run", str(workflow), "--set", "one=1", "--set", "two=2")
    assert done.returncode == 2
    assert "--set one:" in done.stderr and "--set two:" in done.stderr
    code, _, _, report = run(tmp_path, workflow)
    assert code == 1
    assert "NUL character" in report["stepResults"]["a"]["reason"]


def test_a_secret_is_masked_in_quoted_forms_and_in_a_broken_condition(tmp_path: Path) -> None:
    import os
    import subprocess

    secrets = {"PW": "it's-a-pw", "BS": "back\\slash99", "JS": "not json 77"}
    workflow = write(
        tmp_path,
        """
secrets: [PW, BS, JS]
steps:
  - id: quoted
    config: {command: sh, args: ["-c", "exit 1", "${{ env.PW }}"]}
  - id: escaped
    config: {command: "/nonexistent/${{ env.BS }}"}
  - id: judged
    if: fromJSON(env.JS) == 1
    config: {command: "true"}
""",
    )
    logs = tmp_path / "logs"
    done = subprocess.run(
        [
            PY,
            "-m",
            "wfrun",
            "run",
            str(workflow),
            "-k",
            "--ui",
            "plain",
            "--log-dir",
            str(logs),
            "--junit",
            str(tmp_path / "junit.xml"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **secrets},
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    shown = done.stdout + done.stderr
    files = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for value in secrets.values():
        for text in (shown, *files):
            assert value not in text
            assert repr(value)[1:-1] not in text
    assert "it'\"'\"'s" not in shown  # the shell-quoted form of the secret is masked too
    assert "invalid JSON ***" in shown


def test_positions_inside_a_block_scalar_of_a_file_with_crlf_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "crlf.yaml"
    path.write_bytes(
        b"vars: {tool: echo}\r\nsteps:\r\n  - id: a\r\n    config:\r\n      command: echo\r\n"
        b"      args:\r\n        - |\r\n          x\r\n          y\r\n          w ${{ vars.bb1 }}\r\n"
    )
    done = wfrun("validate", str(path))
    assert done.returncode == 1
    assert done.stdout.startswith(
        f"{path}:10:22: in 'config.args[0]' of step 'a': unknown variable"
    )
