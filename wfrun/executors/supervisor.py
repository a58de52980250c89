"""The supervising loop: one thread that runs every local step's process to its end.

It spawns, drains the pipes into each step's sink, notices exits (a pidfd per process in the
same `epoll`/`poll` set as the pipes; where there is none, `exit_watch`'s fallbacks checked
every CHECK_INTERVAL), enforces timeouts, carries out SIGTERM → grace → SIGKILL and
cancellations, and completes each step by calling its `on_done` — no thread per step, no
hand-off between threads per step. Requests from other threads (start, cancel, stop) go into a
queue and wake the loop through an eventfd (a pipe where there is none); the loop alone touches
its processes.

The loop has a thread of its own, or is *driven*: the scheduler's thread runs its turns itself
where it would otherwise wait (`turn`), so a quick step is spawned, supervised, ended and handed
to the dispatcher without any thread hand-off (under CPython's GIL each hand-off costs more
than the step's own bookkeeping). A driven loop spawns on its owner's thread unless that proved
slow (see SLOW_SPAWN); its steps' ends are told at the end of the turn that saw them.

Control before data, in every turn: requests and exits are handled and due timers fired before
any pipe is read, and a pipe gives at most READ_SIZE bytes a turn. So a step that floods output
can delay another step's end or timeout by one chunk per busy pipe, never by its backlog; and
nothing is buffered beyond that chunk (the sink writes the log at once and keeps a bounded tail).

No process of a step outlives it: once the main process has exited (and while it is still
unreaped, so its group id cannot be reused), its group is SIGKILLed and what left the group is
swept (`escapes`); the guardian (`guardian`) does the same if wfrun itself is killed.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import queue
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Container
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from wfrun.executors.base import CancelToken
from wfrun.executors.escapes import TAG_VARIABLE
from wfrun.executors.exit_watch import CHECK_INTERVAL, ExitWatch, watch_exit
from wfrun.executors.guardian import Guardian
from wfrun.executors.process import (
    STDERR,
    STDOUT,
    OutputSink,
    ProcessEnd,
    ProcessResult,
    ProcessSpec,
    describe_start_error,
)
from wfrun.executors.spawn import Child, Spawner

READ_SIZE = 65536
# After the main process exits and its group is killed, only processes that left the group can
# still hold the pipes open; stop reading once they are quiet this long, or after DRAIN_LIMIT.
DRAIN_IDLE = 0.2
DRAIN_LIMIT = 2.0

OnDone = ProcessEnd

_IN = select.POLLIN | select.POLLHUP | select.POLLERR
_OUT = select.POLLOUT | select.POLLHUP | select.POLLERR
_STDIN, _EXIT, _WAKE = -1, -2, -3  # roles of a descriptor, beside STDOUT and STDERR
_DEADLINE, _KILL, _DRAIN = 0, 1, 2  # timer kinds
_LONGEST_WAIT = 86400.0  # poll() takes at most 2**31 - 1 ms; a longer wait is taken in pieces
STARTERS = 8  # most threads spawning at once (see _Starters)
# A driven loop's owner spawns itself unless its last spawn took longer than this (a busy
# machine: the child waited for a CPU before its exec); then starters do, but for one spawn in
# PROBE_EVERY that it takes itself, to see whether the machine is still busy.
SLOW_SPAWN = 0.0005
PROBE_EVERY = 16


class Sweep(Protocol):
    """`EscapeCatcher.sweep`: kill what escaped the steps with these tags; `known` are the pids
    of the processes the loop supervises, which need no looking at."""

    def __call__(self, tag: Collection[str], *, known: Container[int] = ()) -> object: ...


class Launch(NamedTuple):
    """A request to run one process: what, how to stop it, where its bytes and its end go."""

    spec: ProcessSpec
    cancel: CancelToken
    sink: OutputSink
    on_done: OnDone
    tag: str  # WFRUN_PROCESS_TAG: how escaped descendants are recognised


class _Job:
    """One running process and everything the loop knows of it."""

    __slots__ = (
        "cancelled",
        "child",
        "deadline",
        "drain_limit",
        "drain_until",
        "exited",
        "kill_at",
        "launch",
        "outputs",
        "pending",
        "stdin_fd",
        "timed_out",
        "unregister",
        "watch",
    )

    def __init__(self, launch: Launch, child: Child, watch: ExitWatch) -> None:
        self.launch, self.child, self.watch = launch, child, watch
        self.outputs: dict[int, int] = {}  # fd -> STDOUT or STDERR
        self.stdin_fd: int | None = None
        self.pending = memoryview(launch.spec.stdin or b"")
        self.deadline: float | None = None
        self.kill_at: float | None = None
        self.drain_until: float | None = None
        self.drain_limit = 0.0
        self.exited = self.timed_out = self.cancelled = False
        self.unregister: Callable[[], None] | None = None


@dataclass(slots=True, eq=False)
class _Cancel:
    """A request to stop a running job, posted to the supervising thread."""

    job: _Job
    force: bool


class _Stop:
    """Kill everything still running, finish it, and end the thread."""


class _Poller:
    """epoll where there is one (cost per ready descriptor), else poll()."""

    def __init__(self) -> None:
        epoll = getattr(select, "epoll", None)
        self._epoll = epoll() if epoll is not None else None
        self._poll = select.poll() if self._epoll is None else None

    def register(self, fd: int, mask: int) -> None:
        if self._epoll is not None:
            self._epoll.register(fd, mask)
        else:
            assert self._poll is not None
            self._poll.register(fd, mask)

    def unregister(self, fd: int) -> None:
        with contextlib.suppress(OSError, KeyError):
            if self._epoll is not None:
                self._epoll.unregister(fd)
            elif self._poll is not None:
                self._poll.unregister(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        if timeout is not None:
            timeout = min(max(timeout, 0.0), _LONGEST_WAIT)
        if self._epoll is not None:
            events: list[tuple[int, int]] = self._epoll.poll(-1 if timeout is None else timeout)
            return events
        assert self._poll is not None
        return self._poll.poll(None if timeout is None else int(timeout * 1000) + 1)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


class _Wake:
    """Wakes the loop from another thread: an eventfd, or a pipe where there is none."""

    def __init__(self) -> None:
        eventfd = getattr(os, "eventfd", None)
        if eventfd is not None:
            self.fd = self._write_fd = eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        else:
            self.fd, self._write_fd = os.pipe()
            os.set_blocking(self.fd, False)
            os.set_blocking(self._write_fd, False)

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already full: the loop will wake anyway
            os.write(self._write_fd, (1).to_bytes(8, "little"))

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 4096)

    def close(self) -> None:
        os.close(self.fd)
        if self._write_fd != self.fd:
            os.close(self._write_fd)


@dataclass(slots=True, eq=False)
class _Spawned:
    """A process a starter has spawned, with wfrun's ends of its pipes."""

    launch: Launch
    child: Child
    outputs: tuple[tuple[int, int], ...]  # (fd, STDOUT or STDERR)
    stdin: int | None  # the write end of its stdin, when it has input


def spawn_launch(spawner: Spawner, launch: Launch) -> _Spawned | None:
    """Make the pipes and spawn; None when it did not start (`on_done` has been told why)."""
    spec = launch.spec
    if launch.cancel.cancelled:
        _call(launch.on_done, ProcessResult(cancelled=True))
        return None
    theirs: list[int] = []  # the child's ends, closed here once it has them
    ours: list[tuple[int, int]] = []
    stdin_r = stdin_w = None
    try:
        out_r, out_w = os.pipe()
        os.set_blocking(out_r, False)  # the drain reads without asking poll() first
        ours.append((out_r, STDOUT))
        theirs.append(out_w)
        err_w = out_w
        if spec.capture_stdout:
            err_r, err_w = os.pipe()
            os.set_blocking(err_r, False)
            ours.append((err_r, STDERR))
            theirs.append(err_w)
        if spec.stdin is not None:
            stdin_r, stdin_w = os.pipe()
            theirs.append(stdin_r)
            os.set_blocking(stdin_w, False)
        env = dict(spec.env)
        env[TAG_VARIABLE] = launch.tag
        child = spawner.spawn(spec.argv, spec.cwd, env, stdin_r, out_w, err_w)
    except (OSError, ValueError) as exc:
        for fd in [fd for fd, _ in ours] + ([stdin_w] if stdin_w is not None else []):
            os.close(fd)
        _call(launch.on_done, ProcessResult(start_error=describe_start_error(exc, spec)))
        return None
    finally:
        for fd in theirs:
            os.close(fd)
    return _Spawned(launch, child, tuple(ours), stdin_w)


class _Starters:
    """Threads that spawn. Spawning waits for the child's exec (Popen's vfork, like every spawn
    that reports a failed exec), about a millisecond on a busy machine; several starters overlap
    those waits, as a thread pool of Popen does. Started as needed, up to `most`."""

    def __init__(self, spawn: Callable[[Launch], None], most: int) -> None:
        self._spawn = spawn
        self._most = most
        self._queue: queue.SimpleQueue[Launch | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._stopped = False

    def submit(self, launch: Launch) -> None:
        with self._lock:
            if self._stopped:
                _call(launch.on_done, ProcessResult(failure="the runner was closed"))
                return
            if self._idle == 0 and len(self._threads) < self._most:
                thread = threading.Thread(target=self._work, name="wfrun-starter", daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1  # spoken for: the next submit must not count it
        self._queue.put(launch)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def _work(self) -> None:
        while True:
            launch = self._queue.get()
            if launch is None:
                return
            try:
                self._spawn(launch)
            except BaseException as exc:  # never leave the caller waiting for an end
                _call(launch.on_done, ProcessResult(failure=f"internal error: {exc!r}"))
            with self._lock:
                self._idle += 1


class SupervisingLoop:
    """The thread that supervises every process of one runner (module docstring).

    `start` and `stop` may be called from any thread; `on_done` and the sinks are called on the
    loop's thread, and must be quick: they delay every other step while they run.

    `driven`: the loop has no thread of its own; the thread that made it (the scheduler's) is
    its thread, and runs it by calling `turn` between its own work: a process is supervised
    and ended, and its end handed to the scheduler, with no hand-off between threads (the
    GIL's hand-offs were most of a quick step's cost). The owner spawns itself when nothing
    else runs; otherwise a starter does. Other threads may still `start` (their processes are
    spawned at the owner's next turn) and `wake` it; `stop` must come from the owner.
    """

    def __init__(
        self,
        spawner: Spawner,
        guardian: Guardian,
        sweep: Sweep,
        starters: int = STARTERS,
        *,
        driven: bool = False,
    ) -> None:
        self._spawner, self._guardian, self._sweep = spawner, guardian, sweep
        self._poller = _Poller()
        self._wake = _Wake()
        self._poller.register(self._wake.fd, select.POLLIN)
        self._requests: deque[_Spawned | _Cancel | _Stop | Launch] = deque()
        self._woken = False
        self._fds: dict[int, tuple[_Job, int]] = {}
        self._jobs: set[_Job] = set()
        self._pids: set[int] = set()  # of the jobs' main processes, until they are reaped
        # Process groups started (True) and ended (False) this turn, told the guardian at its end.
        self._guard: list[tuple[bool, int]] = []
        # The turn's ends, settled at its end (`_settle`): the tags of the steps that exited
        # or ended, swept in one look at the adoptees, then the `on_done` of those that ended.
        self._unswept: set[str] = set()
        self._ended: list[tuple[OnDone, ProcessResult]] = []
        self._polled: set[_Job] = set()  # exit watchers without a descriptor
        self._next_check = 0.0
        self._timers: list[tuple[float, int, int, _Job]] = []
        self._order = itertools.count()
        self._stopping = False
        self._count_lock = threading.Lock()
        self._count_changed = threading.Condition(self._count_lock)
        self._busy = 0  # processes started and not yet finished, spawning ones included
        self._spawning = 0  # callers spawning on their own thread at this moment
        self._closed = False
        self._fds_closed = False
        self._slow_spawn = False  # a driven loop's last spawn on its owner's thread was slow
        self._delegated = 0
        # The thread that runs the loop: the owner when driven, else a thread of its own.
        self.owner: int | None = threading.get_ident() if driven else None
        self._thread: threading.Thread | None = None
        self._starters = _Starters(self._spawn, starters) if starters else None
        if not driven:
            self._thread = threading.Thread(target=self._run, name="wfrun-supervisor", daemon=True)
            self._thread.start()

    # ---- other threads ----------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        if self._thread is None:
            return not self._closed
        return self._thread.is_alive() and not self._closed

    def wake(self) -> None:
        """Make the owner's current or next `turn` return at once (driven loops): someone posted
        it something to do. Safe from any thread and from a signal handler: one write, no lock,
        no flag (a handler can run between any two steps of the owner's own code)."""
        if not self._fds_closed:
            self._wake.set()

    def turn(self, timeout: float | None) -> None:
        """One turn of a driven loop, on its owner's thread: wait at most `timeout` seconds (None:
        until something happens) for an exit, bytes, a due timer or a `wake`, and act on it. The
        `on_done` of every process that ended is called before it returns."""
        wait = self._wait()
        if timeout is not None and (wait is None or timeout < wait):
            wait = timeout
        self._turn(0.0 if self._requests else wait)

    def start(self, launch: Launch) -> None:
        if self.owner is not None:
            self._start_driven(launch)
            return
        with self._count_lock:
            if self._closed or self._thread is None or not self._thread.is_alive():
                _call(launch.on_done, ProcessResult(failure="the runner was closed"))
                return
            idle = self._busy == 0
            self._busy += 1
            inline = self._starters is None or idle
            self._spawning += inline
        # With nothing else running or starting (a chain of steps), the caller spawns itself:
        # it has nothing else to do meanwhile, and a hand-off to a starter would only add a
        # thread's wake-up to every step.
        if not inline:
            assert self._starters is not None
            self._starters.submit(launch)
            return
        try:
            self._spawn(launch)
        finally:
            with self._count_lock:
                self._spawning -= 1
                self._count_changed.notify_all()

    def _start_driven(self, launch: Launch) -> None:
        if self._closed:
            _call(launch.on_done, ProcessResult(failure="the runner was closed"))
        elif threading.get_ident() == self.owner:
            if self._starters is not None and self._jobs and self._delegate():
                # Others run and spawning here was slow: the spawn's wait for the child's exec
                # (a vfork: behind every process that wants a CPU, milliseconds on a busy
                # machine) is taken on a starter, with the GIL released, while the owner goes
                # on supervising.
                self._starters.submit(launch)
                return
            # Spawned here and now: a hand-off to another thread (a wake-up, then the GIL passed
            # back and forth through the spawn) costs more than a short wait for the exec.
            started = time.monotonic()
            spawned = spawn_launch(self._spawner, launch)
            self._slow_spawn = time.monotonic() - started > SLOW_SPAWN
            if spawned is not None:
                self._adopt(spawned)
        else:
            self._post(launch)  # spawned by the owner at its next turn

    def _delegate(self) -> bool:
        """Whether the owner hands this spawn to a starter: when its last own spawn was slow,
        but for one in PROBE_EVERY, which it takes itself to see whether it still is."""
        if not self._slow_spawn:
            return False
        self._delegated += 1
        return self._delegated % PROBE_EVERY != 0

    def stop(self) -> None:
        """Kill what still runs, complete it, end the threads; returns when they have ended.
        A driven loop does it on its owner's thread, turning until every process has ended
        (from another thread it is only told to, and its owner's next turn does it)."""
        if self.owner is not None:
            self._stop_driven()
            return
        with self._count_lock:
            self._closed = True
            # A caller spawning right now posts its process before the loop is told to stop.
            self._count_changed.wait_for(lambda: self._spawning == 0)
        if self._starters is not None:
            self._starters.stop()  # from here on, a start fails at once
        if self._thread is not None and self._thread.is_alive():
            self._post(_Stop())
            self._thread.join()

    def _stop_driven(self) -> None:
        if self._fds_closed:
            return
        self._post(_Stop())
        if threading.get_ident() != self.owner:
            return
        self._closed = True
        if self._starters is not None:
            self._starters.stop()  # what they spawned is posted, and killed at its adoption
        try:
            while not (self._stopping and not self._jobs):
                self._turn(0.0 if self._requests else self._wait())
        finally:
            self._close()

    def _spawn(self, launch: Launch) -> None:
        """On a starter thread (or the caller's): spawn, then hand the process to the loop."""
        spawned = spawn_launch(self._spawner, launch)
        if spawned is None:
            self._done_with_one()
        else:
            self._post(spawned)  # the loop registers it with the guardian

    def _done_with_one(self) -> None:
        if self.owner is None:  # a driven loop does not count: only the owner starts
            with self._count_lock:
                self._busy -= 1

    def _post(self, request: _Spawned | _Cancel | _Stop | Launch) -> None:
        self._requests.append(request)
        if self.owner is not None and threading.get_ident() == self.owner:
            return  # the owner's next turn takes its requests before it waits for anything
        # One wake-up per batch: the loop clears the flag before it takes the requests.
        if not self._woken:
            self._woken = True
            self._wake.set()

    # ---- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not (self._stopping and not self._jobs):
                self._turn(self._wait())
        finally:
            self._close()

    def _turn(self, wait: float | None) -> None:
        # Processes a driven loop's owner started since the last turn, before any wait.
        self._tell_guardian()
        events = self._poller.poll(wait)
        exits: list[_Job] = []
        io: list[tuple[int, _Job, int]] = []
        woken = False
        for fd, _mask in events:
            entry = self._fds.get(fd)
            if entry is None:
                woken = woken or fd == self._wake.fd
            elif entry[1] == _EXIT:
                exits.append(entry[0])
            else:
                io.append((fd, *entry))
        if woken or self._requests:
            self._take_requests(woken)
        for job in exits:
            self._guarded(job, self._on_exit)
        self._fire_timers()
        for fd, job, role in io:
            if self._fds.get(fd, (None, 0))[0] is job:  # not closed earlier in this turn
                if role == _STDIN:
                    self._guarded(job, self._write_stdin)
                else:
                    self._guarded(job, self._read, fd)
        self._settle()
        self._tell_guardian()

    def _settle(self) -> None:
        """End the turn's ends: sweep what escaped them (after their groups were killed), then
        tell each `on_done` — so a step's end is never reported before its escapees are
        gone, and two steps ending in one turn cost one look at the adoptees, not four."""
        if self._unswept:
            tags, self._unswept = self._unswept, set()
            # A failed sweep must not lose the ends; the runner sweeps again when it closes.
            with contextlib.suppress(Exception):
                self._sweep(tags, known=self._pids)
        if self._ended:
            ended, self._ended = self._ended, []
            for on_done, result in ended:
                _call(on_done, result)

    def _tell_guardian(self) -> None:
        """One write for the turn's starts and ends, in order, from this thread alone: the
        starters never contend for the guardian's pipe. A process is registered a turn after
        its spawn; if wfrun is killed in between, the guardian's scan for the tag still finds
        it (Linux), as it finds everything that left its group."""
        if self._guard:
            changes, self._guard = self._guard, []
            self._guardian.send(changes)

    def _wait(self) -> float | None:
        moments = [self._timers[0][0]] if self._timers else []
        if self._polled:
            moments.append(self._next_check)
        return min(moments) - time.monotonic() if moments else None

    def _take_requests(self, woken: bool) -> None:
        # Clear the descriptor before the flag: a request posted after the flag is cleared
        # writes a fresh wake-up, one posted before is in the queue read below. (A driven
        # loop's owner posts without either: its requests are looked at every turn.)
        if woken:
            self._wake.clear()
            self._woken = False
        while self._requests:
            request = self._requests.popleft()
            if isinstance(request, _Spawned):
                self._adopt(request)
            elif isinstance(request, Launch):
                if self._stopping:
                    _call(request.on_done, ProcessResult(failure="the runner was closed"))
                else:
                    self._start_driven(request)
            elif isinstance(request, _Cancel):
                if request.job in self._jobs:
                    self._guarded(request.job, self._on_cancel, request.force)
            else:
                self._stopping = True
                for job in list(self._jobs):
                    self._signal(job, signal.SIGKILL)

    # ---- starting ----------------------------------------------------------------------------

    def _adopt(self, spawned: _Spawned) -> None:
        """A starter has spawned the process: supervise it from here on."""
        launch, child = spawned.launch, spawned.child
        job = _Job(launch, child, watch_exit(child))
        self._jobs.add(job)
        self._pids.add(child.pid)
        self._guard.append((True, child.pid))
        for fd, stream in spawned.outputs:
            self._add_fd(job, fd, stream, _IN)
        if spawned.stdin is not None:
            job.stdin_fd = spawned.stdin
            self._add_fd(job, spawned.stdin, _STDIN, _OUT)
        if job.watch.fd is not None:
            self._add_fd(job, job.watch.fd, _EXIT, select.POLLIN)
        else:
            if not self._polled:
                self._next_check = time.monotonic() + CHECK_INTERVAL
            self._polled.add(job)
        if launch.spec.timeout is not None:
            job.deadline = time.monotonic() + launch.spec.timeout
            self._arm(job, _DEADLINE, job.deadline)
        if self._stopping:
            self._signal(job, signal.SIGKILL)
        job.unregister = launch.cancel.on_cancel(lambda force: self._post(_Cancel(job, force)))

    def _add_fd(self, job: _Job, fd: int, role: int, mask: int) -> None:
        if role in (STDOUT, STDERR):
            job.outputs[fd] = role
        self._fds[fd] = (job, role)
        self._poller.register(fd, mask)

    def _drop_fd(self, fd: int, close: bool = True) -> None:
        entry = self._fds.pop(fd, None)
        if entry is None:
            return
        self._poller.unregister(fd)
        entry[0].outputs.pop(fd, None)
        if close:
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---- bytes -------------------------------------------------------------------------------

    def _read(self, job: _Job, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop_fd(fd)
            self._maybe_finish(job)
            return
        job.launch.sink.feed(job.outputs[fd], data)
        if job.drain_until is not None:
            job.drain_until = min(time.monotonic() + DRAIN_IDLE, job.drain_limit)
            self._arm(job, _DRAIN, job.drain_until)

    def _write_stdin(self, job: _Job) -> None:
        assert job.stdin_fd is not None
        try:
            written = os.write(job.stdin_fd, job.pending[:READ_SIZE])
        except BlockingIOError:
            return
        except OSError:
            written = len(job.pending)  # the reader is gone (EPIPE): drop the rest
        job.pending = job.pending[written:]
        if not job.pending:
            self._close_stdin(job)

    def _close_stdin(self, job: _Job) -> None:
        if job.stdin_fd is not None:
            self._drop_fd(job.stdin_fd)
            job.stdin_fd = None

    # ---- ends, timers, signals ---------------------------------------------------------------

    def _on_exit(self, job: _Job) -> None:
        """The main process has exited (not yet reaped): end its group, then drain the pipes."""
        if job.exited:
            return
        job.exited = True
        if job.watch.fd is not None:
            self._drop_fd(job.watch.fd, close=False)
        self._polled.discard(job)
        # Its group goes with it and the pipes reach EOF. Only the last-resort watcher has
        # reaped it already; the group is killed all the same (exit_watch's docstring).
        self._signal(job, signal.SIGKILL, reaped_too=True)
        self._unswept.add(job.launch.tag)  # at the turn's end, for every step that exited in it
        self._close_stdin(job)
        now = time.monotonic()
        job.deadline = job.kill_at = None
        job.drain_limit = now + DRAIN_LIMIT
        job.drain_until = now + DRAIN_IDLE
        if job.outputs:
            self._arm(job, _DRAIN, job.drain_until)
        self._maybe_finish(job)

    def _on_cancel(self, job: _Job, force: bool) -> None:
        if job.exited:
            return  # it ended on its own; what is left is killed anyway
        job.cancelled = True
        grace = job.launch.spec.grace_period
        if force or grace <= 0:
            self._signal(job, signal.SIGKILL)
        elif job.kill_at is None:
            self._terminate(job, grace)

    def _terminate(self, job: _Job, grace: float) -> None:
        self._signal(job, signal.SIGTERM)
        job.kill_at = time.monotonic() + grace
        self._arm(job, _KILL, job.kill_at)

    def _signal(self, job: _Job, signum: int, reaped_too: bool = False) -> None:
        """Signal the job's group: only while its leader is unreaped, so the id is still its."""
        if job.child.returncode is None or reaped_too:
            # The group may be gone (macOS answers PermissionError for a group of zombies).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.child.pid, signum)

    def _arm(self, job: _Job, kind: int, when: float) -> None:
        heapq.heappush(self._timers, (when, next(self._order), kind, job))

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            when, _, kind, job = heapq.heappop(self._timers)
            if job in self._jobs:
                self._guarded(job, self._on_timer, kind, when)
        if self._polled and now >= self._next_check:
            self._next_check = now + CHECK_INTERVAL
            for job in list(self._polled):
                if job.watch.has_exited():
                    self._guarded(job, self._on_exit)

    def _on_timer(self, job: _Job, kind: int, when: float) -> None:
        # A timer is stale when its moment was moved or cleared since it was armed.
        if kind == _DEADLINE and job.deadline == when:
            job.deadline = None
            job.timed_out = True
            self._terminate(job, job.launch.spec.grace_period)
        elif kind == _KILL and job.kill_at == when:
            job.kill_at = None
            self._signal(job, signal.SIGKILL)
        elif kind == _DRAIN and job.drain_until == when:
            self._drain_or_drop(job)

    def _drain_or_drop(self, job: _Job) -> None:
        """The pipes were quiet for DRAIN_IDLE, by the clock: but the loop may have been slow to
        look (timers go before reads). Bytes waiting now still go to the log; only a pipe with
        none, or one past DRAIN_LIMIT, is let go: someone outside the group holds it."""
        past_limit = time.monotonic() >= job.drain_limit
        for fd in list(job.outputs):
            if past_limit:
                self._drop_fd(fd)
                continue
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                self._drop_fd(fd)
                continue
            except OSError:
                data = b""
            if data:
                job.launch.sink.feed(job.outputs[fd], data)
            else:
                self._drop_fd(fd)
        if job.outputs:
            job.drain_until = min(time.monotonic() + DRAIN_IDLE, job.drain_limit)
            self._arm(job, _DRAIN, job.drain_until)
        self._maybe_finish(job)

    def _maybe_finish(self, job: _Job) -> None:
        if job.exited and not job.outputs and job in self._jobs:
            self._finish(job)

    def _finish(self, job: _Job, failure: str | None = None) -> None:
        self._done_with_one()
        self._jobs.discard(job)
        self._polled.discard(job)
        if failure is not None:  # cut short: it may still hold descriptors
            for fd in [fd for fd, (owner, _) in self._fds.items() if owner is job]:
                self._drop_fd(fd, close=fd != job.watch.fd)
        if job.unregister is not None:
            job.unregister()
        self._pids.discard(job.child.pid)  # reaped next: its pid may be anyone's after
        returncode = job.child.wait()
        job.watch.close()
        self._unswept.add(job.launch.tag)  # what was adopted while the pipes drained
        self._guard.append((False, job.child.pid))
        result = ProcessResult(
            returncode=returncode,
            timed_out=job.timed_out,
            cancelled=job.cancelled,
            failure=failure,
        )
        self._ended.append((job.launch.on_done, result))  # told at the turn's end

    def _guarded(self, job: _Job, action: Callable[..., object], *args: object) -> None:
        """Run `action(job, *args)`; if it raises (a sink's bug), that job fails, not the loop."""
        try:
            action(job, *args)
        except Exception as exc:
            if job in self._jobs:
                self._signal(job, signal.SIGKILL)
                self._finish(job, failure=f"internal error: {exc!r}")

    def _close(self) -> None:
        for job in list(self._jobs):  # only if the loop itself broke: still end every process
            self._signal(job, signal.SIGKILL)
            self._finish(job, failure="internal error: the supervising loop stopped")
        self._settle()
        self._tell_guardian()
        self._fds_closed = True  # before the close: a signal handler's `wake` must not write
        self._poller.close()
        self._wake.close()


def _call(on_done: OnDone, result: ProcessResult) -> None:
    with contextlib.suppress(Exception):  # the caller's bug must not stop every other step
        on_done(result)
