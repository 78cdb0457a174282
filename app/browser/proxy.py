"""The guard proxy: every connection Chromium makes goes through it, and is vetted.

Chromium is started with ``--proxy-server`` pointing here (and without the implicit
loopback bypass), so navigations, subresources, iframes, workers and websockets all
arrive as ``CONNECT host:port`` (https, wss) or as an absolute-form request (http).
The proxy resolves the host itself, asks the ``TargetGuard``, and connects to the
vetted address; a refused target gets a 403 and never sees a packet. This is the same
guard as HTTP checks use, applied where a page cannot get around it.

Plain-HTTP requests are forwarded one per connection (``Connection: close``), which
keeps the proxy a byte relay rather than an HTTP implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from app.ssrf import ForbiddenTarget, TargetGuard

log = logging.getLogger("synmon.browser.proxy")
MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT = 10.0


@dataclass
class Refusal:
    host: str
    port: int
    reason: str


@dataclass
class ProxyState:
    refusals: list[Refusal] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse(self, refusal: Refusal) -> None:
        with self.lock:
            self.refusals.append(refusal)

    def take(self) -> list[Refusal]:
        with self.lock:
            taken, self.refusals = self.refusals, []
        return taken


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

    def __init__(self, guard: TargetGuard) -> None:
        self.guard = guard
        self.state = ProxyState()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> GuardProxy:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, limit=MAX_HEAD)
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

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        addresses = await loop.run_in_executor(None, self.guard.resolve, host, port)
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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
            host, port = host.strip("[]"), int(port_text or 443)
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                await self._refuse(writer, "400 Bad Request", "only absolute http:// URLs")
                return
            host, port = parts.hostname, parts.port or 80
        try:
            upstream_reader, upstream_writer = await self._open(host, port)
        except ForbiddenTarget as exc:
            self.state.refuse(Refusal(host, port, str(exc)))
            await self._refuse(writer, "403 Forbidden", str(exc))
            return
        except (OSError, socket.gaierror) as exc:
            await self._refuse(writer, "502 Bad Gateway", f"cannot reach {host}:{port}: {exc}")
            return
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
