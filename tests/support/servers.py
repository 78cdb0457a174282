"""Real HTTP and HTTPS servers on 127.0.0.1 for checks to run against."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer, TCPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import trustme


class TargetHandler(BaseHTTPRequestHandler):
    """A target with one route per behaviour a check must cope with."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: TargetServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page(self, body: str, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, body.encode(), "text/html; charset=utf-8", headers)

    def _request(self) -> tuple[str, dict[str, str], bytes]:
        """The path, query and body of this request, recorded in the server's hits."""
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.hits.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        return parts.path, query, body

    def _route(self) -> None:
        path, query, body = self._request()
        if path == "/ok":
            self._send(200, b"ok, all fine")
        elif path == "/json":
            document = {
                "status": "ok",
                "count": 3,
                "items": [1, 2, 3],
                "nested": {"flag": True},
                "missing": None,
                "empty": "",
            }
            self._send(
                200,
                json.dumps(document).encode(),
                "application/json; charset=utf-8",
                {"X-Request-Id": "abc123", "Set-Cookie": "session=very-secret"},
            )
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"status page")
        elif path == "/slow":
            time.sleep(float(query.get("delay", "1")))
            self._send(200, b"slow but ok")
        elif path == "/redirect":
            self._send(int(query.get("code", "302")), b"", headers={"Location": query["to"]})
        elif path == "/big":
            self._send(200, b"x" * int(query.get("size", "1000000")))
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"y")
                self.wfile.flush()
                time.sleep(0.01)
        elif path == "/auth":
            expected = (
                "Basic "
                + base64.b64encode(b"monitor:" + query.get("pw", "hunter22").encode()).decode()
            )
            if self.headers.get("Authorization") == expected:
                self._send(200, b"welcome")
            else:
                self._send(401, b"who are you", headers={"WWW-Authenticate": 'Basic realm="t"'})
        elif path == "/echo":
            document = {
                "method": self.command,
                "query": query,
                "headers": dict(self.headers),
                "body": body.decode(errors="replace"),
            }
            self._send(200, json.dumps(document).encode(), "application/json")
        elif path == "/refuse":
            # A 400 that echoes the request's Authorization header, as given and URL-encoded,
            # after ``pad`` characters: where an error message would cut it.
            said = self.headers.get("Authorization", "")
            pad = "x" * int(query.get("pad", "0"))
            self._send(400, f"{pad}{said} {quote(said, safe='')}".encode())
        elif path == "/hang":
            time.sleep(float(query.get("delay", "30")))
            self._send(200, b"too late")
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _route


class TargetServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), TargetHandler)
        self.hits: list[dict[str, Any]] = []
        self.scheme = "http"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up mid-response (timeouts under test) are expected

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


Served = TypeVar("Served", bound=BaseServer)


@contextmanager
def serving(server: Served) -> Iterator[Served]:
    """``server`` answering from a thread until the block ends."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def shut_down(server: TCPServer) -> None:
    """``server.shutdown()`` without waiting out the poll interval of a ``serve_forever``
    started elsewhere (app/web's serve keeps the default 0.5 s): a connection wakes its select
    at once."""
    host, port = server.server_address[:2]
    stopping = threading.Thread(target=server.shutdown, daemon=True)
    stopping.start()
    while stopping.is_alive():
        with suppress(OSError):
            socket.create_connection((host, port), timeout=1).close()
        stopping.join(0.01)


@contextmanager
def http_target() -> Iterator[TargetServer]:
    with serving(TargetServer()) as server:
        yield server


@contextmanager
def https_target(ca: trustme.CA, not_after_days: int = 90) -> Iterator[TargetServer]:
    import datetime

    server = TargetServer()
    server.scheme = "https"
    cert = ca.issue_cert(
        "127.0.0.1",
        "localhost",
        not_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=not_after_days),
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with serving(server) as running:
        yield running
