"""The guard proxy: every connection Chromium makes goes through it, and is vetted.

Chromium is started with ``--proxy-server`` pointing here (and without the implicit
loopback bypass), so navigations, subresources, iframes, workers and websockets all
arrive as ``CONNECT host:port`` (https, wss) or as an absolute-form request (http).
The proxy resolves the host itself, asks the ``TargetGuard``, and connects to the
vetted address; a refused target gets a 403 and never sees a packet. This is the same
guard as HTTP checks use, applied where a page cannot get around it.

Plain-HTTP requests are forwarded one per connection (``Connection: close``), which
keeps the proxy a byte relay rather than an HTTP implementation.

Chromium's own traffic is refused before any lookup, so that nothing but the check's
requests leaves the machine: names under ``SERVICE_SINK_DOMAIN`` (where synmon sends
the Google clients that no flag switches off), every other ``.invalid`` name (it
cannot resolve), the hosts of Chromium's update, component, safe-browsing, variations
and messaging services, and, once the owner says runs are bracketed
(``refuse_between_runs``), every request made while no check is running. Every request
the proxy sees is kept in a bounded log (``ProxyState.seen``) with what became of it.

Several runs share one Chromium, each in its own incognito context, and the proxy must
know which run a request is for: each run gets a port of its own (``run_port``), which
its context is told to use as its proxy. What arrives on that port is the run's, what
the guard refused of it is the run's alone, and once the run is over the port is closed:
"between runs", for a context, is any time its port is not open. The port Chromium is
launched with then carries no run's requests at all, only Chromium's own traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from app.execution.browser.chromium import SERVICE_SINK_DOMAIN
from app.execution.guard import ForbiddenTarget, TargetGuard

log = logging.getLogger("synmon.browser.proxy")
MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT = 10.0
SEEN_LIMIT = 1000  # requests kept in the log: enough for a run, bounded for a hostile page

# Hosts that only Chromium's own clients talk to (none serves pages): refused for every
# run, so that a client a flag failed to stop still reaches nothing. Google hosts that
# pages do use (accounts.google.com, www.googleapis.com, fonts, translate widgets) are
# not here; Chromium's sign-in and API clients are pointed at SERVICE_SINK_DOMAIN instead.
CHROMIUM_SERVICE_HOSTS = frozenset(
    {
        "update.googleapis.com",  # component and extension updates
        "clients2.google.com",  # network time, extension updates
        "clients2.googleusercontent.com",  # extension downloads
        "redirector.gvt1.com",  # component downloads
        "edgedl.me.gvt1.com",
        "optimizationguide-pa.googleapis.com",  # optimisation hints, on-device models
        "safebrowsing.googleapis.com",
        "safebrowsing.google.com",
        "sb-ssl.google.com",
        "content-autofill.googleapis.com",
        "clientservices.googleapis.com",  # variations seed
        "android.clients.google.com",  # GCM check-in
        "mtalk.google.com",  # GCM
        "beacons.gvt2.com",  # domain reliability
        "beacons.gcp.gvt2.com",
        "passwordsleakcheck-pa.googleapis.com",
        "chromesyncpasswords-pa.googleapis.com",
        "chromewebstore.googleapis.com",
    }
)
# What became of a request (ProxyRequest.verdict).
FORWARDED = "forwarded"
REFUSED = "refused"  # the guard said no: the check's own request, reported with its result
CHROMIUM = "chromium"  # Chromium's own traffic, refused without a lookup
OUTSIDE_RUN = "outside_run"  # no check was running
UNREACHABLE = "unreachable"


@dataclass
class Refusal:
    host: str
    port: int
    reason: str


@dataclass(frozen=True)
class ProxyRequest:
    method: str
    host: str
    port: int
    verdict: str


@dataclass
class ProxyState:
    refusals: list[Refusal] = field(default_factory=list)
    seen: deque[ProxyRequest] = field(default_factory=lambda: deque(maxlen=SEEN_LIMIT))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse(self, refusal: Refusal) -> None:
        with self.lock:
            self.refusals.append(refusal)

    def take(self) -> list[Refusal]:
        with self.lock:
            taken, self.refusals = self.refusals, []
        return taken

    def record(self, request: ProxyRequest) -> None:
        with self.lock:
            self.seen.append(request)

    def take_seen(self) -> list[ProxyRequest]:
        """Every request seen since the last call, oldest first."""
        with self.lock:
            taken = list(self.seen)
            self.seen.clear()
        return taken


@dataclass
class RunTraffic:
    """One run's side of the proxy: the port its context uses, and its own log."""

    port: int
    state: ProxyState = field(default_factory=ProxyState)

    def take(self) -> list[Refusal]:
        """The run's refused requests since the last call."""
        return self.state.take()


def chromium_service_reason(host: str) -> str | None:
    """Why ``host`` is Chromium's own traffic and not a page's, or None."""
    name = host.lower().rstrip(".")
    if name == SERVICE_SINK_DOMAIN or name.endswith("." + SERVICE_SINK_DOMAIN):
        return "Chromium's own service traffic (sent to the sink domain by synmon's flags)"
    if name == "invalid" or name.endswith(".invalid"):
        return "a .invalid name never resolves (RFC 6761)"
    if name in CHROMIUM_SERVICE_HOSTS:
        return f"{name} serves only Chromium's own clients (update, safe browsing, sync...)"
    return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class GuardProxy:
    """An HTTP proxy on 127.0.0.1 that only connects where the guard allows."""

    def __init__(self, guard: TargetGuard, refuse_between_runs: bool = False) -> None:
        self.guard = guard
        self.state = ProxyState()
        self.port = 0
        # When the owner brackets its runs (check_run), a request made between them
        # cannot be a check's: Chromium's own, or a closed page's late one.
        self.refuse_between_runs = refuse_between_runs
        self._runs = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> GuardProxy:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            handler = functools.partial(self._handle, self.state, self._running)
            self._server = loop.run_until_complete(
                asyncio.start_server(handler, "127.0.0.1", 0, limit=MAX_HEAD)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="synmon-guard-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)

    @contextlib.contextmanager
    def run_port(self) -> Iterator[RunTraffic]:
        """A port of one run's own, open until the block ends; its requests are forwarded
        (when the guard allows them) and what was refused of them is kept for it alone."""
        assert self._loop is not None, "start() the proxy first"
        # Bound and listening here, so the port is known at once and a connection made
        # before the proxy's loop serves it waits in the backlog.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        traffic = RunTraffic(sock.getsockname()[1])
        done = asyncio.Event()  # bound to the proxy's loop when first awaited there
        handler = functools.partial(self._handle, traffic.state, lambda: True)
        asyncio.run_coroutine_threadsafe(self._serve_run(sock, handler, done), self._loop)
        try:
            yield traffic
        finally:
            self._loop.call_soon_threadsafe(done.set)

    async def _serve_run(
        self, sock: socket.socket, handler: Callable[..., object], done: asyncio.Event
    ) -> None:
        try:
            server = await asyncio.start_server(handler, sock=sock, limit=MAX_HEAD)  # type: ignore[arg-type]
            await done.wait()
            server.close()  # the listener only: a tunnel of the run ends with its context
        finally:
            sock.close()

    @contextlib.contextmanager
    def check_run(self) -> Iterator[None]:
        """A check is running: its requests are forwarded (when the guard allows them)."""
        with self.state.lock:
            self._runs += 1
        try:
            yield
        finally:
            with self.state.lock:
                self._runs -= 1

    def _running(self) -> bool:
        with self.state.lock:
            return self._runs > 0 or not self.refuse_between_runs

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        # Bounded: a resolver that never answers must not hold a thread per request.
        resolve = functools.partial(self.guard.resolve, host, port, timeout=CONNECT_TIMEOUT)
        addresses = await loop.run_in_executor(None, resolve)
        last: OSError | None = None
        for family, address in addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(address, port, family=family), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                last = exc if isinstance(exc, OSError) else OSError(str(exc))
        raise last or OSError(f"no address for {host}")

    async def _refuse(self, writer: asyncio.StreamWriter, status: str, message: str) -> None:
        body = message.encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()

    def _record(self, state: ProxyState, request: ProxyRequest) -> None:
        """Into the proxy's log, and into the run's when the request came on a run's port."""
        self.state.record(request)
        if state is not self.state:
            state.record(request)

    async def _handle(
        self,
        state: ProxyState,
        running: Callable[[], bool],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """One connection to the port whose refusals go to ``state``, forwarded (when the
        guard allows) while ``running()``."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        request_line, _, rest = head.partition(b"\r\n")
        try:
            method, target, version = request_line.decode("latin-1").split(" ", 2)
        except ValueError:
            await self._refuse(writer, "400 Bad Request", "malformed request line")
            return
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            # isascii: str.isdigit() admits digits such as "²" that int() refuses
            if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
                await self._refuse(writer, "400 Bad Request", "CONNECT needs host:port")
                return
            host, port = host.strip("[]"), int(port_text)
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                await self._refuse(writer, "400 Bad Request", "only absolute http:// URLs")
                return
            host, port = parts.hostname, parts.port or 80
        service = chromium_service_reason(host)
        # A sink name is expected a few times on every launch: not worth an info line.
        level = logging.DEBUG if host.lower().rstrip(".").endswith(".invalid") else logging.INFO
        if not running():
            self._record(state, ProxyRequest(method, host, port, OUTSIDE_RUN))
            log.log(level, "refused %s %s:%s: no check is running", method, host, port)
            await self._refuse(writer, "403 Forbidden", "no check is running")
            return
        if service is not None:
            message = f"refused to connect to {host}: {service}"
            self._record(state, ProxyRequest(method, host, port, CHROMIUM))
            log.log(level, "%s", message)
            if level == logging.INFO:
                # A flag stopped working, or a page names such a host: its check
                # reports the refusal with its other blocked requests.
                state.refuse(Refusal(host, port, message))
            await self._refuse(writer, "403 Forbidden", message)
            return
        try:
            upstream_reader, upstream_writer = await self._open(host, port)
        except ForbiddenTarget as exc:
            self._record(state, ProxyRequest(method, host, port, REFUSED))
            state.refuse(Refusal(host, port, str(exc)))
            await self._refuse(writer, "403 Forbidden", str(exc))
            return
        except (OSError, socket.gaierror) as exc:
            self._record(state, ProxyRequest(method, host, port, UNREACHABLE))
            await self._refuse(writer, "502 Bad Gateway", f"cannot reach {host}:{port}: {exc}")
            return
        self._record(state, ProxyRequest(method, host, port, FORWARDED))
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            path = urlsplit(target)._replace(scheme="", netloc="").geturl() or "/"
            headers = [
                line
                for line in rest.split(b"\r\n")
                if line and not line.lower().startswith((b"proxy-connection:", b"connection:"))
            ]
            upstream_writer.write(
                f"{method} {path} {version}\r\n".encode("latin-1")
                + b"\r\n".join([*headers, b"Connection: close"])
                + b"\r\n\r\n"
            )
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
