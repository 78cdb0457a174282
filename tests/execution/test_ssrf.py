"""The target guard: decides on addresses, before any connection is made."""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from app.definitions.models import Check
from app.execution.guard import ForbiddenTarget, TargetGuard, classify
from app.execution.http.check import run_http_check
from app.execution.runs import RunRequest
from tests.support.servers import http_target
from tests.support.settings import make_settings


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.64.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("fc00::1", "private"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_classification(address: str, reason: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == reason


def test_allow_private_still_refuses_metadata() -> None:
    guard = TargetGuard(allow_private=True)
    guard.check_address("h", "10.0.0.1")
    guard.check_address("h", "127.0.0.1")
    with pytest.raises(ForbiddenTarget, match="cloud metadata"):
        guard.check_address("h", "169.254.169.254")


def test_allowlist_by_network_and_port() -> None:
    guard = TargetGuard(allowed=["127.0.0.1:8080", "10.1.0.0/16", "[::1]:9000"])
    guard.check_address("h", "127.0.0.1", 8080)
    guard.check_address("h", "10.1.2.3", 443)
    guard.check_address("h", "::1", 9000)
    for address, port in (("127.0.0.1", 8081), ("10.2.0.1", 443), ("::1", 9001)):
        with pytest.raises(ForbiddenTarget):
            guard.check_address("h", address, port)


def test_a_name_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(ForbiddenTarget, match=r"localhost \((127\.0\.0\.1|::1)\): loopback"):
        TargetGuard().resolve("localhost", 80)


@pytest.fixture
def connections() -> Iterator[list[Any]]:
    """Every socket connect attempted during the test (none may reach a forbidden address)."""
    attempts: list[Any] = []
    original = socket.socket.connect

    def recording_connect(self: socket.socket, address: Any) -> Any:
        attempts.append(address)
        return original(self, address)

    socket.socket.connect = recording_connect  # type: ignore[method-assign,assignment]
    try:
        yield attempts
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def run(url: str, **settings_env: str) -> Any:
    settings = make_settings(**settings_env)
    check = Check.model_validate(
        {"id": "c", "type": "http", "locations": ["eu-west-1"], "request": {"url": url}}
    )
    request = RunRequest(uuid.uuid4(), check.snapshot(), "eu-west-1", datetime.now(UTC))
    guard = TargetGuard(settings.allow_private_targets, settings.allowed_targets)
    return run_http_check(check, request, settings, guard)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/",
        "http://localhost:9/",
        "http://[::ffff:10.0.0.1]/",
    ],
)
def test_forbidden_targets_fail_without_a_connection(url: str, connections: list[Any]) -> None:
    result = run(url)
    assert result.status == "failed" and result.error_kind == "forbidden_target"
    assert "not allowed" in (result.error or "")
    assert connections == []


@pytest.mark.parametrize(
    "forbidden",
    ["http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]:{port}/", "http://localhost:1/"],
)
def test_a_redirect_to_a_forbidden_target_is_refused(
    forbidden: str, connections: list[Any]
) -> None:
    with http_target() as allowed_server:
        target = forbidden.format(port=allowed_server.port)
        # Only the first hop's exact address and port are allowed.
        result = run(
            allowed_server.url("/redirect?to=" + target),
            SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{allowed_server.port}",
        )
        assert result.status == "failed" and result.error_kind == "forbidden_target", result.error
        assert [a[0] for a in connections] == ["127.0.0.1"]
        assert len(allowed_server.hits) == 1


def test_same_host_other_port_is_refused(connections: list[Any]) -> None:
    with http_target() as allowed_server, http_target() as other:
        redirect = allowed_server.url(f"/redirect?to=http://127.0.0.1:{other.port}/ok")
        result = run(redirect, SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{allowed_server.port}")
        assert result.status == "failed" and result.error_kind == "forbidden_target"
        assert other.hits == []


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[fd00:ec2::23]/v1/credentials",
        "http://169.254.170.2/v2/credentials",
        "http://169.254.170.23/v1/credentials",
    ],
)
def test_metadata_in_any_form_is_refused_even_with_private_targets_open(
    url: str, connections: list[Any]
) -> None:
    result = run(url, SYNMON_ALLOW_PRIVATE_TARGETS="true", SYNMON_ALLOWED_TARGETS="169.254.0.0/16")
    assert result.status == "failed" and result.error_kind == "forbidden_target"
    assert "cloud metadata addresses are not allowed" in (result.error or "")
    assert connections == []
