"""HTTP checks against real local servers (HTTP and HTTPS with a CA the tests make)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import trustme

from app.definitions.models import Check
from app.execution.guard import TargetGuard
from app.execution.http.check import run_http_check
from app.execution.runs import RunRequest, RunResult
from tests.support.servers import TargetServer, http_target, https_target
from tests.support.settings import make_settings

GUARD = TargetGuard(allow_private=True)


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tls_target(ca: trustme.CA) -> Iterator[TargetServer]:
    with https_target(ca, not_after_days=40) as server:
        yield server


def run(definition: dict[str, Any], **env: str) -> RunResult:
    settings = make_settings(**env)
    check = Check.model_validate(
        {"id": "c", "type": "http", "locations": ["eu-west-1"], **definition}
    )
    request = RunRequest(uuid.uuid4(), check.snapshot(), "eu-west-1", datetime.now(UTC))
    return run_http_check(check, request, settings, GUARD)


def test_a_passing_check_records_timings_and_an_excerpt(target: TargetServer) -> None:
    result = run(
        {
            "request": {"url": target.url("/json")},
            "assertions": [
                {
                    "source": "json_body",
                    "property": "$.status",
                    "comparison": "equals",
                    "target": "ok",
                }
            ],
        }
    )
    assert result.status == "passed", result.error
    assert result.error is None
    assert result.response["status_code"] == 200
    assert json.loads(result.response["body_excerpt"])["status"] == "ok"
    assert set(result.timings) >= {
        "dns_ms",
        "connect_ms",
        "tls_ms",
        "first_byte_ms",
        "wait_ms",
        "download_ms",
        "total_ms",
    }
    assert result.duration_ms > 0 and result.assertions[0]["passed"] is True


def test_without_assertions_a_status_below_400_passes(target: TargetServer) -> None:
    assert run({"request": {"url": target.url("/ok")}}).status == "passed"
    failed = run({"request": {"url": target.url("/status/503")}})
    assert failed.status == "failed" and failed.error_kind == "assertion"
    assert "status_code less_than 400 (actual: 503)" in (failed.error or "")


def test_failed_assertions_are_all_reported(target: TargetServer) -> None:
    result = run(
        {
            "request": {"url": target.url("/json")},
            "assertions": [
                {"source": "status_code", "comparison": "equals", "target": 201},
                {
                    "source": "json_body",
                    "property": "$.count",
                    "comparison": "greater_than",
                    "target": 10,
                },
                {
                    "source": "headers",
                    "property": "x-request-id",
                    "comparison": "equals",
                    "target": "abc123",
                },
            ],
        }
    )
    assert result.status == "failed"
    assert [a["passed"] for a in result.assertions] == [False, False, True]
    assert result.error == "assertion failed: status_code equals 201 (actual: 200), and 1 more"


def test_degraded_and_max_response_time(target: TargetServer) -> None:
    slow = {"request": {"url": target.url("/slow?delay=0.3")}}
    assert (
        run({**slow, "degraded_response_time": "100ms", "max_response_time": "5s"}).status
        == "degraded"
    )
    over = run({**slow, "degraded_response_time": "50ms", "max_response_time": "200ms"})
    assert over.status == "failed" and over.error_kind == "response_time"
    assert "over max_response_time 200 ms" in (over.error or "")
    assert run({**slow, "degraded_response_time": "2s"}).status == "passed"


def test_timeouts_are_check_failures(target: TargetServer) -> None:
    result = run({"request": {"url": target.url("/hang?delay=3"), "timeout": "500ms"}})
    assert result.status == "failed" and result.error_kind == "timeout"
    assert result.duration_ms < 2000
    trickle = run({"request": {"url": target.url("/trickle"), "timeout": "1s"}})
    assert trickle.status == "failed" and trickle.error_kind == "timeout"
    assert "no complete response within the timeout of 1s" in (trickle.error or "")


def test_refused_connection_and_dns_failure() -> None:
    from tests.support.processes import free_port

    refused = run({"request": {"url": f"http://127.0.0.1:{free_port()}/"}})
    assert refused.status == "failed" and refused.error_kind == "network"
    assert "refused" in (refused.error or "")
    unknown = run({"request": {"url": "http://no-such-host.invalid/"}})
    assert unknown.status == "failed" and unknown.error_kind == "network"
    assert "DNS lookup of no-such-host.invalid failed" in (unknown.error or "")


def test_redirects_followed_or_not(target: TargetServer) -> None:
    followed = run({"request": {"url": target.url("/redirect?to=/json&code=301")}})
    assert followed.status == "passed" and followed.response["redirects"] == 1
    assert followed.response["url"].endswith("/json")
    kept = run(
        {
            "request": {"url": target.url("/redirect?to=/json"), "follow_redirects": False},
            "assertions": [
                {"source": "status_code", "comparison": "equals", "target": 302},
                {
                    "source": "headers",
                    "property": "location",
                    "comparison": "equals",
                    "target": "/json",
                },
            ],
        }
    )
    assert kept.status == "passed", kept.error
    loop = run({"request": {"url": target.url("/redirect?to=/redirect%3Fto%3D/redirect")}})
    assert loop.status == "failed"


def test_a_303_after_post_becomes_a_get(target: TargetServer) -> None:
    result = run(
        {
            "request": {
                "url": target.url("/redirect?to=/echo&code=303"),
                "method": "POST",
                "body": {"a": 1},
            },
            "assertions": [
                {
                    "source": "json_body",
                    "property": "$.method",
                    "comparison": "equals",
                    "target": "GET",
                }
            ],
        }
    )
    assert result.status == "passed", result.error


def test_large_bodies_are_read_up_to_the_limit(target: TargetServer) -> None:
    result = run(
        {"request": {"url": target.url("/big?size=5000000")}}, SYNMON_MAX_RESPONSE_BYTES="100000"
    )
    assert result.status == "passed"
    assert result.response["body_bytes"] == 100000 and result.response["body_truncated"] is True
    assert len(result.response["body_excerpt"]) <= 2048


def test_method_headers_query_and_json_body_are_sent(target: TargetServer) -> None:
    result = run(
        {
            "request": {
                "url": target.url("/echo"),
                "method": "put",
                "headers": {"X-Token": "{{TOKEN}}"},
                "query": {"verbose": "1"},
                "body": {"name": "synmon", "token": "{{TOKEN}}"},
            },
            "assertions": [
                {
                    "source": "json_body",
                    "property": "$.method",
                    "comparison": "equals",
                    "target": "PUT",
                },
                {
                    "source": "json_body",
                    "property": "$.query.verbose",
                    "comparison": "equals",
                    "target": "1",
                },
                {"source": "json_body", "property": "$.headers.X-Token", "comparison": "not_empty"},
                {
                    "source": "json_body",
                    "property": "$.body",
                    "comparison": "contains",
                    "target": "synmon",
                },
            ],
        },
        SYNMON_VAR_TOKEN="tok-123456",
    )
    assert result.status == "passed", result.error
    sent = target.hits[-1]
    assert sent["headers"]["X-Token"] == "tok-123456"
    assert json.loads(sent["body"]) == {"name": "synmon", "token": "tok-123456"}
    # The secret travelled to the target but is nowhere in the result.
    assert "tok-123456" not in json.dumps(result.__dict__, default=str)
    assert "[REDACTED]" in result.response["body_excerpt"]


def test_basic_auth_with_a_placeholder_password(target: TargetServer) -> None:
    ok = run(
        {
            "request": {
                "url": target.url("/auth?pw=s3cret-pw"),
                "basic_auth": {"username": "monitor", "password": "{{PW}}"},
            }
        },
        SYNMON_VAR_PW="s3cret-pw",
    )
    assert ok.status == "passed", ok.error
    wrong = run(
        {
            "request": {
                "url": target.url("/auth?pw=s3cret-pw"),
                "basic_auth": {"username": "monitor", "password": "nope"},
            }
        }
    )
    assert wrong.status == "failed" and "actual: 401" in (wrong.error or "")


def test_an_undefined_placeholder_fails_the_check_clearly(target: TargetServer) -> None:
    result = run({"request": {"url": target.url("/ok"), "headers": {"A": "{{MISSING}}"}}})
    assert result.status == "failed" and result.error_kind == "config"
    assert result.error == (
        "placeholder {{MISSING}} has no value: set SYNMON_VAR_MISSING (or SYNMON_PUBLIC_VAR_MISSING) on the workers"
    )
    assert target.hits == [] or target.hits[-1]["headers"].get("A") != "{{MISSING}}"


def test_https_with_a_trusted_ca_and_certificate_expiry(
    tls_target: TargetServer, ca_bundle: str
) -> None:
    result = run(
        {
            "request": {"url": tls_target.url("/json")},
            "assertions": [
                {
                    "source": "tls_certificate",
                    "property": "days_until_expiry",
                    "comparison": "greater_than",
                    "target": 39,
                },
                {
                    "source": "tls_certificate",
                    "property": "days_until_expiry",
                    "comparison": "less_than",
                    "target": 41,
                },
            ],
        },
        SYNMON_CA_BUNDLE=ca_bundle,
    )
    assert result.status == "passed", result.error
    assert result.timings["tls_ms"] > 0
    assert "tls_not_after" in result.response


def test_https_with_an_untrusted_certificate(tls_target: TargetServer) -> None:
    result = run({"request": {"url": tls_target.url("/ok")}})
    assert result.status == "failed" and result.error_kind == "network"
    assert "TLS error" in (result.error or "") and "CERTIFICATE_VERIFY_FAILED" in (
        result.error or ""
    )
    skipped = run(
        {
            "request": {"url": tls_target.url("/ok"), "skip_tls_verify": True},
            "assertions": [
                {
                    "source": "tls_certificate",
                    "property": "days_until_expiry",
                    "comparison": "greater_than",
                    "target": 30,
                }
            ],
        }
    )
    assert skipped.status == "passed", skipped.error


def test_sensitive_response_headers_are_not_stored(target: TargetServer) -> None:
    result = run({"request": {"url": target.url("/json")}})
    assert result.response["headers"]["Set-Cookie"] == "[REDACTED]"
    assert "very-secret" not in json.dumps(result.response)
