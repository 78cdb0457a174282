"""Chromium reaches nothing but the guard proxy, and sends nothing of its own.

Real headless Chromium, a real guard proxy and real sockets, all on 127.0.0.1. The
proxy's guard here refuses names before looking them up (``OfflineGuard``), so that
whatever Chromium asks for never leaves the machine, not even as a DNS query.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.definitions.models import Check
from app.execution.browser.chromium import SERVICE_SINK_DOMAIN
from app.execution.browser.pool import BrowserHost
from app.execution.browser.proxy import (
    CHROMIUM,
    FORWARDED,
    OUTSIDE_RUN,
    REFUSED,
    GuardProxy,
    ProxyRequest,
    chromium_service_reason,
)
from app.execution.runs import RunRequest, RunResult
from tests.support.browser_isolation import (
    MDNS_GROUPS,
    HostileServer,
    Listeners,
    OfflineGuard,
    SocketWatch,
    listening,
    multicast_memberships,
)
from tests.support.servers import TargetServer, serving
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site() -> Iterator[HostileServer]:
    with serving(HostileServer()) as server:
        yield server


def browser_host(site: TargetServer, folder: Path) -> BrowserHost:
    settings = make_settings(
        SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{site.port}",
        SYNMON_DATA_DIR=str(folder),
        SYNMON_BROWSER_RECYCLE_AFTER="1000",
    )
    host = BrowserHost(settings)
    host.proxy.guard = OfflineGuard((f"127.0.0.1:{site.port}",))
    return host


def run(host: BrowserHost, steps: list[Any]) -> RunResult:
    check = Check.model_validate(
        {
            "id": "isolation",
            "type": "browser",
            "locations": ["eu-west-1"],
            "browser": {"steps": steps},
        }
    )
    request = RunRequest(uuid.uuid4(), check.snapshot(), "eu-west-1", datetime.now(UTC))
    return host.run(check, request, 1)


@dataclass
class HostileRun:
    result: RunResult
    arrivals: list[str]
    seen: list[ProxyRequest]
    watch: SocketWatch
    groups_before: dict[str, int]
    listeners: Listeners


@pytest.fixture(scope="module")
def hostile_run(
    site: HostileServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileRun]:
    """One run of the hostile page, its sockets watched from launch to close."""
    host = browser_host(site, tmp_path_factory.mktemp("isolation"))
    groups_before = multicast_memberships()
    watch = SocketWatch()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            if host.chromium is not None:
                watch.sample(host.chromium.tree())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        with listening() as listeners:
            sampler.start()
            url = site.url(f"/hostile?udp={listeners.udp_port}&tcp={listeners.tcp_port}")
            result = run(
                host,
                [
                    {"goto": url},
                    {"wait_for": {"selector": "#done", "timeout": "15s"}},
                    # The attempts were made: three peer connections and no exception
                    # that would have stopped the script before them.
                    {"evaluate": "window.attempts.peers === 3"},
                ],
            )
            time.sleep(1.0)  # for retransmissions in flight when the page closed
            stop.set()
            sampler.join()
            yield HostileRun(
                result,
                list(listeners.arrivals),
                host.proxy.state.take_seen(),
                watch,
                groups_before,
                listeners,
            )
    finally:
        stop.set()
        host.close()


@pytest.mark.processes
def test_a_page_reaches_no_udp_or_tcp_port_past_the_proxy(hostile_run: HostileRun) -> None:
    result = hostile_run.result
    assert result.status == "passed", result.error
    # STUN, TURN over UDP and TCP, remote candidates, a data channel, WebTransport,
    # WebSocket, fetch, beacon and preconnect: nothing arrived on either port.
    assert hostile_run.arrivals == []
    # What went through the proxy instead (TURN over TCP, WebSocket, fetch, beacon)
    # was refused there: the listener's TCP port is not an allowed target.
    tcp_port = hostile_run.listeners.tcp_port
    towards = [r for r in hostile_run.seen if r.port == tcp_port]
    assert towards, "the page's TCP attempts should have reached the proxy"
    assert all(r.verdict != FORWARDED for r in towards), towards


@pytest.mark.processes
def test_chromium_joins_no_multicast_group_and_opens_no_mdns_socket(
    hostile_run: HostileRun,
) -> None:
    watch = hostile_run.watch
    assert watch.samples > 10, "the sampler should have watched the whole run"
    assert watch.mdns_sockets == set()
    for group in MDNS_GROUPS:
        assert watch.group_users.get(group, 0) <= hostile_run.groups_before[group], group


@pytest.mark.processes
def test_a_runs_proxy_log_holds_only_the_checks_requests(
    site: HostileServer, tmp_path: Path
) -> None:
    host = browser_host(site, tmp_path)
    guard = host.proxy.guard
    assert isinstance(guard, OfflineGuard)
    try:
        steps = [{"goto": site.url("/plain")}, {"click": "#b"}]
        first = run(host, steps)  # launches Chromium: its start-up requests are in the log
        time.sleep(3.0)  # and those of its first seconds, when its services start
        second = run(host, steps)
        assert first.status == second.status == "passed", (first.error, second.error)
        seen = host.proxy.state.take_seen()
    finally:
        host.close()
    checks_own = [r for r in seen if (r.host, r.port) == ("127.0.0.1", site.port)]
    assert {r.verdict for r in checks_own} == {FORWARDED}
    assert len(checks_own) >= 4  # two pages and their pixel
    others = [r for r in seen if r not in checks_own]
    # Chromium's own clients that no flag stops were sent to the sink domain and refused
    # there (or, between runs, refused as no check's); nothing else of Chromium's (no
    # Google host) reached the proxy.
    assert all(r.host.endswith("." + SERVICE_SINK_DOMAIN) for r in others), others
    assert {r.verdict for r in others} <= {CHROMIUM, OUTSIDE_RUN}
    # Refused before any lookup: the guard was never asked to resolve a name.
    assert guard.names == []


# ---------------------------------------------------------------- the proxy alone


def _ask(proxy: GuardProxy, request_line: str) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
        client.sendall(f"{request_line}\r\nHost: x\r\n\r\n".encode())
        return client.recv(65536)


def test_the_proxy_refuses_chromiums_service_hosts_without_a_lookup(site: HostileServer) -> None:
    guard = OfflineGuard((f"127.0.0.1:{site.port}",))
    proxy = GuardProxy(guard).start()
    try:
        for host in ("update.googleapis.com", f"gaia.{SERVICE_SINK_DOMAIN}", "x.example.invalid"):
            answer = _ask(proxy, f"CONNECT {host}:443 HTTP/1.1")
            assert answer.startswith(b"HTTP/1.1 403"), answer
        answer = _ask(proxy, "GET http://clients2.google.com/time/1/current HTTP/1.1")
        assert answer.startswith(b"HTTP/1.1 403") and b"only Chromium's own" in answer
        for bad in ("notaport", "\u00b2", "0", "70000", ""):
            answer = _ask(proxy, f"CONNECT 127.0.0.1:{bad} HTTP/1.1")
            assert answer.startswith(b"HTTP/1.1 400"), (bad, answer)
        forwarded = _ask(proxy, f"GET http://127.0.0.1:{site.port}/plain HTTP/1.1")
        assert forwarded.startswith(b"HTTP/1.1 200")
    finally:
        proxy.stop()
    assert guard.names == []
    verdicts = [(r.host, r.verdict) for r in proxy.state.take_seen()]
    assert verdicts == [
        ("update.googleapis.com", CHROMIUM),
        (f"gaia.{SERVICE_SINK_DOMAIN}", CHROMIUM),
        ("x.example.invalid", CHROMIUM),
        ("clients2.google.com", CHROMIUM),
        ("127.0.0.1", FORWARDED),
    ]
    # A Google host a page may name is reported with the check; the sink is not a page's.
    assert [r.host for r in proxy.state.take()] == ["update.googleapis.com", "clients2.google.com"]
    assert chromium_service_reason("accounts.google.com") is None
    assert chromium_service_reason("UPDATE.googleapis.com.") is not None


def test_between_runs_the_proxy_refuses_everything(site: HostileServer) -> None:
    proxy = GuardProxy(OfflineGuard((f"127.0.0.1:{site.port}",)), refuse_between_runs=True)
    proxy.start()
    request = f"GET http://127.0.0.1:{site.port}/plain HTTP/1.1"
    hits = len(site.hits)
    try:
        assert _ask(proxy, request).startswith(b"HTTP/1.1 403")
        assert len(site.hits) == hits  # refused before connecting
        with proxy.check_run():
            assert _ask(proxy, request).startswith(b"HTTP/1.1 200")
        assert _ask(proxy, request).startswith(b"HTTP/1.1 403")
    finally:
        proxy.stop()
    assert [r.verdict for r in proxy.state.take_seen()] == [OUTSIDE_RUN, FORWARDED, OUTSIDE_RUN]
    assert proxy.state.take() == []  # not a check's refusal: no check was running


def _ask_on(port: int, request_line: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(f"{request_line}\r\nHost: x\r\n\r\n".encode())
        return client.recv(65536)


def test_each_run_has_a_port_of_its_own_that_closes_with_it(site: HostileServer) -> None:
    proxy = GuardProxy(OfflineGuard((f"127.0.0.1:{site.port}",)), refuse_between_runs=True)
    proxy.start()
    allowed = f"GET http://127.0.0.1:{site.port}/plain HTTP/1.1"
    try:
        with proxy.run_port() as first, proxy.run_port() as second:
            assert len({proxy.port, first.port, second.port}) == 3
            assert _ask_on(first.port, allowed).startswith(b"HTTP/1.1 200")
            assert _ask_on(first.port, "CONNECT 10.0.0.1:443 HTTP/1.1").startswith(b"HTTP/1.1 403")
            assert _ask_on(second.port, "CONNECT 10.0.0.2:443 HTTP/1.1").startswith(b"HTTP/1.1 403")
            # The launch port stays between runs while runs are open on their own ports.
            assert _ask(proxy, allowed).startswith(b"HTTP/1.1 403")
            # Each run is told of its own refusals only; the proxy's own list has none.
            assert [r.host for r in first.take()] == ["10.0.0.1"]
            assert [r.host for r in second.take()] == ["10.0.0.2"]
            assert proxy.state.take() == []
            assert [r.verdict for r in first.state.take_seen()] == [FORWARDED, REFUSED]
        time.sleep(0.2)  # the proxy's loop closes the ports
        for closed in (first.port, second.port):
            with pytest.raises(OSError):
                _ask_on(closed, allowed)
    finally:
        proxy.stop()
    # The proxy's log holds every port's requests.
    assert [r.verdict for r in proxy.state.take_seen()] == [
        FORWARDED,
        REFUSED,
        REFUSED,
        OUTSIDE_RUN,
    ]
