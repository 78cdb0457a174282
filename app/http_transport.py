"""A requests transport that vets every connection and times its phases.

Each connection resolves its host once, asks the ``TargetGuard`` about every address,
and connects to the vetted address itself, so the guard's decision is the one that
counts (also for each redirect hop). The same hook records DNS, connect and TLS times
and the server certificate, into the ``Probe`` of the run in progress.
"""

from __future__ import annotations

import socket
import ssl
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import PoolManager

from app.ssrf import TargetGuard


@dataclass
class Probe:
    """What the connections of one run observed."""

    guard: TargetGuard
    dns_ms: float = 0.0
    connect_ms: float = 0.0
    tls_ms: float = 0.0
    connections: int = 0
    remote_address: str | None = None
    certificate_not_after: datetime | None = None
    errors: list[str] = field(default_factory=list)


current_probe: ContextVar[Probe] = ContextVar("current_probe")


class DnsError(OSError):
    """The host name did not resolve."""


class _GuardedConnectionMixin:
    host: str
    port: int
    timeout: Any
    socket_options: Any
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        probe = current_probe.get()
        started = perf_counter()
        try:
            addresses = probe.guard.resolve(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NewConnectionError(
                self, f"DNS lookup of {self._dns_host} failed: {exc.strerror or exc}"
            ) from None
        resolved = perf_counter()
        probe.dns_ms += (resolved - started) * 1000
        last_error: OSError | None = None
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if self.timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                    sock.settimeout(self.timeout)
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


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):  # type: ignore[misc]
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):  # type: ignore[misc]
    def connect(self) -> None:
        started = perf_counter()
        probe = current_probe.get()
        before = probe.dns_ms + probe.connect_ms
        super().connect()
        elapsed = (perf_counter() - started) * 1000
        probe.tls_ms += max(0.0, elapsed - (probe.dns_ms + probe.connect_ms - before))
        sock: ssl.SSLSocket = self.sock
        der = sock.getpeercert(binary_form=True)
        if der:
            from cryptography import x509

            probe.certificate_not_after = x509.load_der_x509_certificate(der).not_valid_after_utc


class GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


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


def days_until(moment: datetime, now: datetime | None = None) -> float:
    return (moment - (now or datetime.now(UTC))).total_seconds() / 86400
