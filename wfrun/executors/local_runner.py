"""Supervising steps' processes on this machine: the local `ProcessRunner`.

Every process of a runner is supervised by one thread, the supervising loop
(`wfrun.executors.supervisor`): it spawns (`wfrun.executors.spawn`), drains the pipes into the
sinks, watches exits, applies timeouts and cancellations, and calls each process's `on_done`.
`start` hands it a process and returns at once: the scheduler starts steps that way, with no
thread per step. `run` is `start` plus waiting for the end, for callers that want a blocking
call (agent steps, a Dask worker).

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
        self._spawner: Spawner | None = None
        self._pid = 0

    def start(
        self, spec: ProcessSpec, cancel: CancelToken, sink: OutputSink, on_done: OnDone
    ) -> None:
        """Start the process and return; `on_done(result)` is called on the supervising thread
        when it has ended (at once if it could not start). The sink is fed on that thread."""
        loop, tag = self._prepare()
        loop.start(Launch(spec, cancel, sink, on_done, tag))

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
            spawner, self._spawner = self._spawner, None
            escapes, self._escapes = self._escapes, None
            prefix, self._tag_prefix = self._tag_prefix, None
        if loop is not None:
            loop.stop()
        if spawner is not None:
            spawner.close()
        if escapes is not None and prefix is not None:
            escapes.sweep(prefix, prefix=True)
            escapes.close()

    def _prepare(self) -> tuple[SupervisingLoop, str]:
        with self._lock:
            if self._pid != os.getpid():  # a forked child has none of its parent's threads
                self._loop = self._escapes = None
                self._pid = os.getpid()
            if self._loop is None or not self._loop.alive:  # first use, or after a crash
                if self._escapes is None:
                    self._escapes = EscapeCatcher()
                    guardian = self._guardian or shared_guardian()
                    self._guardian = guardian
                    self._tag_prefix = f"{guardian.token}-{next(_runner_numbers)}"
                assert self._guardian is not None
                escapes = self._escapes
                self._spawner = Spawner(self._posix_spawn)
                self._loop = SupervisingLoop(
                    self._spawner, self._guardian, escapes.sweep, self._starters
                )
            return self._loop, f"{self._tag_prefix}:{next(self._numbers)}"
