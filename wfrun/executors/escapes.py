"""Catching step processes that leave their process group (Linux).

Killing a step's process group misses whatever left it: a daemon that called `setsid` after a
double fork, a child that moved to a group of its own. On Linux, wfrun makes itself a *child
subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`) while it runs steps: an orphaned descendant is then
re-parented to wfrun instead of to init, and appears among the children of wfrun's main thread.

Each step process carries `WFRUN_PROCESS_TAG=<runner token>:<number>` in its environment, which
its descendants inherit; when a step ends, the adopted children with its tag are killed (their
own groups with them), then their children, which wfrun adopts in turn, until none is left. When
the run ends, every adopted child with the runner's token is killed. A descendant that replaced
its environment cannot be told apart: it is killed when the run ends only if it kept the tag.

Elsewhere (macOS, BSDs) there is no subreaper: processes that leave the group are not caught.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Collection, Container

TAG_VARIABLE = "WFRUN_PROCESS_TAG"
_PR_SET_CHILD_SUBREAPER = 36
_MAX_ROUNDS = 100  # generations of descendants followed in one sweep


def _set_subreaper(on: bool) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class EscapeCatcher:
    """Adopts the orphans of step processes and kills those of a step when it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = _set_subreaper(True)
        pid = os.getpid()
        # Orphans are re-parented to the subreaper's main thread: only its list needs reading.
        self._children = f"/proc/{pid}/task/{pid}/children"

    def sweep(
        self, tag: str | Collection[str], *, prefix: bool = False, known: Container[int] = ()
    ) -> int:
        """Kill every adopted process whose tag is `tag` (or starts with `tag:`), and what they
        leave behind; return how many were killed. Several tags: one look at the adoptees for
        all of them (the steps that ended in one turn of the supervising loop).

        `known`: pids wfrun started itself and still supervises (the main processes of running
        steps, which are the main thread's children too when it spawned them): they are no
        adoptees, so their environment is not even read."""
        if not self.active:
            return 0
        end = ":" if prefix else "\0"
        tags = (tag,) if isinstance(tag, str) else tuple(tag)
        needles = tuple(f"{TAG_VARIABLE}={t}{end}".encode() for t in tags)
        killed = 0
        with self._lock:  # two steps ending at once must not reap each other's finds
            for _ in range(_MAX_ROUNDS):
                found = [
                    pid for pid in self._adopted() if pid not in known and _carries(pid, needles)
                ]
                if not found:
                    break
                for pid in found:
                    _kill_with_group(pid)
                for pid in found:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)
                killed += len(found)
        return killed

    def close(self) -> None:
        if self.active:
            _set_subreaper(False)
            self.active = False

    def _adopted(self) -> list[int]:
        # Raw reads: this runs twice per step on the supervising thread, and is nearly always
        # empty; a buffered file object costs several times more.
        try:
            fd = os.open(self._children, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return []
        try:
            # A /proc seq file fills the buffer it is given: a short read was everything.
            data = chunk = os.read(fd, 65536)
            while len(chunk) == 65536:
                chunk = os.read(fd, 65536)
                data += chunk
        except OSError:
            return []
        finally:
            os.close(fd)
        return [int(pid) for pid in data.split()]


def _carries(pid: int, needles: tuple[bytes, ...]) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            data = environ.read()
    except OSError:
        return False  # gone, a zombie, or not ours to read
    return any(data.startswith(needle) or b"\0" + needle in data for needle in needles)


def _kill_with_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # it leads a group of its own: take the group too
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
