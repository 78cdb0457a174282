"""Hostile servers on 127.0.0.1 for the HTTP exchange tests: servers that stall or
trickle at any point of an exchange, a relay that trickles a TLS handshake, and a
target that echoes a secret back in the forms a real service would."""

from __future__ import annotations

import base64
import contextlib
import html
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, quote_plus

from tests.support.servers import serving


def read_request_head(conn: socket.socket) -> bytes:
    """The request line and headers (what the client sent up to the blank line)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@contextmanager
def raw_server(serve: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that hands each connection to ``serve`` in a thread of
    its own; yields the port. Connections still open at the end are closed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    open_connections: list[socket.socket] = []
    stopping = threading.Event()

    def handle(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            serve(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            open_connections.append(conn)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stopping.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def stall(seconds: float = 30.0) -> None:
    time.sleep(seconds)


def trickle(conn: socket.socket, data: bytes, delay: float) -> None:
    """Send ``data`` one byte at a time, ``delay`` seconds apart (until the client hangs up)."""
    for index in range(len(data)):
        conn.sendall(data[index : index + 1])
        time.sleep(delay)


@contextmanager
def trickling_relay(upstream_port: int, delay: float) -> Iterator[int]:
    """A relay to 127.0.0.1:``upstream_port`` that passes the client's bytes on at once
    and the upstream's one byte every ``delay`` seconds (a TLS handshake that crawls)."""

    def serve(client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=30)

        def forward_client() -> None:
            with contextlib.suppress(OSError):
                while chunk := client.recv(65536):
                    upstream.sendall(chunk)

        threading.Thread(target=forward_client, daemon=True).start()
        try:
            while chunk := upstream.recv(65536):
                trickle(client, chunk, delay)
        finally:
            upstream.close()

    with raw_server(serve) as port:
        yield port


def secret_forms(secret: str) -> dict[str, str]:
    """``secret`` as services echo it, written out independently of app/execution/redact.py."""
    basic = base64.b64encode(f"someone-else:{secret}".encode()).decode()
    return {
        "plain": secret,
        "json": json.dumps(secret)[1:-1],
        "json_unicode": json.dumps(secret, ensure_ascii=False)[1:-1],
        "html": html.escape(secret),
        "html_unquoted": html.escape(secret, quote=False),
        "path": quote(secret),
        "path_strict": quote(secret, safe=""),
        "path_lower_hex": "".join(
            f"%{b:02x}" if not chr(b).isalnum() else chr(b) for b in secret.encode()
        ),
        "query": quote_plus(secret),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64_url": base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
        "basic_auth": f"Basic {basic}",
    }


class SecretEchoHandler(BaseHTTPRequestHandler):
    """Routes that give a secret back (the server is told it, as a real service knows
    its users' tokens):

    - ``/forms``: a JSON/HTML/URL-heavy body with the secret in every form of
      ``secret_forms``, and in headers;
    - ``/at?offset=N``: ``N`` filler characters, then the secret, then more filler;
    - ``/header-at?offset=N``: a header whose value has the secret at ``offset``;
    - ``/bad-status?offset=N``: a broken status line with the secret at ``offset``.
    """

    protocol_version = "HTTP/1.1"
    server: SecretEchoServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        secret = self.server.secret
        path, _, query = self.path.partition("?")
        offset = int(query.split("=", 1)[1]) if query.startswith("offset=") else 0
        forms = secret_forms(secret)
        if path == "/forms":
            lines = [f"{name}: <{form}>" for name, form in forms.items()]
            lines.append(f'{{"token": "{forms["json"]}"}}')
            lines.append(f'<a href="/reset/{forms["path"]}?t={forms["query"]}">reset</a>')
            headers = {
                "X-Echo": secret,
                "X-Echo-Base64": forms["base64"],
                "X-Echo-Url": f"https://example.invalid/cb?token={forms['query']}",
                "WWW-Authenticate": forms["basic_auth"],
            }
            self._send("\n".join(lines).encode(), headers)
        elif path == "/at":
            body = "a" * offset + secret + "b" * 5000
            self._send(body.encode())
        elif path == "/header-at":
            self._send(b"ok", {"X-Long": "h" * offset + secret + "h" * 600})
        elif path == "/bad-status":
            line = "HTTP/1.1 2x0 " + "s" * offset + secret + "\r\n\r\n"
            self.wfile.write(line.encode())
            self.close_connection = True
        else:
            self.send_error(404)


class SecretEchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, secret: str) -> None:
        super().__init__(("127.0.0.1", 0), SecretEchoHandler)
        self.secret = secret

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextmanager
def secret_echo_target(secret: str) -> Iterator[SecretEchoServer]:
    with serving(SecretEchoServer(secret)) as server:
        yield server


def run_http(definition: dict[str, Any], guard: Any = None, **env: str) -> Any:
    """Run an HTTP check (``definition`` is what follows id, type and locations) on this
    thread, with settings from ``env``; the guard lets loopback through by default."""
    import uuid
    from datetime import UTC, datetime

    from app.definitions.models import Check
    from app.execution.guard import TargetGuard
    from app.execution.http.check import run_http_check
    from app.execution.runs import RunRequest
    from tests.support.settings import make_settings

    settings = make_settings(**env)
    check = Check.model_validate(
        {"id": "c", "type": "http", "locations": ["eu-west-1"], **definition}
    )
    request = RunRequest(uuid.uuid4(), check.snapshot(), "eu-west-1", datetime.now(UTC))
    return run_http_check(check, request, settings, guard or TargetGuard(allow_private=True))
