"""A TLS response that trickles or stalls after its headers ends at the check's timeout,
as a plain-HTTP one does: the watchdog cuts the TLS socket, not the plain one it wraps."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import pytest
import trustme

from tests.support.exchange_servers import raw_server, read_request_head, stall, trickle

TIMEOUT = 1.0
# Far below what the server would take (30 s stalled, or 1,000 bytes at 20 a second).
BOUND_MS = 4000


def _tls(serve: Callable[[socket.socket], None]) -> Callable[[socket.socket], None]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    def wrapped(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            serve(tls)

    return wrapped


def _trickle_body(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    trickle(conn, b"y" * 1000, 0.05)


def _stall_after_headers(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    stall()


def _trickle_headers(conn: socket.socket) -> None:
    read_request_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    trickle(conn, b"X-Slow: " + b"s" * 1000 + b"\r\n\r\n", 0.05)


@pytest.mark.parametrize("serve", [_trickle_body, _stall_after_headers, _trickle_headers])
def test_a_tls_response_that_trickles_or_stalls_is_a_timeout(
    serve: Callable[[socket.socket], None],
) -> None:
    from tests.support.exchange_servers import run_http

    with raw_server(_tls(serve)) as port:
        result = run_http(
            {
                "request": {
                    "url": f"https://127.0.0.1:{port}/",
                    "timeout": f"{TIMEOUT:g}s",
                    "skip_tls_verify": True,
                }
            }
        )
    assert result.status == "failed", result.response
    assert result.error_kind == "timeout", result.error
    assert result.duration_ms < BOUND_MS, result.duration_ms
