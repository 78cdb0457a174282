"""A real HTTP server on 127.0.0.1 that answers each path with the body a test gave it.

Assertion tests need responses of shapes the general target (servers.TargetHandler)
has no route for: hostile documents, arrays, bodies that are not quite JSON.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.servers import serving


class _BodyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BodyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = self.server.bodies.get(self.path)
        status = 200 if body is not None else 404
        payload = body if body is not None else b"not found"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class BodyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bodies: Mapping[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _BodyHandler)
        self.bodies = dict(bodies)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@contextmanager
def body_target(bodies: Mapping[str, bytes]) -> Iterator[BodyServer]:
    """A server answering ``GET path`` with ``bodies[path]`` as application/json."""
    with serving(BodyServer(bodies)) as server:
        yield server
