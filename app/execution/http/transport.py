"""A requests transport that vets every connection and times its phases.

Each connection resolves its host once, asks the ``TargetGuard`` about every address,
and connects to the vetted address itself, so the guard's decision is the one that
counts (also for each redirect hop). The same hook records DNS, connect and TLS times
and the server certificate, into the ``Probe`` of the run in progress.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import ssl
import threading
import weakref
from collections.abc import Callable
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import requests
from cryptography import x509
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import PoolManager

from app.execution.guard import TargetGuard


@dataclass
class Probe:
    """What the connections of one run observed, and the run's deadline.

    ``deadline`` (a ``perf_counter`` value) bounds every phase of every connection:
    DNS, connect, TLS and each read. Once ``abort`` ran (the watchdog calls it at the
    deadline), ``expired`` is set, so a body that ended because its connection was cut
    is not taken for a complete one, and a connection opened afterwards is cut at once.
    """

    guard: TargetGuard
    deadline: float | None = None
    expired: bool = False
    dns_ms: float = 0.0
    connect_ms: float = 0.0
    tls_ms: float = 0.0
    connections: int = 0
    remote_address: str | None = None
    certificate_not_after: datetime | None = None
    sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - perf_counter()

    def register(self, sock: socket.socket) -> None:
        """Make ``sock`` one of the run's connections (cut at once if time is up)."""
        with self._lock:
            self.sockets.append(sock)
            if self.expired:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def abort(self) -> None:
        """Cut every connection of the run: a blocked read or handshake returns at once."""
        with self._lock:
            self.expired = True
            for sock in self.sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


current_probe: ContextVar[Probe] = ContextVar("current_probe")


class _GuardedConnectionMixin:
    host: str
    port: int
    timeout: Any
    socket_options: Any
    _dns_host: str

    def _connect_timeout(self, probe: Probe) -> float | None:
        """The socket timeout for this connection: its own, cut to what the run has left."""
        default = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]
        own: float | None = None if self.timeout is default else self.timeout
        left = probe.remaining()
        if left is None:
            return own
        if left <= 0:
            raise ConnectTimeoutError(self, f"no time left to connect to {self.host}")
        return left if own is None else min(float(own), left)

    def _new_conn(self) -> socket.socket:
        probe = current_probe.get()
        started = perf_counter()
        try:
            addresses = probe.guard.resolve(
                self._dns_host, self.port, timeout=self._connect_timeout(probe)
            )
        except TimeoutError:
            raise ConnectTimeoutError(self, f"DNS lookup of {self._dns_host} timed out") from None
        except socket.gaierror as exc:
            raise NewConnectionError(
                self, f"DNS lookup of {self._dns_host} failed: {exc.strerror or exc}"
            ) from None
        resolved = perf_counter()
        probe.dns_ms += (resolved - started) * 1000
        last_error: OSError | None = None
        for family, address in addresses:
            timeout = self._connect_timeout(probe)
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if timeout is not None:
                    sock.settimeout(timeout)
                probe.register(sock)  # from here the watchdog can cut it (TLS: until it is wrapped)
                sock.connect((address, self.port))
            except TimeoutError:
                sock.close()
                raise ConnectTimeoutError(
                    self, f"connection to {self.host} timed out (connect timeout={self.timeout})"
                ) from None
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            probe.connect_ms += (perf_counter() - resolved) * 1000
            probe.connections += 1
            probe.remote_address = address
            return sock
        raise NewConnectionError(self, f"connection to {self.host} failed: {last_error}")


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    def connect(self) -> None:
        started = perf_counter()
        probe = current_probe.get()
        before = probe.dns_ms + probe.connect_ms
        super().connect()  # type: ignore[no-untyped-call]
        # Wrapping detaches the plain socket registered in _new_conn (its fd becomes the
        # TLS socket's): without this the watchdog could not cut a response that trickles.
        # The handshake itself is bounded by the socket timeout, cut to what the run has left.
        probe.register(self.sock)
        elapsed = (perf_counter() - started) * 1000
        probe.tls_ms += max(0.0, elapsed - (probe.dns_ms + probe.connect_ms - before))
        sock: ssl.SSLSocket = self.sock
        der = sock.getpeercert(binary_form=True)
        if der:
            probe.certificate_not_after = x509.load_der_x509_certificate(der).not_valid_after_utc


class _CompleteBodiesMixin:
    def urlopen(self, *args: Any, **kwargs: Any) -> Any:
        # urllib3 1.x takes a body cut short (fewer bytes than Content-Length, then EOF)
        # for a complete one: a server that sends its headers and stalls until the
        # watchdog cuts the connection would otherwise pass with an empty body.
        kwargs.setdefault("enforce_content_length", True)
        return super().urlopen(*args, **kwargs)  # type: ignore[misc]


class GuardedHTTPPool(_CompleteBodiesMixin, HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSPool(_CompleteBodiesMixin, HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection

    def _validate_conn(self, conn: Any) -> None:
        # urllib3 warns about every unverified request; skip_tls_verify is the check
        # author's explicit choice, and the warning would fill the worker's log.
        HTTPConnectionPool._validate_conn(self, conn)  # type: ignore[attr-defined]
        if not getattr(conn, "sock", None):
            conn.connect()


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self.poolmanager = PoolManager(
            num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPPool,
            "https": GuardedHTTPSPool,
        }


def guarded_session() -> requests.Session:
    """A session whose every connection is vetted by the ``Probe`` in ``current_probe``.

    The one way synmon builds a session for a URL it was given (checks and notification
    endpoints alike). It reads nothing from the process's environment: a proxy there
    would make the guard vet the proxy instead of the target, and .netrc would add
    credentials to requests nobody wrote them for. requests' own retries are off: a
    failed exchange is reported, and the caller decides whether to try again.
    """
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Watchdog:
    """One thread per process that calls a function when its deadline passes.

    Socket timeouts bound each read, not a whole response: a server that trickles a
    byte every few milliseconds would hold a check far past its timeout. The watchdog
    aborts the run's connections at the deadline instead, at the cost of one heap entry
    per run rather than one thread.
    """

    def __init__(self) -> None:
        self._start_over()
        _watchdogs.add(self)

    def _start_over(self) -> None:
        # Also in a forked child: its copy of the lock may have been held by a parent
        # thread that does not exist in the child, and its copy of the thread is gone.
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, callback: Callable[[], None]) -> int:
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="synmon-watchdog", daemon=True
                )
                self._thread.start()
            token = next(self._counter)
            heapq.heappush(self._heap, (deadline, token, callback))
            self._condition.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._condition:
            self._cancelled.add(token)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap:
                    self._condition.wait()
                deadline, token, callback = self._heap[0]
                delay = deadline - perf_counter()
                if token in self._cancelled:
                    heapq.heappop(self._heap)
                    self._cancelled.discard(token)
                    continue
                if delay > 0:
                    self._condition.wait(delay)
                    continue
                heapq.heappop(self._heap)
            with suppress(Exception):
                callback()


_watchdogs: weakref.WeakSet[Watchdog] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for each in list(_watchdogs):
        each._start_over()


os.register_at_fork(after_in_child=_after_fork_in_child)

watchdog = Watchdog()


def days_until(moment: datetime, now: datetime | None = None) -> float:
    return (moment - (now or datetime.now(UTC))).total_seconds() / 86400
