"""`--executor dask` where the dask extra is not installed: a clear exit 2, never a traceback.

Runs without dask: the CLI is started with dask and distributed made unimportable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import cli_env

WITHOUT_DASK = (
    "import sys\n"
    "sys.modules['dask'] = sys.modules['distributed'] = None  # as if not installed\n"
    "from wfrun.__main__ import main\n"
    "sys.argv = ['wfrun', *sys.argv[1:]]\n"
    "main()\n"
)


def test_dask_not_installed_exits_2_saying_how_to_install_it(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("steps:\n  - {id: a, config: {command: 'true'}}\n")
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_DASK, "run", str(path), "--executor", "dask"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "wfrun: --executor dask needs dask and distributed, which are not installed: "
        "pip install 'wfrun[dask]'\n"
    )
    assert not list(tmp_path.rglob("report.json"))  # refused before the run began


def test_a_local_run_never_imports_dask(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("steps:\n  - {id: a, config: {command: 'true'}}\n")
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_DASK, "run", str(path), "--ui", "quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
