"""Supervising steps' processes on this machine: the local `ProcessRunner`.

Every process of a runner is supervised by one thread, the supervising loop
(`wfrun.executors.supervisor`): it spawns (`wfrun.executors.spawn`), drains the pipes into the
sinks, watches exits, applies timeouts and cancellations, and calls each process's `on_done`.
`start` hands it a process and returns at once: the scheduler starts steps that way, with no
thread per step. `run` is `start` plus waiting for the end, for callers that want a blocking
call (agent steps, a Dask worker).

A thread that has nothing else to wait for (the scheduler's) can `drive` the runner instead:
the processes it starts are then supervised by a loop it runs itself, between its own work
(`SupervisingLoop.turn`), with no other thread between a step's start and its end. Processes
that other threads start still go to the runner's own supervising thread.

No process of a step outlives it: once the main process has exited, whatever is left of its
process group is SIGKILLed, and on Linux what left the group is found and killed too
(`escapes`). The guardian (`guardian`) does the same if wfrun itself is killed.
"""

from __future__ import annotations

import itertools
import os
import threading

from wfrun.executors.base import CancelToken
from wfrun.executors.escapes import EscapeCatcher
from wfrun.executors.guardian import Guardian, shared_guardian
from wfrun.executors.process import OutputSink, ProcessResult, ProcessSpec
from wfrun.executors.spawn import Spawner
from wfrun.executors.supervisor import (
    DRAIN_IDLE,
    DRAIN_LIMIT,
    READ_SIZE,
    STARTERS,
    Launch,
    OnDone,
    SupervisingLoop,
    Sweep,
)

__all__ = ["DRAIN_IDLE", "DRAIN_LIMIT", "READ_SIZE", "LocalProcessRunner"]

_runner_numbers = itertools.count(1)


class LocalProcessRunner:
    """Runs processes here, each in its own session, and leaves none behind (module docstring).

    One runner serves a whole run and may be used from many threads at once. After `close` it
    can be used again: the next process starts a new loop.
    """

    def __init__(
        self,
        guardian: Guardian | None = None,
        *,
        posix_spawn: bool = False,
        starters: int = STARTERS,
    ) -> None:
        self._guardian = guardian
        self._posix_spawn = posix_spawn  # measured slower here: see `spawn`'s docstring
        self._starters = starters
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._escapes: EscapeCatcher | None = None
        self._tag_prefix: str | None = None
        self._loop: SupervisingLoop | None = None
        self._driven: SupervisingLoop | None = None  # the loop a thread runs itself (`drive`)
        self._spawner: Spawner | None = None
        self._pid = 0

    def start(
        self, spec: ProcessSpec, cancel: CancelToken, sink: OutputSink, on_done: OnDone
    ) -> None:
        """Start the process and return; `on_done(result)` is called on the supervising thread
        when it has ended (at once if it could not start). The sink is fed on that thread.
        From the thread that `drive`s this runner, that thread is the supervising one."""
        driven = self._driven
        if driven is not None and driven.owner == threading.get_ident() and driven.alive:
            driven.start(Launch(spec, cancel, sink, on_done, self._new_tag()))
            return
        loop, tag = self._prepare()
        loop.start(Launch(spec, cancel, sink, on_done, tag))

    def drive(self) -> SupervisingLoop | None:
        """Make the calling thread the supervising thread of the processes it starts from now
        on, until `close`: it must call the returned loop's `turn` whenever it waits (and
        `wake` it from other threads that want its attention). None when another thread drives
        this runner already: that thread's processes stay its own, this one's go to the
        runner's supervising thread."""
        with self._lock:
            self._reset_after_fork()
            driven = self._driven
            if driven is not None and driven.alive:
                return driven if driven.owner == threading.get_ident() else None
            sweep = self._prepare_shared()
            assert self._guardian is not None and self._spawner is not None
            self._driven = SupervisingLoop(
                self._spawner, self._guardian, sweep, self._starters, driven=True
            )
            return self._driven

    def run(self, spec: ProcessSpec, cancel: CancelToken, sink: OutputSink) -> ProcessResult:
        if cancel.cancelled:
            return ProcessResult(cancelled=True)
        ended = threading.Event()
        results: list[ProcessResult] = []

        def on_done(result: ProcessResult) -> None:
            results.append(result)
            ended.set()

        self.start(spec, cancel, sink, on_done)
        ended.wait()
        return results[0]

    def close(self) -> None:
        """The run is over: kill what still runs, then anything adopted that still carries this
        runner's tag. Safe to call more than once."""
        with self._lock:
            loop, self._loop = self._loop, None
            driven, self._driven = self._driven, None
            spawner, self._spawner = self._spawner, None
            escapes, self._escapes = self._escapes, None
            prefix, self._tag_prefix = self._tag_prefix, None
        if loop is not None:
            loop.stop()
        if driven is not None:
            # On its owner's thread, ends what it still supervises; from any other, only tells
            # it to (its owner closes the runner too: the scheduler does, on its thread).
            driven.stop()
        if spawner is not None:
            spawner.close()
        if escapes is not None and prefix is not None:
            escapes.sweep(prefix, prefix=True)
            escapes.close()

    def _prepare(self) -> tuple[SupervisingLoop, str]:
        with self._lock:
            self._reset_after_fork()
            if self._loop is None or not self._loop.alive:  # first use, or after a crash
                sweep = self._prepare_shared()
                assert self._guardian is not None and self._spawner is not None
                self._loop = SupervisingLoop(self._spawner, self._guardian, sweep, self._starters)
            return self._loop, self._new_tag()

    def _new_tag(self) -> str:
        return f"{self._tag_prefix}:{next(self._numbers)}"

    def _reset_after_fork(self) -> None:
        if self._pid != os.getpid():  # a forked child has none of its parent's threads
            self._loop = self._driven = self._escapes = self._spawner = None
            self._pid = os.getpid()

    def _prepare_shared(self) -> Sweep:
        """What both loops share (under the lock): the escape catcher, the guardian, the tags'
        prefix and the spawner; returns the sweep."""
        if self._escapes is None:
            self._escapes = EscapeCatcher()
            guardian = self._guardian or shared_guardian()
            self._guardian = guardian
            self._tag_prefix = f"{guardian.token}-{next(_runner_numbers)}"
        if self._spawner is None:
            self._spawner = Spawner(self._posix_spawn)
        return self._escapes.sweep
