"""Starting a step's process in a session of its own, as cheaply as the platform allows.

`os.posix_spawn` with `setsid=True` (glibc's clone(CLONE_VFORK) path) costs the parent about a
third of the CPU of `subprocess.Popen` (measured in `bench/bench_spawn.py`), but it cannot change
the child's directory. So it is used when the step runs in wfrun's own working directory, the
common case of `wfrun run ci.yaml` from the file's folder; otherwise `Popen` (itself vfork-based
on Linux) starts it. Either way the child has its own session and process group, stdin from
/dev/null or a pipe, stdout and stderr on pipes, SIGPIPE and SIGXFSZ back at their defaults, and
none of wfrun's own descriptors (Python opens them all close-on-exec).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Python ignores these; a child must start with the defaults, as Popen's restore_signals does.
_DEFAULT_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s
)
_HAS_SPAWN = hasattr(os, "posix_spawn") and hasattr(os, "POSIX_SPAWN_DUP2")


@dataclass(slots=True, eq=False)
class Child:
    """A started process: its pid, and the Popen object when Popen started it."""

    pid: int
    popen: subprocess.Popen[bytes] | None = None
    returncode: int | None = None

    def poll(self) -> int | None:
        """Reap it if it has exited (the last-resort exit watcher); None while it runs."""
        if self.returncode is None:
            if self.popen is not None:
                self.returncode = self.popen.poll()
            else:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        """Reap it; it must have exited or be dying."""
        if self.returncode is None:
            if self.popen is not None:
                self.returncode = self.popen.wait()
            else:
                try:
                    _, status = os.waitpid(self.pid, 0)
                    self.returncode = os.waitstatus_to_exitcode(status)
                except ChildProcessError:  # reaped elsewhere: nothing more to learn
                    self.returncode = -signal.SIGKILL
        return self.returncode


def find_on_path(command: str, env: Mapping[str, str]) -> str | None:
    """Where exec would find `command` on the step's PATH, looked up here, in wfrun. Popen
    otherwise searches in the child, which on a long PATH execs and fails once for every
    directory before the right one, each costing more than a whole lookup here. None: leave it
    to Popen (not found, not executable, a command with a slash, or a relative PATH entry, which
    is relative to the step's directory); its error messages stay the only ones. Looked up again
    for every process: a program installed by an earlier step is seen by the next."""
    if "/" in command:
        return None
    entries = env.get("PATH", os.defpath).split(os.pathsep)
    if not all(entry.startswith("/") for entry in entries):
        return None
    # shutil.which's test (exists, executable, not a directory) without its layers: it runs
    # for every process.
    for entry in entries:
        name = entry + command if entry.endswith("/") else f"{entry}/{command}"
        try:
            info = os.stat(name)
        except OSError:
            continue
        except ValueError:  # a NUL character: Popen says so
            return None
        if not stat.S_ISDIR(info.st_mode) and os.access(name, os.X_OK):
            return name
    return None


def _popen(
    argv: Sequence[str],
    executable: str | None,
    cwd: Path,
    env: Mapping[str, str],
    stdin: int,
    stdout: int,
    stderr: int,
) -> Child:
    popen = subprocess.Popen(
        list(argv),
        executable=executable,  # argv[0] stays as the step gave it
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,  # own session and process group: killpg reaches grandchildren
        close_fds=True,
    )
    return Child(popen.pid, popen)


class Spawner:
    """Starts processes; remembers wfrun's directory and, for posix_spawn, where commands were
    found on PATH (Popen's commands are looked up afresh for every process: `find_on_path`)."""

    def __init__(self, use_posix_spawn: bool = _HAS_SPAWN) -> None:
        self._use_spawn = use_posix_spawn and _HAS_SPAWN
        self._here = os.stat(".") if self._use_spawn else None
        self._same_dir: dict[str, bool] = {}
        self._found: dict[tuple[str, str | None], str] = {}
        self._lock = threading.Lock()
        self._devnull: int | None = None

    def spawn(
        self,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        stdin: int | None,
        stdout: int,
        stderr: int,
    ) -> Child:
        """Start `argv`; `stdin` None means /dev/null. Raises OSError or ValueError as Popen."""
        if not argv or not argv[0]:
            raise FileNotFoundError(errno.ENOENT, "empty command", "")
        stdin_fd = self._null() if stdin is None else stdin
        if self._use_spawn and self._in_here(cwd):
            return Child(self._posix_spawn(argv, env, stdin_fd, stdout, stderr))
        executable = find_on_path(argv[0], env)
        try:
            return _popen(argv, executable, cwd, env, stdin_fd, stdout, stderr)
        except OSError:
            if executable is None:
                raise
        # Moved or changed since it was looked up, or the directory is at fault: Popen's own
        # search says which, in its own words.
        return _popen(argv, None, cwd, env, stdin_fd, stdout, stderr)

    def close(self) -> None:
        with self._lock:
            fd, self._devnull = self._devnull, None
        if fd is not None:
            os.close(fd)

    def _null(self) -> int:
        with self._lock:
            if self._devnull is None:
                self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            return self._devnull

    def _in_here(self, cwd: Path) -> bool:
        key = str(cwd)
        same = self._same_dir.get(key)
        if same is None:
            try:
                same = self._here is not None and os.path.samestat(os.stat(key), self._here)
            except OSError:
                same = False  # Popen reports the directory's problem in its own words
            self._same_dir[key] = same
        return same

    def _posix_spawn(
        self, argv: Sequence[str], env: Mapping[str, str], stdin: int, stdout: int, stderr: int
    ) -> int:
        path = self._executable(argv[0], env)
        actions = [
            (os.POSIX_SPAWN_DUP2, stdin, 0),
            (os.POSIX_SPAWN_DUP2, stdout, 1),
            (os.POSIX_SPAWN_DUP2, stderr, 2),
        ]
        try:
            return os.posix_spawn(
                path, list(argv), env, file_actions=actions, setsid=True, setsigdef=_DEFAULT_SIGNALS
            )
        except FileNotFoundError:
            self._found.pop((argv[0], env.get("PATH")), None)  # moved away since: look again
            raise

    def _executable(self, command: str, env: Mapping[str, str]) -> str:
        """Where exec would find `command`: as given when it has a slash, else on the step's
        PATH (not wfrun's), as Popen looks it up."""
        if "/" in command:
            return command
        key = (command, env.get("PATH"))
        found = self._found.get(key)
        if found is None:
            found = shutil.which(command, path=env.get("PATH", os.defpath))
            if found is None:
                raise FileNotFoundError(errno.ENOENT, "command not found", command)
            self._found[key] = found
        return found
