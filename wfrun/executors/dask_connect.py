"""Reaching an existing Dask scheduler (SPEC §9): the address checked before anything connects,
a connect bounded by a deadline that Ctrl-C can cut short, and distributed's own log lines kept
out of wfrun's output while wfrun holds a client. Imported only for `--executor dask`.

`Client(address, timeout=…)` alone is not enough: its timeout covers opening the connection, not
Dask's handshake after it, so a server that accepts and never answers (any HTTP server) keeps it
waiting for ever, and a server that answers something else makes distributed read garbage as a
frame length (a MemoryError). A Client that failed half-way also complains when it is collected.
So the scheduler is asked who it is first, on a connection of our own under `asyncio.wait_for`,
and the Client is made only once it has said "Scheduler"; all of it happens on a thread of its
own, which the caller waits for with the deadline, interruptibly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from distributed import Client
from distributed.comm.addressing import get_address_host_port, parse_address
from distributed.comm.core import connect as comm_connect
from distributed.comm.inproc import global_manager

from wfrun.executors.cluster import DaskSetupError

HANDSHAKE_MARGIN = 0.5  # seconds a handshake may take after the connect's timeout
WAIT_STEP = 0.1  # the waiting thread looks at the clock (and takes Ctrl-C) this often
QUIET_LOGGERS = ("distributed", "tornado", "bokeh")  # and every logger under them
SILENT = logging.CRITICAL + 1

_PORT = re.compile(r"[0-9]{1,5}")
# Host names (letters, digits, '-', '.', '_') and IP addresses (IPv6 without its brackets).
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?|[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?")


def check_address(address: str) -> str:
    """The address to connect to (`tcp://` added to a bare HOST:PORT); DaskSetupError for one
    wfrun cannot use, said at once rather than after a connect timeout."""
    if any(c.isspace() for c in address):
        raise DaskSetupError(f"invalid Dask scheduler address {address!r}: it contains a space")
    try:
        scheme, location = parse_address(address)
    except ValueError as exc:
        raise DaskSetupError(f"invalid Dask scheduler address {address!r}: {exc}") from None
    scheme = scheme.lower()  # as in any URL: TCP:// is tcp://
    if scheme == "inproc":
        # A scheduler inside this very process (a program using wfrun's API with its own
        # LocalCluster): nothing to wait for, it is there or it is not.
        try:
            listener = global_manager.get_listener_for(location)
        except ValueError:  # not of the form inproc://IP/PID/N
            listener = None
        if listener is None:
            raise DaskSetupError(
                f"no Dask scheduler at {address}: an inproc:// address names a scheduler "
                "inside the same process; give the scheduler's tcp://HOST:PORT address"
            )
        return address
    if scheme == "tls":
        raise DaskSetupError(
            f"cannot use the Dask scheduler at {address}: tls:// needs a TLS security "
            "configuration (certificates and keys), which wfrun does not take; give a tcp:// "
            "address"
        )
    if scheme != "tcp":
        raise DaskSetupError(
            f"cannot use the Dask scheduler at {address}: wfrun connects over tcp:// only "
            f"(not {scheme}://); give the scheduler's tcp://HOST:PORT address"
        )
    # int() takes "+80" and non-ASCII digits, and a host may hold anything: such an address
    # would only fail after the connect limit, so it is refused here.
    if ":" in location.split("]")[-1]:  # a port is given (an IPv6 host is in brackets)
        port_text = location.rsplit(":", 1)[-1]
        if not port_text:
            raise DaskSetupError(f"invalid Dask scheduler address {address!r}: no port after ':'")
        if not _PORT.fullmatch(port_text):
            raise DaskSetupError(
                f"invalid Dask scheduler address {address!r}: the port must be digits 0-9, "
                f"not {port_text!r}"
            )
    try:
        host, port = get_address_host_port(f"tcp://{location}")
    except ValueError as exc:
        raise DaskSetupError(f"invalid Dask scheduler address {address!r}: {exc}") from None
    if not host:
        raise DaskSetupError(f"invalid Dask scheduler address {address!r}: no host")
    if not _HOST.fullmatch(host):
        raise DaskSetupError(
            f"invalid Dask scheduler address {address!r}: {host!r} is not a host name or IP address"
        )
    if not 0 < port < 65536:
        raise DaskSetupError(
            f"invalid Dask scheduler address {address!r}: invalid port {port} (1 to 65535)"
        )
    return f"tcp://{location}"


def open_client(address: str, timeout: float) -> Client:
    """A Client of the scheduler at `address` (from check_address), within `timeout` seconds.

    DaskSetupError when nothing answers in time or what answers is not a Dask scheduler;
    KeyboardInterrupt comes through at once, with no Client left behind to complain.
    """
    attempt = _Attempt(address, timeout)
    with _interruptible():
        return attempt.wait()


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt while connecting, even where SIGINT came in ignored (a
    background job of a script): a run takes SIGINT whatever it inherited, and so does this."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Attempt:
    """One connect on a thread of its own; a caller that stops waiting abandons it, and the
    thread then closes whatever Client it still makes."""

    def __init__(self, address: str, timeout: float) -> None:
        self._address, self._timeout = address, timeout
        self._deadline = time.monotonic() + timeout
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self._client: Client | None = None
        self._problem: str | None = None
        threading.Thread(target=self._connect, name="wfrun-dask-connect", daemon=True).start()

    def wait(self) -> Client:
        try:
            # In short waits: the main thread takes a signal only between them.
            while not self._done.wait(WAIT_STEP):
                if time.monotonic() >= self._deadline + 2 * HANDSHAKE_MARGIN:  # overran its bound
                    raise DaskSetupError(self._unreachable(self._no_answer()))
        except BaseException:
            with self._lock:
                self._abandoned = True
            raise
        if self._client is None:
            raise DaskSetupError(self._unreachable(self._problem or "no answer"))
        return self._client

    def _connect(self) -> None:
        client: Client | None = None
        problem: str | None = None
        try:
            if not self._address.startswith("inproc://"):
                problem = asyncio.run(self._identify())
            if problem is None:
                left = max(self._deadline - time.monotonic(), 1.0)
                client = Client(self._address, timeout=left, set_as_default=False)
        except Exception as exc:  # anything distributed raises: the message says it
            problem = f"{exc}" or type(exc).__name__
        with self._lock:
            abandoned = self._abandoned
            self._client, self._problem = (None, problem) if abandoned else (client, problem)
        if abandoned and client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=2)
        self._done.set()

    async def _identify(self) -> str | None:
        """Why the address is not a live Dask scheduler, or None when it is."""
        try:
            # A little longer than the connect's own timeout, so that a refused connection
            # (retried until then) is told apart from a server that never says who it is.
            return await asyncio.wait_for(self._ask_identity(), self._timeout + HANDSHAKE_MARGIN)
        except TimeoutError:
            return self._no_answer()
        except MemoryError:  # distributed took someone else's bytes for a frame's length
            return "something answers there, but not in Dask's protocol"
        except OSError as exc:  # refused until the deadline, a reset, a closed comm
            return (
                f"{exc or type(exc).__name__} (is `dask scheduler` running there, and the "
                "address right?)"
            )

    async def _ask_identity(self) -> str | None:
        comm = await comm_connect(self._address, timeout=self._timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            reply: Any = await comm.read()
        finally:
            comm.abort()
        kind = reply.get("type") if isinstance(reply, dict) else None
        if kind != "Scheduler":
            what = f"a Dask {kind}" if isinstance(kind, str) else "something else"
            return f"{what} answers there, not a scheduler"
        return None

    def _no_answer(self) -> str:
        return (
            f"something accepts connections there but gave no Dask handshake within "
            f"{self._timeout:g} s (is it a Dask scheduler's address?)"
        )

    def _unreachable(self, problem: str) -> str:
        return f"cannot reach a Dask scheduler at {self._address}: {problem}"


class QuietLogs:
    """distributed's and tornado's loggers silenced while any runner holds a client: their lines
    (a closed comm, a lost worker) are Dask's business, and wfrun reports what they mean."""

    _lock = threading.Lock()
    _holders = 0
    _saved: ClassVar[dict[str, int]] = {}

    @classmethod
    def hold(cls) -> None:
        with cls._lock:
            cls._holders += 1
            if cls._holders == 1:
                for name in _quiet_logger_names():
                    logger = logging.getLogger(name)
                    cls._saved[name] = logger.level
                    logger.setLevel(SILENT)

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._holders -= 1
            if cls._holders == 0:
                for name, level in cls._saved.items():
                    logging.getLogger(name).setLevel(level)
                cls._saved = {}


def _quiet_logger_names() -> list[str]:
    """The quiet loggers, and those under them with a level of their own (the rest inherit)."""
    known = [name for name in logging.root.manager.loggerDict if "." in name]
    return list(QUIET_LOGGERS) + [
        name
        for name in known
        if name.split(".")[0] in QUIET_LOGGERS and logging.getLogger(name).level != 0
    ]
