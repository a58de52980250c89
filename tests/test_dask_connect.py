"""`--scheduler` where no Dask scheduler is: an address wfrun cannot use refused at once, a server
that is not a scheduler found out within the connect limit, Ctrl-C while connecting, and a local
cluster too large to start. Exit 2 with one line, never a traceback.

No network beyond localhost: the servers are started here, on ports of 127.0.0.1.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli_env, wfrun

pytest.importorskip("distributed")

from wfrun.executors.cluster import DaskOptions, DaskSetupError, dask_executor, max_local_workers
from wfrun.executors.dask_connect import check_address

WORKFLOW = "steps:\n  - {id: a, config: {command: 'true'}}\n"
NOT_DASK = (
    "import socket, sys\n"
    "server = socket.create_server(('127.0.0.1', 0))\n"
    "print(server.getsockname()[1], flush=True)\n"
    "while True:\n"
    "    conn, _ = server.accept()\n"
    "    conn.sendall(sys.argv[1].encode() * 3)\n"
    "    if sys.argv[1]: conn.close()\n"
)


def serve(reply: str) -> Iterator[str]:
    """A server on 127.0.0.1 that is not a Dask scheduler: it accepts, says `reply` (nothing:
    it never says anything, like an HTTP server waiting for a request) and hangs up."""
    server = subprocess.Popen(
        [sys.executable, "-c", NOT_DASK, reply], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield f"tcp://127.0.0.1:{server.stdout.readline().strip()}"
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def silent_server() -> Iterator[str]:
    yield from serve("")


@pytest.fixture
def http_like_server() -> Iterator[str]:
    yield from serve("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def run_against(scheduler: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    return wfrun("run", str(path), "--scheduler", scheduler, *extra, cwd=tmp_path, timeout=60)


def assert_refused(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"wfrun: {message}"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr  # no traceback, no Dask log line


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("tls://127.0.0.1:8786", "cannot use the Dask scheduler at tls://127.0.0.1:8786: tls:// "
         "needs a TLS security configuration"),
        ("inproc://x", "no Dask scheduler at inproc://x: an inproc:// address names a scheduler "
         "inside the same process"),
        ("ucx://127.0.0.1:8786", "cannot use the Dask scheduler at ucx://127.0.0.1:8786: wfrun "
         "connects over tcp:// only"),
        ("tcp://127.0.0.1:99999", "invalid Dask scheduler address 'tcp://127.0.0.1:99999': "
         "invalid port 99999"),
        ("127.0.0.1", "invalid Dask scheduler address '127.0.0.1': missing port number"),
        ("tcp://127.0.0.1:+80", "invalid Dask scheduler address 'tcp://127.0.0.1:+80': the port "
         "must be digits 0-9, not '+80'"),
        ("tcp://127.0.0.1:\u0668\u0660", "invalid Dask scheduler address "
         "'tcp://127.0.0.1:\u0668\u0660': the port must be digits 0-9"),
        ("tcp://127.0.0.1:8786 ", "invalid Dask scheduler address 'tcp://127.0.0.1:8786 ': it "
         "contains a space"),
        ("tcp://user@127.0.0.1:8786", "invalid Dask scheduler address "
         "'tcp://user@127.0.0.1:8786': 'user@127.0.0.1' is not a host name or IP address"),
        ("tcp://localhost:8786x", "invalid Dask scheduler address 'tcp://localhost:8786x': the "
         "port must be digits 0-9, not '8786x'"),
        ("tcp://localhost:8786/path", "invalid Dask scheduler address "
         "'tcp://localhost:8786/path': the port must be digits 0-9, not '8786/path'"),
        ("localhost:", "invalid Dask scheduler address 'localhost:': no port after ':'"),
        (" tcp://localhost:8786", "invalid Dask scheduler address ' tcp://localhost:8786': it "
         "contains a space"),
        ("tcp://-bad:8786", "invalid Dask scheduler address 'tcp://-bad:8786': '-bad' is not a "
         "host name or IP address"),
    ],
)  # fmt: skip
def test_an_address_wfrun_cannot_use_is_refused_at_once(
    address: str, message: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    proc = run_against(address, tmp_path)
    assert_refused(proc, message)
    assert time.monotonic() - started < 8  # at once: not after the 10 s connect limit


def test_a_scheme_is_read_in_any_case() -> None:
    assert check_address("TCP://localhost:8786") == "tcp://localhost:8786"
    assert check_address("Tcp://[::1]:8786") == "tcp://[::1]:8786"


def test_a_bare_host_and_port_is_a_tcp_address(http_like_server: str) -> None:
    bare = http_like_server.removeprefix("tcp://")
    with pytest.raises(DaskSetupError, match=f"cannot reach a Dask scheduler at tcp://{bare}:"):
        dask_executor(DaskOptions(scheduler=bare, connect_timeout=2))


def test_a_server_that_never_answers_is_given_up_on_within_the_connect_limit(
    silent_server: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    proc = run_against(silent_server, tmp_path)
    assert_refused(
        proc,
        f"cannot reach a Dask scheduler at {silent_server}: something accepts connections "
        "there but gave no Dask handshake within 10 s",
    )
    assert time.monotonic() - started < 20  # the 10 s limit, and Python and dask starting


def test_a_server_that_answers_something_else_is_refused_without_a_traceback(
    http_like_server: str, tmp_path: Path
) -> None:
    proc = run_against(http_like_server, tmp_path)
    assert_refused(
        proc,
        f"cannot reach a Dask scheduler at {http_like_server}: something answers there, but "
        "not in Dask's protocol",
    )
    assert "Exception ignored" not in proc.stderr


def test_a_refused_connection_is_retried_until_the_limit_and_said_so() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(
        DaskSetupError,
        match=rf"cannot reach a Dask scheduler at {address}: Timed out trying to connect .* "
        r"\(is `dask scheduler` running there",
    ):
        dask_executor(DaskOptions(scheduler=address, connect_timeout=1))
    assert time.monotonic() - started < 8


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a script starts


@pytest.mark.parametrize(
    ("sig", "code", "inherits_ignored_sigint"),
    [
        (signal.SIGINT, 130, False),
        (signal.SIGINT, 130, True),
        (signal.SIGTERM, 143, False),
    ],
)
def test_a_signal_while_connecting_ends_wfrun_at_once(
    silent_server: str, tmp_path: Path, sig: int, code: int, inherits_ignored_sigint: bool
) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", "run", str(path), "--scheduler", silent_server],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ignore_sigint if inherits_ignored_sigint else None,
    )  # fmt: skip
    try:
        time.sleep(4)  # dask imported, the connect under way (it would give up at 10 s)
        assert proc.poll() is None
        proc.send_signal(sig)
        signalled = time.monotonic()
        stdout, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (code, -sig), stderr
    assert stderr == "" and stdout == ""  # no traceback, no "Exception ignored in Client.__del__"
    assert took < 3  # about at once: well before the 10 s connect limit


def test_a_local_cluster_larger_than_the_machine_takes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    proc = wfrun(
        "run", str(path), "--executor", "dask", "--dask-workers", "100000", cwd=tmp_path,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"wfrun: --dask-workers 100000 is more than a local cluster on this machine takes: at "
        f"most {max_local_workers()} (4 per CPU); for more steps at once give each worker more "
        "--dask-threads, or run a cluster and use --scheduler\n"
    )
