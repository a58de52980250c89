"""Steps on a Dask cluster: the `DaskProcessRunner` (SPEC §9). Imported only for `--executor dask`.

Dask executes, wfrun schedules: the dispatcher has already reserved a step's pool units and cap
slot when `run` is called, and `run` submits one task that supervises the step's process on a
worker with the local runner (own process group, drained pipes, timeout, SIGTERM then SIGKILL,
escapes swept, the worker process's guardian). What travels, all through the scheduler:

* The step's ticket queue (a distributed `Queue`), which holds one *ticket* before the task is
  submitted; the task takes it (an atomic get) before it starts the process. Dask re-runs the
  task of a worker it lost; the re-run finds no ticket and refuses to run, so a step's process
  never runs twice behind the user's back, and the step fails with `worker tcp://… died`. This
  side reads the ticket queue only to take the ticket back when the step is cancelled: a task
  still waiting for a worker thread keeps its ticket however long it waits, and one whose
  ticket was taken back never starts.
* The step's output queue: the worker sends lists of messages: `start` (its address), output
  batches, the step's WFRUN_OUTPUT file, `end` (how the process ended).
* Events: `bell` (the worker put something: this side waits on it, so a quiet step costs one
  long poll, and a look at its worker, a second), `ack` (this side drained a full queue: a
  step printing faster than its log is written waits for it, as a local step waits on its
  pipe, so memory stays bounded everywhere, §3.7, and the log still gets every byte), `stop`
  and `kill` (a cancel: SIGTERM then SIGKILL after the grace period, or SIGKILL now).
  `client.cancel` does not stop a running task; the worker's watcher does, on `stop`/`kill` or
  when the task's key is released (this side went away), within WATCH_INTERVAL.

Events and queue gets are used only in forms that never time out on the scheduler (a timed-out
`Queue.get` logs an error there).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import distributed
from distributed import Client, Event, LocalCluster, Queue
from distributed.comm.core import CommClosedError

from wfrun.executors.base import CancelToken
from wfrun.executors.cluster import DaskOptions, DaskSetupError
from wfrun.executors.dask_connect import QuietLogs, check_address, open_client
from wfrun.executors.local_runner import LocalProcessRunner
from wfrun.executors.process import OutputSink, ProcessResult, ProcessSpec
from wfrun.outputs import OutputError, open_outputs_file

OUTPUT_VARIABLE = "WFRUN_OUTPUT"  # a file the step writes on the worker, written again here
BATCH_BYTES = 64 * 1024  # the most one output message carries
PARCEL_BYTES = 256 * 1024  # the most output one parcel (one queue item) carries
BATCH_INTERVAL = 0.05  # the worker sends at most this often (a fast step: start and end at once)
QUEUE_DEPTH = 8  # lists of messages a step may have waiting on the scheduler
BACKLOG_LIMIT = 1024 * 1024  # bytes a worker holds for a step before its pump waits
WATCH_INTERVAL = 0.5  # the worker checks for a cancel or an abandoned task this often
FOLLOW_INTERVAL = 1.0  # this side checks for a lost worker when the step is this quiet
LOST_AFTER = 3.0  # a worker gone from the scheduler this long has died

TICKET = "ticket"
START, DATA, FILE, END, REFUSED = "start", "data", "file", "end", "refused"


@dataclass(frozen=True, slots=True)
class Channels:
    """The names of a step's queue and events on the scheduler."""

    key: str

    @property
    def output(self) -> str:
        return f"{self.key}-output"

    @property
    def ticket(self) -> str:
        return f"{self.key}-ticket"

    def event(self, name: str) -> str:
        return f"{self.key}-{name}"


def connect(options: DaskOptions) -> DaskProcessRunner:
    """A runner on the scheduler at `options.scheduler`, or on a new local cluster, connected
    now (DaskSetupError) so that a run does not start without its cluster."""
    runner = DaskProcessRunner(options)
    runner.connect()
    return runner


def _open(options: DaskOptions) -> tuple[Client, LocalCluster | None]:
    if options.scheduler is None:
        cluster = LocalCluster(
            n_workers=options.workers,
            threads_per_worker=options.threads,
            processes=False,  # workers are threads of wfrun: its guardian covers them too
            dashboard_address=":0",  # no fixed port: another cluster may hold 8787
            silence_logs=logging.CRITICAL,  # a cancelled long poll at close is no news
        )
        return Client(cluster, set_as_default=False), cluster
    return open_client(check_address(options.scheduler), options.connect_timeout), None


class DaskProcessRunner:
    """A `ProcessRunner` whose processes run on the workers of a Dask cluster.

    One runner serves a run and may be used from many threads at once. `close` (the end of a
    run) disconnects and stops the local cluster; the next run connects again.
    """

    def __init__(self, options: DaskOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._chores = _Chores()
        self._token = secrets.token_hex(4)
        self._numbers = itertools.count(1)

    def connect(self) -> Client:
        """The client, connecting (or starting the local cluster) first if need be."""
        with self._lock:
            if self._client is None:
                QuietLogs.hold()
                try:
                    self._client, self._cluster = _open(self.options)
                except BaseException:
                    QuietLogs.release()
                    raise
                self._chores = _Chores()
            return self._client

    @property
    def address(self) -> str:
        client = self._client
        address = getattr(client and client.scheduler, "address", self.options.scheduler)
        return str(address or "the local cluster")

    def run(self, spec: ProcessSpec, cancel: CancelToken, sink: OutputSink) -> ProcessResult:
        if cancel.cancelled:
            return ProcessResult(cancelled=True)
        channels = Channels(f"wfrun-{self._token}-{next(self._numbers)}")
        try:
            client = self.connect()
            output = Queue(channels.output, client=client)
            ticket = Queue(channels.ticket, client=client)
        except (DaskSetupError, OSError, TimeoutError) as exc:  # CommClosedError: an OSError
            return ProcessResult(failure=self._lost_scheduler(exc))
        stopper = _Stopper(client, channels, self._chores, ticket)
        try:
            ticket.put(TICKET)
            # The working directory as this side resolves it: the worker's own is elsewhere.
            shipped = spec._replace(cwd=spec.cwd.absolute())
            future = client.submit(
                run_on_worker, shipped, channels, key=channels.key, pure=False, retries=0
            )
            unregister = cancel.on_cancel(stopper.stop)
            try:
                follower = _Follower(client, channels, future, output, sink, spec)
                return follower.follow(stopper.claimed)
            finally:
                unregister()
                if not future.done():
                    future.cancel()  # a re-run waiting for a worker, say
        except (OSError, TimeoutError) as exc:
            return ProcessResult(failure=self._lost_scheduler(exc))
        finally:
            stopper.finish()
            for queue in (output, ticket):
                with contextlib.suppress(Exception):  # a closed client: nothing left to release
                    queue.close()

    def _lost_scheduler(self, exc: BaseException) -> str:
        # distributed's text for a closed comm names its internals ("in <TCP (closed) …>").
        why = "its connection closed" if isinstance(exc, CommClosedError) else str(exc)
        return f"lost the Dask scheduler at {self.address}: {why}"

    def close(self) -> None:
        with self._lock:
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
        self._chores.close()
        with contextlib.suppress(Exception):
            if client is not None:
                client.close()
        with contextlib.suppress(Exception):
            if cluster is not None:
                cluster.close()
        if client is not None:
            QuietLogs.release()


class _Stopper:
    """Sets a step's `stop`/`kill` events when it is cancelled, and clears them when it has
    ended (an event left set would live on the scheduler for ever)."""

    def __init__(self, client: Client, channels: Channels, chores: _Chores, ticket: Queue) -> None:
        self._events = {
            force: Event(channels.event("kill" if force else "stop"), client=client)
            for force in (False, True)
        }
        self._chores = chores
        self._set: list[Event] = []
        self._ticket = ticket
        self.claimed = threading.Event()  # the ticket taken back: the task never starts

    def stop(self, force: bool) -> None:
        """The CancelToken's callback: on the scheduler's loop, which must not wait on the
        network, so the event is set from the chores thread."""
        if not self._set:
            # A step cancelled while its task waits for a worker thread never starts: the
            # ticket taken back (an atomic get, as the task's own) before any stop is sent,
            # since a stopped step frees a thread that a waiting task would take at once.
            self._chores.do(self._claim, first=True)
        events = [self._events[False], self._events[True]] if force else [self._events[False]]
        self._set.extend(events)
        for event in events:
            self._chores.do(event.set)

    def _claim(self) -> None:
        if self._ticket.get(batch=True) == [TICKET]:
            self.claimed.set()

    def finish(self) -> None:
        for event in dict.fromkeys(self._set):
            self._chores.do(event.clear)


class _Follower:
    """This side of one step: reads the output queue until the process has ended."""

    def __init__(
        self,
        client: Client,
        channels: Channels,
        future: distributed.Future[None],
        output: Queue,
        sink: OutputSink,
        spec: ProcessSpec,
    ) -> None:
        self._client, self._future, self._output = client, future, output
        self._bell = Event(channels.event("bell"), client=client)
        self._ack = Event(channels.event("ack"), client=client)
        self._acked = False
        self._sink, self._spec = sink, spec
        self._where: str | None = None
        self._file = bytearray()
        self._missing_since: float | None = None
        self._claimed = threading.Event()  # follow's: the task never starts

    def follow(self, claimed: threading.Event) -> ProcessResult:
        """The process's result; cancelled, with no worker, once `claimed` (the Stopper took the
        ticket back before the task could)."""
        self._claimed = claimed
        try:
            silent_ends = 0  # looks at the queue after the task ended that found no end
            while True:
                rang = self._bell.wait(timeout=FOLLOW_INTERVAL)
                if rang:
                    self._bell.clear()
                if self._claimed.is_set():
                    return ProcessResult(cancelled=True)
                ended = self._future.status == "finished"
                # Without a ring, still look when the worker's address may be waiting (it is
                # sent without one) or the task has ended (a ring may have gone missing).
                if rang or ended or self._where is None:
                    result = self._drain()
                    if result is not None:
                        return result
                if rang:
                    continue
                silent_ends += ended
                failure = self._lost(ended_silently=silent_ends >= 2)
                if failure is not None:
                    return ProcessResult(failure=failure, where=self._where)
        finally:
            self._future.add_done_callback(self._clean_up)

    def _drain(self) -> ProcessResult | None:
        """Take every parcel waiting; the process's result if the last one came."""
        parcels = self._output.get(batch=True)
        if len(parcels) >= QUEUE_DEPTH:  # the worker may be waiting for room
            self._ack.set()
            self._acked = True
        for parcel in parcels:
            for message in parcel:
                result = self._take(message)
                if result is not None:
                    return result
        return None

    def _take(self, message: list[Any]) -> ProcessResult | None:
        kind = message[0]
        if kind == DATA:
            self._sink.feed(int(message[1]), bytes(message[2]))
        elif kind == START:
            self._where = str(message[1])
        elif kind == FILE:
            self._file += message[1]
        elif kind == END:
            result: ProcessResult = pickle.loads(message[1])
            return result._replace(where=self._where, failure=self._deliver_file(result))
        elif kind == REFUSED:
            if self._claimed.is_set():  # refused for want of the ticket this side took back
                return ProcessResult(cancelled=True)
            return ProcessResult(failure=self._died(), where=self._where)
        return None

    def _clean_up(self, future: distributed.Future[None]) -> None:
        """Once the task is over, nobody rings the bell any more: clear it for good."""
        with contextlib.suppress(Exception):
            self._bell.clear()
            if self._acked:
                self._ack.clear()

    def _died(self) -> str:
        if self._where is None:
            return "the Dask worker running it died"
        return f"worker {self._where} died"

    def _lost(self, ended_silently: bool = False) -> str | None:
        """Why the step can no longer end normally, or None while it may."""
        future = self._future
        if future.done():
            exc = future.exception() if future.status == "error" else None
            if isinstance(exc, distributed.KilledWorker):
                return f"worker {self._where or exc.last_worker.address} died"
            if exc is not None:
                return f"the step's Dask task failed: {exc!r}"
            if future.status == "cancelled":
                return "the step's Dask task was cancelled by someone else"
            if ended_silently:  # a worker that lost the scheduler on the way, say
                where = f" on {self._where}" if self._where else ""
                return f"the step's Dask task{where} ended without saying how the process ended"
            return None
        if self._where is None:
            return None  # still waiting for a worker: only Dask knows when one comes
        # Asked of the scheduler (only about this worker): one Dask has not re-run the task
        # elsewhere for, or not yet. Missing for a while, not once, in case it is reconnecting.
        if self._where in self._client.nthreads(workers=[self._where]):
            self._missing_since = None
            return None
        now = time.monotonic()
        if self._missing_since is None:
            self._missing_since = now
        return self._died() if now - self._missing_since >= LOST_AFTER else None

    def _deliver_file(self, result: ProcessResult) -> str | None:
        """Write what the step put in its WFRUN_OUTPUT file on the worker into the file here."""
        path = self._spec.env.get(OUTPUT_VARIABLE)
        if path is None or not self._file:
            return result.failure
        try:
            with open(path, "ab") as file:
                file.write(self._file)
        except OSError as exc:
            return f"cannot write the step's outputs to {path}: {exc.strerror}"
        return result.failure


class _Chores:
    """Runs small network chores in order on a thread of its own."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._pending: list[Callable[[], object]] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def do(self, chore: Callable[[], object], first: bool = False) -> None:
        with self._wake:
            if self._closed:
                return
            self._pending.insert(0 if first else len(self._pending), chore)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="wfrun-dask-chores", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def close(self) -> None:
        """Finish what is pending (for a few seconds at most), then stop."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            for chore in batch:
                with contextlib.suppress(Exception):  # the scheduler is gone: nothing to undo
                    chore()


# ---- the worker's side -------------------------------------------------------------------------

_local_runner: LocalProcessRunner | None = None
_local_runner_lock = threading.Lock()


def _worker_runner() -> LocalProcessRunner:
    """One local runner per worker process: the process's guardian and escape catcher."""
    global _local_runner
    with _local_runner_lock:
        if _local_runner is None:
            _local_runner = LocalProcessRunner()
        return _local_runner


def run_on_worker(spec: ProcessSpec, channels: Channels) -> None:
    """The task: take the ticket, run the process under local supervision, report back."""
    worker = distributed.get_worker()
    client = distributed.get_client()
    link = _Link(client, channels, lambda: _abandoned(worker, channels.key))
    try:
        ticket = Queue(channels.ticket, client=client)
        try:
            taken = ticket.get(batch=True)
        finally:
            with contextlib.suppress(Exception):
                ticket.close()
        if taken != [TICKET]:
            # Dask re-runs the task of a worker it lost: the process may have run there.
            link.put([[REFUSED]])
            return
        # Sent before the process starts, without ringing (the next parcel rings): if this
        # worker dies, this side can say which one, however soon it dies.
        if not link.put([[START, worker.address]], ring=False):
            return  # nobody could follow the step: it does not start
        courier = _Courier(link)
        token = CancelToken()
        done = threading.Event()
        watcher = threading.Thread(
            target=_watch,
            args=(client, channels, token, done, link.abandoned),
            name=f"wfrun-watch-{channels.key}",
            daemon=True,
        )
        watcher.start()
        try:
            result = _run_with_output_file(spec, token, courier)
        finally:
            done.set()
        courier.send([END, pickle.dumps(result)])
        courier.close()
    finally:
        with contextlib.suppress(Exception):
            link.output.close()


def _abandoned(worker: distributed.Worker, key: str) -> bool:
    """Nobody waits for this task any more (the submitting side cancelled it or went away)."""
    task = worker.state.tasks.get(key)
    return task is None or task.state in ("cancelled", "released", "forgotten")


def _watch(
    client: Client,
    channels: Channels,
    token: CancelToken,
    done: threading.Event,
    abandoned: Callable[[], bool],
) -> None:
    """Turns the `stop` and `kill` events into a cancel of the local process."""
    stop = Event(channels.event("stop"), client=client)
    kill = Event(channels.event("kill"), client=client)
    waiting_for = stop
    while not done.is_set():
        try:
            rang = waiting_for.wait(timeout=WATCH_INTERVAL)
        except Exception:  # the scheduler is gone: nobody can follow the step any more
            rang, waiting_for = True, kill
        if rang and waiting_for is stop:
            token.cancel("cancelled by wfrun")
            waiting_for = kill
        elif rang:
            token.cancel("killed by wfrun", force=True)
            return
        elif abandoned():
            token.cancel("abandoned by wfrun")


def _run_with_output_file(
    spec: ProcessSpec, token: CancelToken, courier: _Courier
) -> ProcessResult:
    """Run the process; its WFRUN_OUTPUT file is a private file on the worker, sent back."""
    if OUTPUT_VARIABLE not in spec.env:
        return _worker_runner().run(spec, token, courier)
    fd, path = tempfile.mkstemp(prefix="wfrun-output-")
    os.close(fd)
    try:
        env = {**spec.env, OUTPUT_VARIABLE: path}
        result = _worker_runner().run(spec._replace(env=env), token, courier)
        try:
            reader = open_outputs_file(path, shown=spec.env[OUTPUT_VARIABLE])
        except OutputError as exc:
            # Judged as it is here: a step that ended well fails, saying what it did to the file.
            return result._replace(failure=str(exc)) if result.returncode == 0 else result
        if reader is None:
            return result
        with os.fdopen(reader, "rb") as file:
            while chunk := file.read(BATCH_BYTES):
                courier.send([FILE, chunk])
        return result
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


class _Link:
    """The worker's end of a step's output queue: puts parcels (lists of messages), rings the
    bell after each, and waits for the `ack` event while QUEUE_DEPTH parcels are unread."""

    def __init__(self, client: Client, channels: Channels, abandoned: Callable[[], bool]) -> None:
        self.output = Queue(channels.output, client=client)
        self.abandoned = abandoned
        self._bell = Event(channels.event("bell"), client=client)
        self._ack = Event(channels.event("ack"), client=client)
        self._unread = 0  # at most: parcels put since the queue's size was last looked at

    def put(self, parcel: list[list[Any]], ring: bool = True) -> bool:
        """Send one parcel; False when nobody reads any more (or the scheduler is gone)."""
        try:
            if self._unread >= QUEUE_DEPTH and not self._wait_for_room():
                return False
            self.output.put(parcel)
            self._unread += 1
            if ring:
                self._bell.set()
        except Exception:  # CommClosedError, a closed client: the step is lost to this side
            return False
        return True

    def _wait_for_room(self) -> bool:
        while True:
            self._ack.clear()  # before looking: a drain after the look sets it again
            self._unread = self.output.qsize()
            if self._unread < QUEUE_DEPTH:
                return True
            if self.abandoned():
                return False
            self._ack.wait(timeout=WATCH_INTERVAL)


class _Courier:
    """The worker's `OutputSink`: gathers the bytes and sends them from a thread of its own, so
    that the pump never waits on the network unless BACKLOG_LIMIT bytes are already waiting."""

    def __init__(self, link: _Link) -> None:
        self._link = link
        self._lock = threading.Condition()
        self._pending: list[list[Any]] = []
        self._size = 0
        self._closing = False
        self._broken = False  # nobody reads any more: drop what comes
        self._thread = threading.Thread(target=self._deliver, name="wfrun-courier", daemon=True)
        self._thread.start()

    def feed(self, stream: int, data: bytes) -> None:
        with self._lock:
            while self._size >= BACKLOG_LIMIT and not self._broken:
                self._lock.wait(WATCH_INTERVAL)
                if self._link.abandoned():
                    self._broken = True
            if self._broken:
                return
            last = self._pending[-1] if self._pending else None
            if (
                last is not None
                and last[0] == DATA
                and last[1] == stream
                and len(last[2]) + len(data) <= BATCH_BYTES
            ):
                last[2] += data
            else:
                self._pending.append([DATA, stream, bytearray(data)])
            self._size += len(data)
            self._lock.notify_all()

    def send(self, message: list[Any]) -> None:
        with self._lock:
            self._pending.append(message)
            self._lock.notify_all()

    def close(self) -> None:
        """Wait until everything is sent (or nobody reads any more)."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._thread.join()

    def _deliver(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return
                # Let start and end of a short step, or a chatty step's lines, gather.
                self._lock.wait_for(
                    lambda: self._closing or self._size >= PARCEL_BYTES, timeout=BATCH_INTERVAL
                )
                parcel, size = self._take_parcel()
            delivered = self._link.put(parcel)
            with self._lock:
                self._size -= size
                if not delivered:
                    self._broken = True
                    self._pending = []
                self._lock.notify_all()
                if not delivered:
                    return

    def _take_parcel(self) -> tuple[list[list[Any]], int]:
        """The pending messages, up to PARCEL_BYTES of output (at least one message)."""
        size = count = 0
        for message in self._pending:
            if message[0] == DATA:
                if count and size + len(message[2]) > PARCEL_BYTES:
                    break
                message[2] = bytes(message[2])
                size += len(message[2])
            count += 1
        parcel, self._pending = self._pending[:count], self._pending[count:]
        return parcel, size
