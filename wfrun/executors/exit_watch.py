"""Noticing that a step's main process has exited, on every platform, without losing its group.

The process group of a step is signalled until its main process is reaped: while the leader is
unreaped (alive or a zombie) its pid, and so its process group id, cannot be reused, so a signal
can never reach an unrelated group. The watchers are therefore tried from best to worst:

1. a pidfd (Linux 5.3+): readable when the process exits; poll() waits on it with the pipes;
2. kqueue's EVFILT_PROC/NOTE_EXIT (macOS, BSDs): checked without reaping;
3. `waitid(WNOWAIT)` (other POSIX systems with waitid): checked without reaping;
4. `Popen.poll()`: reaps. The group is killed right after, but in the microseconds between the
   two its id could in theory be taken by a new session leader; this is the last resort.

Watchers 2-4 are checked every CHECK_INTERVAL by the supervising loop.
"""

from __future__ import annotations

import contextlib
import os
import select
from typing import Protocol

CHECK_INTERVAL = 0.05


class Watched(Protocol):
    """A started process: `subprocess.Popen` or `spawn.Child`."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...


class ExitWatch(Protocol):
    fd: int | None  # readable once the process has exited; None: call has_exited() periodically

    def has_exited(self) -> bool: ...

    def close(self) -> None: ...


class _PidfdWatch:
    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def has_exited(self) -> bool:
        return False  # poll() says so through the fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _PollingWatch:
    """A watcher the pump asks every CHECK_INTERVAL."""

    fd: int | None = None


class _KqueueWatch(_PollingWatch):
    def __init__(self, kqueue: object, pid: int) -> None:
        self._kq = kqueue
        event = select.kevent(  # type: ignore[attr-defined]
            pid,
            filter=select.KQ_FILTER_PROC,  # type: ignore[attr-defined]
            flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT,  # type: ignore[attr-defined]
            fflags=select.KQ_NOTE_EXIT,  # type: ignore[attr-defined]
        )
        self._exited = False
        try:
            self._kq.control([event], 0, 0)  # type: ignore[attr-defined]
        except ProcessLookupError:
            self._exited = True  # already gone (and a zombie): it has exited

    def has_exited(self) -> bool:
        if not self._exited:
            self._exited = bool(self._kq.control(None, 1, 0))  # type: ignore[attr-defined]
        return self._exited

    def close(self) -> None:
        self._kq.close()  # type: ignore[attr-defined]


class _WaitidWatch(_PollingWatch):
    def __init__(self, pid: int) -> None:
        self._pid = pid

    def has_exited(self) -> bool:
        try:
            info = os.waitid(os.P_PID, self._pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def close(self) -> None:
        pass


class _ReapingWatch(_PollingWatch):
    def __init__(self, proc: Watched) -> None:
        self._proc = proc

    def has_exited(self) -> bool:
        return self._proc.poll() is not None

    def close(self) -> None:
        pass


def watch_exit(proc: Watched) -> ExitWatch:
    """The best watcher this platform offers for `proc`'s exit (see the module's docstring)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        with contextlib.suppress(OSError):
            return _PidfdWatch(pidfd_open(proc.pid))
    kqueue = getattr(select, "kqueue", None)
    if kqueue is not None:
        with contextlib.suppress(OSError):
            return _KqueueWatch(kqueue(), proc.pid)
    if getattr(os, "waitid", None) is not None and hasattr(os, "WNOWAIT"):
        return _WaitidWatch(proc.pid)
    return _ReapingWatch(proc)
