"""Supervising a step's process on this machine: the local `ProcessRunner`.

The calling thread does all the work itself: it waits with `select.poll` on the output pipe(s),
the stdin pipe (when there is input to write) and the exit watcher (`exit_watch`), and hands the
bytes to the sink as they come. The timeout and the SIGKILL escalation are poll timeouts; only a
cancellation arms a `threading.Timer` for its escalation.

No process of a step outlives it: once the main process has exited, whatever is left of its
process group is SIGKILLed, and on Linux what left the group is found and killed too
(`escapes`). The guardian (`guardian`) does the same if wfrun itself is killed.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from wfrun.executors.base import CancelToken
from wfrun.executors.escapes import TAG_VARIABLE, EscapeCatcher
from wfrun.executors.exit_watch import CHECK_INTERVAL, watch_exit
from wfrun.executors.guardian import Guardian, shared_guardian
from wfrun.executors.process import (
    STDERR,
    STDOUT,
    OutputSink,
    ProcessResult,
    ProcessSpec,
    describe_start_error,
)

READ_SIZE = 65536
# After the main process exits and its group is killed, only processes that left the group can
# still hold the pipes open; stop reading once they are quiet this long, or after DRAIN_LIMIT.
DRAIN_IDLE = 0.2
DRAIN_LIMIT = 2.0

_INPUT_MASK = select.POLLIN | select.POLLHUP | select.POLLERR
_OUTPUT_MASK = select.POLLOUT | select.POLLHUP | select.POLLERR
_POLL_MAX_MS = 2**31 - 1
_runner_numbers = itertools.count(1)


class LocalProcessRunner:
    """Runs processes here, each in its own session, and leaves none behind (module docstring).

    One runner serves a whole run and may be used from many threads at once.
    """

    def __init__(self, guardian: Guardian | None = None) -> None:
        self._guardian = guardian
        self._numbers = itertools.count(1)
        self._escapes: EscapeCatcher | None = None
        self._lock = threading.Lock()
        self._tag_prefix: str | None = None

    def run(self, spec: ProcessSpec, cancel: CancelToken, sink: OutputSink) -> ProcessResult:
        if cancel.cancelled:
            return ProcessResult(cancelled=True)
        guardian, escapes, tag = self._prepare()
        try:
            proc = _popen(spec, tag)
        except (OSError, ValueError) as exc:
            return ProcessResult(start_error=describe_start_error(exc, spec))
        guardian.add(proc.pid)
        try:
            return _supervise(proc, spec, cancel, sink, lambda: escapes.sweep(tag))
        finally:
            escapes.sweep(tag)
            guardian.remove(proc.pid)

    def close(self) -> None:
        """The run is over: kill anything adopted that still carries this runner's tag."""
        with self._lock:
            escapes, self._escapes = self._escapes, None
            prefix, self._tag_prefix = self._tag_prefix, None
        if escapes is not None and prefix is not None:
            escapes.sweep(prefix, prefix=True)
            escapes.close()

    def _prepare(self) -> tuple[Guardian, EscapeCatcher, str]:
        with self._lock:
            if self._escapes is None:
                self._escapes = EscapeCatcher()
                guardian = self._guardian or shared_guardian()
                self._guardian = guardian
                self._tag_prefix = f"{guardian.token}-{next(_runner_numbers)}"
            assert self._guardian is not None
            return self._guardian, self._escapes, f"{self._tag_prefix}:{next(self._numbers)}"


def _popen(spec: ProcessSpec, tag: str) -> subprocess.Popen[bytes]:
    if not spec.argv or not spec.argv[0]:
        raise FileNotFoundError(errno.ENOENT, "empty command", "")
    env = dict(spec.env)
    env[TAG_VARIABLE] = tag
    return subprocess.Popen(
        list(spec.argv),
        cwd=spec.cwd,
        env=env,
        stdin=subprocess.DEVNULL if spec.stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if spec.capture_stdout else subprocess.STDOUT,
        start_new_session=True,  # own session and process group: killpg reaches grandchildren
        close_fds=True,
    )


def _supervise(
    proc: subprocess.Popen[bytes],
    spec: ProcessSpec,
    cancel: CancelToken,
    sink: OutputSink,
    sweep: Callable[[], object],
) -> ProcessResult:
    group = _ProcessGroup(proc, spec.grace_period)
    unregister = cancel.on_cancel(group.on_cancel)
    try:
        timed_out = _Pump(proc, spec, group, sink, sweep).run()
    finally:
        unregister()
        group.kill()  # whatever is left; also when the pump failed
        returncode = group.reap()
        _close_pipes(proc)
    return ProcessResult(
        returncode=returncode, timed_out=timed_out, cancelled=group.cancelled_while_running
    )


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            # A broken stdin pipe may complain about unwritten data; nothing to do about it.
            with contextlib.suppress(OSError):
                pipe.close()


class _ProcessGroup:
    """Signals a process group from any thread, and only while its leader is unreaped."""

    def __init__(self, proc: subprocess.Popen[bytes], grace_period: float) -> None:
        self._proc = proc
        self._grace_period = grace_period
        self._lock = threading.Lock()
        self._leader_exited = False
        self._reaped = False
        self._timer: threading.Timer | None = None
        self.cancelled_while_running = False

    def signal(self, signum: int) -> None:
        with self._lock:
            if self._reaped:
                return
            # The group may be gone (macOS answers PermissionError for a group of zombies).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def on_cancel(self, force: bool) -> None:
        """The CancelToken's callback; runs in whichever thread cancelled."""
        with self._lock:
            if self._leader_exited or self._reaped:
                return  # it ended on its own; what is left is killed anyway
            self.cancelled_while_running = True
        if force or self._grace_period <= 0:
            self.kill()
            return
        self.signal(signal.SIGTERM)
        self._arm_kill_timer()

    def _arm_kill_timer(self) -> None:
        timer = threading.Timer(self._grace_period, self.kill)
        timer.daemon = True
        with self._lock:
            if self._timer is not None or self._reaped:
                return
            self._timer = timer
        timer.start()

    def leader_exited(self) -> None:
        with self._lock:
            self._leader_exited = True

    def reap(self) -> int:
        """Wait for the leader (which must be dead or dying) and stop signalling its group."""
        with self._lock:
            returncode = self._proc.wait()
            self._reaped = True
            timer = self._timer
        if timer is not None:
            timer.cancel()
        return returncode


class _Pump:
    """The supervising loop: moves bytes, notices the exit, enforces the timeout."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        spec: ProcessSpec,
        group: _ProcessGroup,
        sink: OutputSink,
        sweep: Callable[[], object],
    ) -> None:
        self._proc, self._group, self._sink = proc, group, sink
        self._sweep = sweep  # kills what left the group, so that the pipes reach EOF
        self._grace_period = spec.grace_period
        self._poller = select.poll()
        self._outputs: dict[int, int] = {}  # fd -> STDOUT or STDERR
        self._stdin_fd: int | None = None
        self._pending = memoryview(spec.stdin or b"")
        self._watch = watch_exit(proc)
        now = time.monotonic()
        self._deadline = None if spec.timeout is None else now + spec.timeout
        self._kill_at: float | None = None
        self._drain_until: float | None = None
        self._drain_limit = 0.0
        self.timed_out = False

    def run(self) -> bool:
        """Pump until the leader has exited and the pipes are drained; return timed_out."""
        self._register()
        try:
            while self._outputs or self._drain_until is None:
                self._step()
        finally:
            self._watch.close()
            self._close_stdin()
        return self.timed_out

    def _register(self) -> None:
        assert self._proc.stdout is not None
        self._add_output(self._proc.stdout.fileno(), STDOUT)
        if self._proc.stderr is not None:
            self._add_output(self._proc.stderr.fileno(), STDERR)
        if self._proc.stdin is not None:
            self._stdin_fd = self._proc.stdin.fileno()
            os.set_blocking(self._stdin_fd, False)
            self._poller.register(self._stdin_fd, _OUTPUT_MASK)
        if self._watch.fd is not None:
            self._poller.register(self._watch.fd, select.POLLIN)

    def _add_output(self, fd: int, stream: int) -> None:
        self._outputs[fd] = stream
        self._poller.register(fd, _INPUT_MASK)

    def _step(self) -> None:
        events = self._poller.poll(self._poll_timeout_ms())
        for fd, _mask in events:
            if fd in self._outputs:
                self._read(fd)
            elif fd == self._stdin_fd:
                self._write_stdin()
            elif fd == self._watch.fd:
                self._on_leader_exit()
        self._check_clock()

    def _poll_timeout_ms(self) -> int | None:
        moments = [t for t in (self._deadline, self._kill_at, self._drain_until) if t is not None]
        wait = min(moments) - time.monotonic() if moments else None
        if self._watch.fd is None and self._drain_until is None:
            wait = CHECK_INTERVAL if wait is None else min(wait, CHECK_INTERVAL)
        # poll() takes at most 2**31 - 1 ms; a longer wait is simply taken in pieces.
        return None if wait is None else min(max(0, int(wait * 1000) + 1), _POLL_MAX_MS)

    def _read(self, fd: int) -> None:
        data = os.read(fd, READ_SIZE)
        if not data:
            self._poller.unregister(fd)
            del self._outputs[fd]
            return
        self._sink.feed(self._outputs[fd], data)
        if self._drain_until is not None:
            self._drain_until = min(time.monotonic() + DRAIN_IDLE, self._drain_limit)

    def _write_stdin(self) -> None:
        assert self._stdin_fd is not None
        try:
            written = os.write(self._stdin_fd, self._pending[:READ_SIZE])
        except BlockingIOError:
            return
        except OSError:
            written = len(self._pending)  # the reader is gone (EPIPE): drop the rest
        self._pending = self._pending[written:]
        if not self._pending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self._stdin_fd is None:
            return
        self._poller.unregister(self._stdin_fd)
        self._stdin_fd = None
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):  # EPIPE: the process did not read all its input
            self._proc.stdin.close()

    def _on_leader_exit(self) -> None:
        if self._watch.fd is not None:
            self._poller.unregister(self._watch.fd)
        self._group.leader_exited()
        self._group.kill()  # its group goes with it; their pipe ends close and EOF comes
        self._sweep()
        self._close_stdin()
        now = time.monotonic()
        self._drain_limit = now + DRAIN_LIMIT
        self._drain_until = now + DRAIN_IDLE
        self._deadline = self._kill_at = None

    def _check_clock(self) -> None:
        now = time.monotonic()
        if self._drain_until is not None:
            if now >= self._drain_until:
                self._outputs.clear()  # someone outside the group holds the pipe: stop here
            return
        if self._watch.fd is None and self._watch.has_exited():
            self._on_leader_exit()
            return
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self.timed_out = True
            self._group.signal(signal.SIGTERM)
            self._kill_at = now + self._grace_period
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None
            self._group.kill()
