"""An HTTP check's exchange as a whole: its secrets stay with their origin across
redirects, and its timeout bounds every phase (DNS, connect, TLS, headers, body)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from tests.support.exchange_servers import (
    raw_server,
    read_request_head,
    run_http,
    stall,
    trickle,
    trickling_relay,
)
from tests.support.servers import TargetServer, http_target, https_target

SECRET_HEADERS = {"X-Api-Key": "{{API_KEY}}", "Cookie": "session={{API_KEY}}"}
BASIC_AUTH = {"username": "monitor", "password": "{{PASSWORD}}"}
VARIABLES = {"SYNMON_VAR_API_KEY": "key-0123456789", "SYNMON_VAR_PASSWORD": "pw-9876543210"}
CREDENTIALS = ("x-api-key", "cookie", "authorization")


@pytest.fixture
def origin() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


def _sent(hit: dict[str, Any]) -> set[str]:
    return {name.lower() for name in hit["headers"]}


def _redirecting(url: str, code: int = 302, **request: Any) -> dict[str, Any]:
    return {
        "request": {"url": url, "headers": SECRET_HEADERS, "basic_auth": BASIC_AUTH, **request},
        "assertions": [{"source": "status_code", "comparison": "equals", "target": 200}],
    }


# --- redirects ---------------------------------------------------------------------


def test_a_same_origin_redirect_keeps_the_checks_headers_and_credentials(
    origin: TargetServer,
) -> None:
    result = run_http(_redirecting(origin.url("/redirect?to=/echo")), **VARIABLES)
    assert result.status == "passed", result.error
    first, second = origin.hits
    for name in CREDENTIALS:
        assert name in _sent(first) and name in _sent(second), name
    assert second["headers"]["X-Api-Key"] == "key-0123456789"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_another_port_gets_none_of_the_checks_headers(
    origin: TargetServer, elsewhere: TargetServer, code: int
) -> None:
    to = f"http://127.0.0.1:{elsewhere.port}/echo"
    result = run_http(_redirecting(origin.url(f"/redirect?code={code}&to={to}")), **VARIABLES)
    assert result.status == "passed", result.error
    assert CREDENTIALS[0] in _sent(origin.hits[0])
    (arrived,) = elsewhere.hits
    assert not set(CREDENTIALS) & _sent(arrived), arrived["headers"]
    assert arrived["headers"]["User-Agent"].startswith("synmon")
    assert "key-0123456789" not in str(arrived) and "pw-9876543210" not in str(arrived)


def test_another_host_on_the_same_port_gets_none_of_them(origin: TargetServer) -> None:
    # 127.0.0.1 and localhost are different origins even when they are the same server.
    to = f"http://localhost:{origin.port}/echo"
    result = run_http(_redirecting(origin.url(f"/redirect?to={to}")), **VARIABLES)
    assert result.status == "passed", result.error
    first, second = origin.hits
    assert set(CREDENTIALS) <= _sent(first)
    assert not set(CREDENTIALS) & _sent(second)


def test_credentials_dropped_once_stay_dropped_on_the_way_back(
    origin: TargetServer, elsewhere: TargetServer
) -> None:
    back = f"http://127.0.0.1:{origin.port}/echo"
    away = f"http://127.0.0.1:{elsewhere.port}/redirect?to={back}"
    result = run_http(_redirecting(origin.url(f"/redirect?to={away}")), **VARIABLES)
    assert result.status == "passed", result.error
    assert len(origin.hits) == 2 and len(elsewhere.hits) == 1
    assert not set(CREDENTIALS) & _sent(elsewhere.hits[0])
    assert not set(CREDENTIALS) & _sent(origin.hits[1])


def test_a_credential_in_the_url_does_not_follow_either(
    origin: TargetServer, elsewhere: TargetServer
) -> None:
    to = f"http://127.0.0.1:{elsewhere.port}/echo"
    url = f"http://monitor:{{{{PASSWORD}}}}@127.0.0.1:{origin.port}/redirect?to={to}"
    result = run_http({"request": {"url": url}}, **VARIABLES)
    assert result.status == "passed", result.error
    assert "authorization" in _sent(origin.hits[0])
    assert "authorization" not in _sent(elsewhere.hits[0])


def test_a_307_to_another_origin_keeps_its_body_but_not_the_checks_headers(
    origin: TargetServer, elsewhere: TargetServer
) -> None:
    to = f"http://127.0.0.1:{elsewhere.port}/echo"
    definition = _redirecting(
        origin.url(f"/redirect?code=307&to={to}"), method="POST", body={"order": 42}
    )
    result = run_http(definition, **VARIABLES)
    assert result.status == "passed", result.error
    (arrived,) = elsewhere.hits
    assert arrived["method"] == "POST" and arrived["body"] == b'{"order": 42}'
    assert arrived["headers"]["Content-Type"] == "application/json"
    assert not set(CREDENTIALS) & _sent(arrived)


# --- the timeout bounds the whole exchange ------------------------------------------

TIMEOUT = 1.0
# Generous: a run must end near its timeout, and the machine is shared.
BOUND_MS = TIMEOUT * 1000 * 3


def _timed_out(result: Any) -> None:
    assert result.status == "failed", result.response
    assert result.error_kind == "timeout", result.error
    assert result.duration_ms < BOUND_MS, result.duration_ms


def _check(url: str, **request: Any) -> dict[str, Any]:
    return {"request": {"url": url, "timeout": f"{TIMEOUT:g}s", **request}}


def _headers_then(after: str) -> Any:
    """A server that answers with a status line and headers, then does ``after``."""

    def serve(conn: socket.socket) -> None:
        read_request_head(conn)
        if after == "stall-with-length":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            stall()
        elif after == "stall-until-close":
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial")
            stall()
        elif after == "stall-chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            stall()
        elif after == "trickle-until-close":
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            trickle(conn, b"y" * 1000, 0.05)
        elif after == "trickle-chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            trickle(conn, b"1\r\nz\r\n" * 200, 0.01)
        elif after == "trickle-headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            trickle(conn, b"X-Slow: " + b"s" * 1000 + b"\r\n\r\n", 0.05)
        elif after == "status-then-stall":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            stall()

    return serve


@pytest.mark.parametrize(
    "behaviour",
    [
        "stall-with-length",
        "stall-until-close",
        "stall-chunked",
        "trickle-until-close",
        "trickle-chunked",
        "trickle-headers",
        "status-then-stall",
    ],
)
def test_a_server_that_stalls_or_trickles_after_answering_is_a_timeout(behaviour: str) -> None:
    with raw_server(_headers_then(behaviour)) as port:
        result = run_http(_check(f"http://127.0.0.1:{port}/"))
    _timed_out(result)
    assert result.error == f"no complete response within the timeout of {TIMEOUT:g}s"


def test_a_body_shorter_than_its_content_length_is_not_a_pass() -> None:
    def serve(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    with raw_server(serve) as port:
        result = run_http(_check(f"http://127.0.0.1:{port}/"))
    assert result.status == "failed" and result.error_kind == "network", result.error
    assert "IncompleteRead" in (result.error or "")


def test_a_stalled_tls_handshake_is_a_timeout() -> None:
    def serve(conn: socket.socket) -> None:
        conn.recv(65536)  # the ClientHello, never answered
        stall()

    with raw_server(serve) as port:
        result = run_http(_check(f"https://127.0.0.1:{port}/"))
    _timed_out(result)


def test_a_trickled_tls_handshake_is_a_timeout() -> None:
    ca = trustme.CA()
    with https_target(ca) as tls, trickling_relay(tls.port, delay=0.02) as port:
        result = run_http(_check(f"https://127.0.0.1:{port}/ok", skip_tls_verify=True))
    _timed_out(result)


def test_the_timeout_spans_redirects() -> None:
    # Each hop answers within the timeout; together they take far longer.
    def serve(conn: socket.socket) -> None:
        while read_request_head(conn):
            stall(0.4)
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")

    with raw_server(serve) as port:
        result = run_http(_check(f"http://127.0.0.1:{port}/"))
    _timed_out(result)


@pytest.fixture
def stalled_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A name whose lookup hangs (the system resolver has no deadline of its own; the
    resolver itself is not what is tested, so this one lookup is replaced)."""
    name = "stalled-dns.test"
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield name
    release.set()


def test_a_hanging_dns_lookup_is_a_timeout(stalled_dns: str) -> None:
    result = run_http(_check(f"http://{stalled_dns}/"))
    _timed_out(result)


@pytest.mark.processes
def test_a_forked_worker_process_gets_a_working_watchdog() -> None:
    """Celery's prefork pool forks worker processes; a parent thread may hold the
    watchdog's lock at that moment, and the child must not inherit it held."""
    import os
    import time

    from app.execution.http.transport import Watchdog

    dog = Watchdog()
    dog.disarm(dog.arm(time.perf_counter() + 60, lambda: None))  # its thread runs
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with dog._condition:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: arm an alarm and report whether it went off
        fired = threading.Event()
        dog.arm(time.perf_counter() + 0.05, fired.set)
        os._exit(0 if fired.wait(5) else 1)
    release.set()
    holder.join()
    deadline = time.monotonic() + 15
    while (waited := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if waited == (0, 0):
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's watchdog hung on a lock held at the fork")
    assert os.waitstatus_to_exitcode(waited[1]) == 0, "the child's alarm never went off"
