"""`--report` and `--junit` paths that end in a separator name a directory: refused before the
run starts (exit 2), never written as a file of that name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import wfrun


def _marked_workflow(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "ran"
    path = tmp_path / "wf.yaml"
    path.write_text(
        f"steps:\n  - {{id: a, config: {{command: touch, args: [{json.dumps(str(marker))}]}}}}\n"
    )
    return path, marker


@pytest.mark.parametrize("option", ["--junit", "--report"])
def test_a_new_directory_with_a_trailing_slash_is_refused_before_the_run(
    tmp_path: Path, option: str
) -> None:
    path, marker = _marked_workflow(tmp_path)
    value = f"{tmp_path}/newdir/"
    result = wfrun("run", str(path), option, value, "--log-dir", str(tmp_path / "logs"))
    assert result.returncode == 2
    assert result.stderr == (
        f"wfrun: cannot use {option} {value}: it ends with '/', so it names a directory; "
        "give a file name\n"
    )
    assert not (tmp_path / "newdir").exists()
    assert not marker.exists() and not (tmp_path / "logs").exists()


def test_the_equals_form_is_refused_too(tmp_path: Path) -> None:
    path, marker = _marked_workflow(tmp_path)
    result = wfrun("run", str(path), f"--junit={tmp_path}/out/", "--log-dir", str(tmp_path / "l"))
    assert result.returncode == 2
    assert "so it names a directory" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_an_existing_directory_with_a_trailing_slash_keeps_its_message(tmp_path: Path) -> None:
    path, marker = _marked_workflow(tmp_path)
    (tmp_path / "adir").mkdir()
    result = wfrun("run", str(path), "--junit", f"{tmp_path}/adir/", "--log-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (
        f"wfrun: cannot use --junit {tmp_path}/adir: it is a directory; give a file name\n"
    )
    assert not marker.exists()


def test_a_file_inside_an_existing_directory_is_written(tmp_path: Path) -> None:
    path, marker = _marked_workflow(tmp_path)
    (tmp_path / "out").mkdir()
    junit, report = tmp_path / "out" / "j.xml", tmp_path / "out" / "r.json"
    result = wfrun(
        "run",
        str(path),
        "--ui",
        "quiet",
        "--junit",
        str(junit),
        "--report",
        str(report),
        "--log-dir",
        str(tmp_path / "logs"),
    )
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    assert junit.read_text().startswith("<?xml")
    assert json.loads(report.read_text())["status"] == "succeeded"
