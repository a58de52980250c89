"""The guardian: a small process that ends every step process if wfrun itself dies.

wfrun's own cleanup cannot run after `kill -9`. So the first time wfrun starts a step process, it
starts the guardian (this file, run as a script by the same Python with `-I -S`; one per wfrun
process, shared by its runs), in a session
of its own so that Ctrl-C at the terminal and a closed terminal do not reach it, and keeps the
write end of a pipe to its stdin. It writes `+PGID` when a step's process group starts and
`-PGID` when it is gone. When the pipe reaches end-of-file — wfrun exited, however it exited,
since the kernel closes a dead process's descriptors — the guardian SIGKILLs every group still
registered and, where /proc exists, every process whose environment carries this wfrun process's
tag (`WFRUN_PROCESS_TAG=<token>-…`), which also finds processes that left their group. Then it
exits.

The script imports nothing but the standard library, and starts in about 15 ms, off the run's
critical path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable

_SCAN_ROUNDS = 5


def _kill_tagged(prefix: bytes) -> int:
    """SIGKILL every process (and the group it leads) whose environment has the tag prefix."""
    killed = 0
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                data = environ.read()
        except OSError:
            continue
        if data.startswith(prefix) or b"\0" + prefix in data:
            with contextlib.suppress(OSError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def guard(token: str) -> None:
    """The guardian's main loop: read registrations until EOF, then kill what is left."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    groups: set[int] = set()
    pending = b""
    while True:
        try:
            chunk = os.read(0, 65536)
        except InterruptedError:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    if os.path.isdir("/proc"):
        prefix = f"WFRUN_PROCESS_TAG={token}-".encode()
        for _ in range(_SCAN_ROUNDS):  # children may fork while the first scan runs
            if not _kill_tagged(prefix):
                break


class Guardian:
    """wfrun's side: starts the guardian on first use and tells it about process groups."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None

    def send(self, changes: Iterable[tuple[bool, int]]) -> None:
        """Process groups started (True) and ended (False), in order, in one write: the
        supervising loop gathers a turn's starts and ends."""
        self._send("".join(f"{'+' if started else '-'}{pgid}\n" for started, pgid in changes))

    @property
    def token(self) -> str:
        return self._token

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _send(self, line: str) -> None:
        with self._lock:
            if self._fd is None and self._proc is None:
                self._start()
            if self._fd is None:
                return
            with contextlib.suppress(OSError):  # it died: nothing more it can do for us
                os.write(self._fd, line.encode())

    def _start(self) -> None:
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__, self._token],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C and a closed terminal must not reach it
                close_fds=True,
            )
        except OSError:
            return  # nothing to guard with: wfrun's own cleanup still runs on every other path
        assert self._proc.stdin is not None
        # A raw descriptor, so that nothing is ever left unwritten in a buffer.
        self._fd = os.dup(self._proc.stdin.fileno())
        self._proc.stdin.close()
        os.set_inheritable(self._fd, False)


_shared: Guardian | None = None
_shared_pid = 0
_shared_lock = threading.Lock()


def shared_guardian() -> Guardian:
    """This process's guardian (a forked child gets its own): it lives as long as the process,
    since its pipe closing when the process ends is the whole point."""
    global _shared, _shared_pid
    with _shared_lock:
        if _shared is None or _shared_pid != os.getpid():
            _shared, _shared_pid = Guardian(os.urandom(6).hex()), os.getpid()
        return _shared


if __name__ == "__main__":
    guard(sys.argv[1])
