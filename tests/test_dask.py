"""`--executor dask` beyond the shared scenarios (test_executors_parity.py): the runner's own
guarantees (cancel within a second, bounded streaming, the outputs file, a lost worker, no
second run) and the command line (local cluster, --scheduler, Ctrl-C, the errors).

No network beyond localhost: in-process clusters, and one cluster of worker processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import psutil  # type: ignore[import-untyped]
import pytest
from conftest import all_gone, cli_env, py_step, wfrun

pytest.importorskip("distributed")

from distributed import LocalCluster

from wfrun.executors.base import CancelToken
from wfrun.executors.cluster import DaskOptions, DaskSetupError, dask_executor
from wfrun.executors.dask_runner import DaskProcessRunner, connect
from wfrun.executors.process import ProcessResult, ProcessSpec
from wfrun.loader import load_workflow
from wfrun.planner import make_plan
from wfrun.results import StepStatus
from wfrun.runner import WorkflowRunner
from wfrun.schemas import report_schema

Write = Callable[[str], Path]


class Collected:
    """An OutputSink that keeps what it is fed, with when it came."""

    def __init__(self) -> None:
        self.chunks: list[tuple[int, bytes, float]] = []

    def feed(self, stream: int, data: bytes) -> None:
        self.chunks.append((stream, data, time.monotonic()))

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk, _ in self.chunks)


@pytest.fixture(scope="module")
def runner() -> Iterator[DaskProcessRunner]:
    runner = connect(DaskOptions(workers=1, threads=4))
    yield runner
    runner.close()


def spec(*argv: str, cwd: Path, **kwargs: object) -> ProcessSpec:
    return ProcessSpec(argv=argv, cwd=cwd, env=dict(os.environ), **kwargs)  # type: ignore[arg-type]


def wait_for_file(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


# ---- the runner --------------------------------------------------------------------------------


def test_output_streams_back_while_the_step_runs(runner: DaskProcessRunner, tmp_path: Path) -> None:
    sink = Collected()
    started = time.monotonic()
    script = "echo first; sleep 1.5; echo second"
    result = runner.run(spec("sh", "-c", script, cwd=tmp_path), CancelToken(), sink)
    assert result.exit_code == 0 and result.where is not None
    assert sink.data == b"first\nsecond\n"
    first_seen = next(at for _, data, at in sink.chunks if b"first" in data)
    assert first_seen - started < 1.2  # live, not when the step ended 1.5 s later


def test_a_cancel_stops_the_process_on_the_worker_within_a_second(
    runner: DaskProcessRunner, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    token = CancelToken()
    script = f"echo $$ > {pid_file}; exec sleep 30"
    done: list[ProcessResult] = []
    thread = threading.Thread(
        target=lambda: done.append(
            runner.run(spec("sh", "-c", script, cwd=tmp_path, grace_period=10), token, Collected())
        )
    )
    thread.start()
    pid = int(wait_for_file(pid_file))
    cancelled_at = time.monotonic()
    token.cancel("stop it")
    thread.join(timeout=20)
    assert done and done[0].cancelled and done[0].signal == signal.SIGTERM
    assert time.monotonic() - cancelled_at < 3  # about a second; generous for a loaded machine
    assert all_gone([pid], timeout=2)


def test_a_forced_cancel_kills_a_process_that_ignores_sigterm(
    runner: DaskProcessRunner, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    token = CancelToken()
    script = f"trap '' TERM; echo $$ > {pid_file}; while :; do sleep 0.1; done"
    done: list[ProcessResult] = []
    thread = threading.Thread(
        target=lambda: done.append(
            runner.run(spec("sh", "-c", script, cwd=tmp_path, grace_period=60), token, Collected())
        )
    )
    thread.start()
    pid = int(wait_for_file(pid_file))
    token.cancel("stop it")
    time.sleep(0.5)
    assert thread.is_alive()  # SIGTERM is ignored; the grace period is a minute
    token.cancel("stop it now", force=True)
    thread.join(timeout=20)
    assert done and done[0].cancelled and done[0].signal == signal.SIGKILL
    assert all_gone([pid], timeout=2)


def test_a_fast_printer_is_logged_whole_and_in_order(
    runner: DaskProcessRunner, tmp_path: Path
) -> None:
    sink = Collected()
    script = "import sys; w = sys.stdout.buffer.write\nfor i in range(300000): w(b'%07d\\n' % i)"
    result = runner.run(spec(sys.executable, "-c", script, cwd=tmp_path), CancelToken(), sink)
    assert result.exit_code == 0
    assert sink.data == b"".join(b"%07d\n" % i for i in range(300000))


def test_the_outputs_file_written_on_the_worker_arrives_here(
    runner: DaskProcessRunner, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    outputs.touch()
    env = {**os.environ, "WFRUN_OUTPUT": str(outputs)}
    script = (
        'echo "version=1.2" >> "$WFRUN_OUTPUT"; '
        'printf "notes<<EOF\\na\\nb\\nEOF\\n" >> "$WFRUN_OUTPUT"'
    )
    result = runner.run(
        ProcessSpec(argv=["sh", "-c", script], cwd=tmp_path, env=env), CancelToken(), Collected()
    )
    assert result.exit_code == 0 and result.failure is None
    assert outputs.read_text() == "version=1.2\nnotes<<EOF\na\nb\nEOF\n"


def test_an_unreachable_scheduler_is_said_so_in_time() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DaskSetupError, match=r"cannot reach a Dask scheduler at tcp://127\.0"):
        dask_executor(DaskOptions(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=1))
    assert time.monotonic() - started < 10


# ---- a worker that dies ------------------------------------------------------------------------

COUNTING_STEP = (
    "import os, sys, time\n"
    "out = sys.argv[1]\n"
    "with open(os.path.join(out, 'runs'), 'a') as f: f.write('run\\n')\n"
    "with open(os.path.join(out, 'pid'), 'w') as f: f.write(str(os.getpid()))\n"
    "time.sleep(60)\n"
)


def test_a_worker_killed_mid_step_fails_it_once_with_the_reason_and_leaves_nothing(
    write: Write, workdir: Path
) -> None:
    out = workdir / "out"
    path = write("steps:\n" + py_step("victim", COUNTING_STEP))
    killed: list[int] = []

    def kill_its_worker() -> None:
        step_pid = int(wait_for_file(out / "pid", timeout=60))
        worker = psutil.Process(step_pid).parent()  # the worker process supervises it
        killed.extend([step_pid, worker.pid])
        worker.kill()

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        options = DaskOptions(scheduler=cluster.scheduler_address)
        runner = WorkflowRunner(executor=dask_executor(options), grace_period=1)
        threading.Thread(target=kill_its_worker, daemon=True).start()
        result = runner.execute_plan(make_plan(load_workflow(path)))
    victim = result.step_results["victim"]
    assert victim.status is StepStatus.FAILED
    assert victim.worker is not None and victim.worker.startswith("tcp://")
    assert victim.reason == f"worker {victim.worker} died"
    assert (out / "runs").read_text() == "run\n"  # Dask's re-run on the other worker refused
    assert all_gone(killed[:1], timeout=5)  # the worker's guardian took the step's process


# ---- the command line --------------------------------------------------------------------------

TWO_STEPS = """
    steps:
      - {id: hello, config: {command: echo, args: [hello]}}
      - {id: after, config: {command: echo, args: [after]}, dependsOn: [hello]}
"""


def test_cli_runs_on_a_local_cluster_and_shows_and_reports_each_steps_worker(
    write: Write, workdir: Path
) -> None:
    path = write(TWO_STEPS + "      - {id: broken, config: {command: 'false'}}\n")
    report = workdir / "report.json"
    proc = wfrun(
        "run", str(path), "--executor", "dask", "--dask-workers", "2", "--ui", "plain",
        "--report", str(report), cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    document = json.loads(report.read_text())
    jsonschema.Draft7Validator(report_schema()).validate(document)
    ran = {sid: r for sid, r in document["stepResults"].items() if "startTime" in r}
    workers = {sid: r["worker"] for sid, r in ran.items()}
    assert set(workers) >= {"hello", "broken"}
    assert all(w.startswith("inproc://") for w in workers.values())
    assert "✔ hello  succeeded in" in proc.stdout
    assert f"on {workers['hello']}" in proc.stdout  # the finished line
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("step ") and "worker" in line)
    assert header.split()[:4] == ["step", "status", "time", "worker"]  # the summary's column
    digest = next(line for line in lines if "worker" in line and "│" in line)
    assert workers["broken"] in digest  # the failed step's digest


def test_cli_uses_an_existing_scheduler(write: Write, workdir: Path) -> None:
    path = write(TWO_STEPS)
    report = workdir / "report.json"
    with LocalCluster(
        n_workers=1, threads_per_worker=4, processes=False, protocol="tcp://",
        host="127.0.0.1", dashboard_address=":0",
    ) as cluster:  # fmt: skip
        proc = wfrun(
            "run", str(path), "--scheduler", cluster.scheduler_address, "--ui", "quiet",
            "--report", str(report), cwd=workdir,
        )  # fmt: skip
        worker_address = next(iter(cluster.scheduler.workers))
    assert proc.returncode == 0, proc.stderr
    document = json.loads(report.read_text())
    assert {r["worker"] for r in document["stepResults"].values()} == {worker_address}


def test_ctrl_c_of_a_dask_run_leaves_no_step_process(write: Write, workdir: Path) -> None:
    out = workdir / "out"
    sleeper = (
        "import os, sys, time; "
        "open(os.path.join(sys.argv[1], os.environ['WFRUN_STEP_ID'] + '.pid'), 'w')"
        ".write(str(os.getpid())); time.sleep(60)"
    )
    path = write("steps:\n" + py_step("one", sleeper) + py_step("two", sleeper))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", "run", str(path), "--executor", "dask", "--ui", "plain"],
        cwd=workdir,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("*.pid"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int(wait_for_file(p)) for p in out.glob("*.pid")]
        assert len(pids) == 2
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "cancelled" in stdout
    assert all_gone(pids, timeout=2)


def test_cli_refuses_dask_options_that_contradict(write: Write, workdir: Path) -> None:
    path = write(TWO_STEPS)
    local = wfrun("run", str(path), "--executor", "local", "--dask-threads", "2", cwd=workdir)
    assert local.returncode == 2
    assert "--dask-threads needs --executor dask" in local.stderr
    both = wfrun(
        "run", str(path), "--scheduler", "tcp://127.0.0.1:9", "--dask-workers", "2", cwd=workdir
    )
    assert both.returncode == 2 and "--dask-workers and --dask-threads" in both.stderr
    bad = wfrun("run", str(path), "--scheduler", "nohost:port", cwd=workdir)
    assert bad.returncode == 2
    assert "invalid Dask scheduler address 'nohost:port'" in bad.stderr
    assert "Traceback" not in bad.stderr + both.stderr + local.stderr


def test_a_step_printing_100_mb_keeps_wfrun_small_and_the_log_whole(
    write: Write, workdir: Path
) -> None:
    path = write("""
        steps:
          - {id: big, config: {command: "head -c 100000000 /dev/zero | tr '\\\\0' x", shell: true}}
    """)
    # wfrun's peak RSS, measured by a parent of its own (RUSAGE_CHILDREN of a fresh process).
    measure = (
        "import resource, subprocess, sys\n"
        "code = subprocess.run([sys.executable, '-m', 'wfrun', *sys.argv[1:]]).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", measure, "run", str(path), "--executor", "dask", "--ui", "quiet",
         "--log-dir", str(workdir / "logs")],
        capture_output=True, text=True, cwd=workdir, env=cli_env(), timeout=120,
    )  # fmt: skip
    code, peak_kib = proc.stdout.split()[-2:]
    assert code == "0", proc.stderr
    assert int(peak_kib) < 250 * 1024
    (log,) = (workdir / "logs").glob("*/big.log")
    assert log.stat().st_size == 100_000_000


def test_kill_9_of_wfrun_stops_its_steps_on_the_workers(write: Write, workdir: Path) -> None:
    out = workdir / "out"
    sleeper = (
        "import os, signal, sys, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN) if os.environ['WFRUN_STEP_ID'] == "
        "'stubborn' else None; "
        "open(os.path.join(sys.argv[1], os.environ['WFRUN_STEP_ID'] + '.pid'), 'w')"
        ".write(str(os.getpid())); time.sleep(60)"
    )
    path = write("steps:\n" + py_step("polite", sleeper) + py_step("stubborn", sleeper))
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, protocol="tcp://",
        host="127.0.0.1", dashboard_address=":0",
    ) as cluster:  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "wfrun", "run", str(path), "--scheduler",
             cluster.scheduler_address, "--ui", "quiet", "--grace-period", "1"],
            cwd=workdir, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            polite, stubborn = (
                int(wait_for_file(out / f"{step}.pid", timeout=60))
                for step in ("polite", "stubborn")
            )
            time.sleep(0.2)  # the stubborn step has set its SIGTERM aside
        finally:
            proc.kill()  # SIGKILL: no cleanup of wfrun's own runs
            proc.wait()
        killed = time.monotonic()
        # The scheduler drops the vanished client's tasks; the worker's watcher sees it and
        # stops the process: SIGTERM within about a second, SIGKILL after the grace period.
        assert all_gone([polite], timeout=3)
        assert all_gone([stubborn], timeout=1 + 3)
        assert time.monotonic() - killed < 1 + 3


def test_one_dask_executor_serves_run_after_run(write: Write, workdir: Path) -> None:
    path = write(TWO_STEPS)
    runner = WorkflowRunner(executor=dask_executor(DaskOptions(threads=2)))
    first = runner.execute(load_workflow(path))  # stops its local cluster at the end
    second = runner.execute(load_workflow(path))  # and this run starts another
    assert first.success and second.success
    assert second.step_results["after"].worker is not None


def test_a_lost_worker_no_other_worker_takes_over_fails_its_step_in_seconds(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pid"
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://",
        host="127.0.0.1", dashboard_address=":0",
    ) as cluster:  # fmt: skip
        runner = connect(DaskOptions(scheduler=cluster.scheduler_address))
        (address,) = cluster.scheduler.workers

        async def remove_the_worker(dask_scheduler: Any) -> None:
            await dask_scheduler.remove_worker(address, stimulus_id="test", close=True)

        def lose_it() -> None:
            wait_for_file(pid_file)
            runner.connect().run_on_scheduler(remove_the_worker)

        threading.Thread(target=lose_it, daemon=True).start()
        script = f"echo $$ > {pid_file}; exec sleep 60"
        started = time.monotonic()
        try:
            result = runner.run(
                spec("sh", "-c", script, cwd=tmp_path, grace_period=1), CancelToken(), Collected()
            )
        finally:
            runner.close()
    assert result.failure == f"worker {address} died" and result.where == address
    assert time.monotonic() - started < 30  # a few seconds: not the step's 60
    assert all_gone([int(pid_file.read_text())], timeout=5)


def test_steps_leave_no_queue_or_event_behind_on_the_scheduler(tmp_path: Path) -> None:
    with LocalCluster(
        n_workers=1, threads_per_worker=4, processes=False, dashboard_address=":0"
    ) as cluster:
        runner = connect(DaskOptions(scheduler=cluster.scheduler_address))
        try:
            chatty = spec("sh", "-c", "head -c 3000000 /dev/zero", cwd=tmp_path)
            assert runner.run(chatty, CancelToken(), Collected()).exit_code == 0
            token = CancelToken()
            threading.Timer(0.5, lambda: token.cancel("stop", force=True)).start()
            stopped = runner.run(spec("sleep", "30", cwd=tmp_path), token, Collected())
            assert stopped.cancelled
            assert runner.run(spec("false", cwd=tmp_path), CancelToken(), Collected()).exit_code
        finally:
            runner.close()
        queues = cluster.scheduler.extensions["queues"].queues
        events = cluster.scheduler.extensions["events"]._events
        deadline = time.monotonic() + 10  # the workers' last long polls end within a second
        while (queues or events) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not queues and not events  # while the scheduler still runs


# ---- steps waiting in Dask's queue -------------------------------------------------------------


def test_steps_waiting_for_a_worker_thread_wait_and_succeed(write: Write, workdir: Path) -> None:
    # Fewer worker threads than -j: two steps wait in Dask's queue, and have no worker yet.
    steps = "".join(
        f"      - {{id: s{n}, config: {{command: sleep, args: ['1']}}}}\n" for n in range(4)
    )
    report = workdir / "report.json"
    proc = wfrun(
        "run", str(write("steps:\n" + steps)), "--executor", "dask", "--dask-workers", "2",
        "--dask-threads", "1", "-j", "4", "--ui", "plain", "--report", str(report), cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "died" not in proc.stdout
    results = json.loads(report.read_text())["stepResults"]
    assert {r["status"] for r in results.values()} == {"succeeded"}
    assert all(r["worker"].startswith("inproc://") for r in results.values())


# ---- Dask's own log lines ----------------------------------------------------------------------


def test_a_scheduler_lost_mid_run_fails_its_steps_in_wfrun_words_only(
    write: Write, workdir: Path
) -> None:
    # A scheduler that dies under a connected client makes distributed log errors and
    # tracebacks (a closed batched comm, refused reconnects): none of them reach wfrun's output.
    sleeper = (
        "import os, sys, time; "
        "open(os.path.join(sys.argv[1], os.environ['WFRUN_STEP_ID'] + '.pid'), 'w')"
        ".write(str(os.getpid())); time.sleep(60)"
    )
    path = write("steps:\n" + py_step("one", sleeper) + py_step("two", sleeper))
    out, address_file = workdir / "out", workdir / "scheduler.json"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--dashboard-address", ":0", "--scheduler-file", str(address_file)],
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker: subprocess.Popen[bytes] | None = None
    try:
        address = json.loads(wait_for_file(address_file))["address"]
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "2",
             "--no-dashboard"],
            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        run = subprocess.Popen(
            [sys.executable, "-m", "wfrun", "run", str(path), "--scheduler", address,
             "--ui", "plain"],
            cwd=workdir, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        pids = [int(wait_for_file(out / f"{step}.pid", timeout=60)) for step in ("one", "two")]
        scheduler.kill()
        stdout, stderr = run.communicate(timeout=60)
    finally:
        for proc in (scheduler, worker):
            if proc is not None:
                proc.kill()
                proc.wait()
    assert run.returncode == 1
    assert stdout.count(f"lost the Dask scheduler at {address}: its connection closed") >= 2
    assert "distributed." not in stdout + stderr and "Traceback" not in stdout + stderr
    assert stderr == ""
    assert all_gone(pids, timeout=10)  # the worker's guardian: the worker was killed too


def test_a_step_cancelled_while_waiting_for_a_worker_thread_has_no_worker(
    write: Write, workdir: Path
) -> None:
    sleeper = "{command: sleep, args: ['30']}"
    path = write(
        f"timeout: 3s\nsteps:\n  - {{id: one, config: {sleeper}}}\n"
        f"  - {{id: two, config: {sleeper}}}\n"
    )
    report = workdir / "report.json"
    proc = wfrun(
        "run", str(path), "--executor", "dask", "--dask-threads", "1", "-j", "2",
        "--ui", "plain", "--report", str(report), cwd=workdir,
    )  # fmt: skip
    assert proc.returncode != 0
    results = json.loads(report.read_text())["stepResults"]
    workers = sorted(r.get("worker", "") for r in results.values())
    assert workers[0] == "" and workers[1].startswith("inproc://")  # one ran, one never did
    assert "died" not in proc.stdout
