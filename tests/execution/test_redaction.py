"""Secrets never reach a result, whatever form the target echoes them in, and wherever a
length limit cuts the text that holds them: redaction comes first, then the cut."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest

from app.execution.assertions import ACTUAL_REPR_LIMIT
from app.execution.outcome import ERROR_LIMIT, redact_result
from app.execution.redact import REDACTED, Redactor
from tests.support.exchange_servers import (
    SecretEchoServer,
    run_http,
    secret_echo_target,
    secret_forms,
)
from tests.support.results import run_result

# Every character that some encoding changes: / @ space & < > " ' + = %
SECRET = "s3cr3t/p@ss w0rd&<\"x'>+=%42"
UNICODE_SECRET = "clé-secrète-Ω-2026"
VARIABLES = {"SYNMON_VAR_TOKEN": SECRET, "SYNMON_VAR_OTHER": UNICODE_SECRET}


@pytest.fixture(scope="module")
def target() -> Iterator[SecretEchoServer]:
    with secret_echo_target(SECRET) as server:
        yield server


def _leaks(text: str, secret: str = SECRET, shortest: int = 6) -> list[str]:
    """Pieces of ``secret`` (in any of its forms) of at least ``shortest`` characters
    found in ``text``: its start, and any form of it whole."""
    found = []
    for name, form in secret_forms(secret).items():
        if form in text:
            found.append(f"{name}: {form}")
    for length in range(shortest, len(secret) + 1):
        if secret[:length] in text:
            found.append(f"start: {secret[:length]}")
            break
    return found


def _stored(result: Any) -> str:
    return json.dumps(asdict(result), default=str, ensure_ascii=False)


def test_every_form_in_the_body_and_headers_is_redacted(target: SecretEchoServer) -> None:
    result = run_http(
        {"request": {"url": target.url("/forms")}},
        SYNMON_RESPONSE_EXCERPT_BYTES="65536",
        **VARIABLES,
    )
    assert result.status == "passed", result.error
    excerpt = result.response["body_excerpt"]
    assert _leaks(excerpt) == []
    # One [REDACTED] per form line, and in the JSON and link lines.
    assert excerpt.count(REDACTED) >= len(secret_forms(SECRET))
    headers = result.response["headers"]
    for name in ("X-Echo", "X-Echo-Base64", "WWW-Authenticate"):
        assert REDACTED in headers[name] and _leaks(headers[name]) == [], name
    assert headers["X-Echo-Url"] == f"https://example.invalid/cb?token={REDACTED}"
    assert _leaks(_stored(result)) == []


@pytest.mark.parametrize("before", [1, 5, len(SECRET) - 1])
def test_a_secret_across_the_excerpt_limit_leaks_no_part(
    target: SecretEchoServer, before: int
) -> None:
    limit = 1024
    # The secret starts ``before`` characters before the excerpt ends.
    result = run_http(
        {"request": {"url": target.url(f"/at?offset={limit - before}")}},
        SYNMON_RESPONSE_EXCERPT_BYTES=str(limit),
        **VARIABLES,
    )
    excerpt = result.response["body_excerpt"]
    assert excerpt == ("a" * (limit - before) + REDACTED + "b" * limit)[:limit]
    assert _leaks(excerpt, shortest=1) == []


def test_a_secret_across_the_body_size_limit_leaks_no_part(target: SecretEchoServer) -> None:
    # The body is read up to 1024 bytes; the secret starts 8 bytes before that.
    result = run_http(
        {"request": {"url": target.url("/at?offset=1016")}},
        SYNMON_MAX_RESPONSE_BYTES="1024",
        SYNMON_RESPONSE_EXCERPT_BYTES="4096",
        **VARIABLES,
    )
    assert result.response["body_truncated"] is True
    excerpt = result.response["body_excerpt"]
    assert excerpt == "a" * 1016 + REDACTED
    assert _leaks(excerpt, shortest=3) == []


@pytest.mark.parametrize("before", [3, 8])
def test_a_secret_across_the_header_value_limit_leaks_no_part(
    target: SecretEchoServer, before: int
) -> None:
    result = run_http(
        {"request": {"url": target.url(f"/header-at?offset={500 - before}")}}, **VARIABLES
    )
    value = result.response["headers"]["X-Long"]
    assert len(value) == 500
    assert value == "h" * (500 - before) + REDACTED[:before]


def test_a_secret_across_the_assertion_value_limit_leaks_no_part(
    target: SecretEchoServer,
) -> None:
    before = 7
    result = run_http(
        {
            "request": {"url": target.url(f"/at?offset={ACTUAL_REPR_LIMIT - before}")},
            "assertions": [
                {"source": "text_body", "comparison": "contains", "target": "never there"}
            ],
        },
        **VARIABLES,
    )
    assert result.status == "failed" and result.error_kind == "assertion"
    actual = result.assertions[0]["actual"]
    assert actual.startswith("a" * (ACTUAL_REPR_LIMIT - before) + REDACTED[:before])
    assert SECRET[:before] not in actual and SECRET[:before] not in (result.error or "")
    # The verdict is the real response's: the redacted copy only feeds what is shown.
    passing = run_http(
        {
            "request": {"url": target.url("/at?offset=10")},
            "assertions": [{"source": "text_body", "comparison": "contains", "target": SECRET}],
        },
        **VARIABLES,
    )
    assert passing.status == "passed", passing.error
    assert _leaks(_stored(passing)) == []


@pytest.mark.parametrize("before", [4, 20])
def test_a_secret_in_an_error_across_its_cut_leaks_no_part(
    target: SecretEchoServer, before: int
) -> None:
    # A broken status line is quoted in the error; the secret sits where it is cut.
    prefix = len("connection to 127.0.0.1 failed: ('Connection aborted.', BadStatusLine('")
    offset = 300 - (prefix - len("connection to 127.0.0.1 failed: ")) - before
    offset -= len("HTTP/1.1 2x0 ")
    result = run_http({"request": {"url": target.url(f"/bad-status?offset={offset}")}}, **VARIABLES)
    assert result.status == "failed" and result.error_kind == "network"
    error = result.error or ""
    assert "BadStatusLine" in error and _leaks(error, shortest=3) == [], error


def test_a_unicode_secret_is_redacted_in_its_json_escaped_forms() -> None:
    escaped = json.dumps(UNICODE_SECRET)[1:-1]  # cl\u00e9-secr\u00e8te-\u03a9-2026
    upper = escaped.replace("\\u00e9", "\\u00E9").replace("\\u00e8", "\\u00E8")
    upper = upper.replace("\\u03a9", "\\u03A9")  # as Java and .NET serializers write it
    result = run_result(
        error=f"all of {UNICODE_SECRET}, {escaped} and {upper}",
        response={"body_excerpt": json.dumps({"k": UNICODE_SECRET})},
    )
    redacted = redact_result(result, frozenset([UNICODE_SECRET]))
    assert redacted.error == f"all of {REDACTED}, {REDACTED} and {REDACTED}"
    assert redacted.response["body_excerpt"] == json.dumps({"k": REDACTED})


def test_a_body_cut_inside_a_character_of_a_secret_leaks_no_part() -> None:
    # Bytes: c l é(2) - s e c r è(2)...: the 1024-byte limit falls inside è.
    offset = 1024 - len("clé-secr".encode()) - 1
    with secret_echo_target(UNICODE_SECRET) as target:
        result = run_http(
            {"request": {"url": target.url(f"/at?offset={offset}")}},
            SYNMON_MAX_RESPONSE_BYTES="1024",
            SYNMON_RESPONSE_EXCERPT_BYTES="4096",
            **VARIABLES,
        )
    excerpt = result.response["body_excerpt"]
    assert result.response["body_truncated"] is True
    assert excerpt == "a" * offset + REDACTED, excerpt[-20:]


def test_the_generic_result_path_redacts_an_error_before_bounding_it() -> None:
    error = "x" * (ERROR_LIMIT - 5) + SECRET + "y" * 100
    redacted = redact_result(run_result(error=error), frozenset([SECRET]))
    assert redacted.error == "x" * (ERROR_LIMIT - 5) + REDACTED[:5]
    unbounded = redact_result(run_result(error="z" * (ERROR_LIMIT * 2)), frozenset())
    assert unbounded.error == "z" * ERROR_LIMIT


@pytest.mark.parametrize("user", ["", "a", "ab", "monitor", "someone.else@example.com"])
def test_a_secret_inside_any_basic_auth_token_is_redacted(user: str) -> None:
    import base64

    token = base64.b64encode(f"{user}:{SECRET}".encode()).decode()
    redacted = Redactor([SECRET]).text(f"Authorization: Basic {token}")
    before, marker, after = redacted.removeprefix("Authorization: Basic ").partition(REDACTED)
    assert marker == REDACTED
    # Around the marker: the user's part of the token and at most one character that
    # mixes bits of the secret with the user's, at the end a character and padding.
    assert token.startswith(before) and len(before) <= len(base64.b64encode(f"{user}:".encode()))
    assert token.endswith(after) and len(after.rstrip("=")) <= 1


def test_short_values_are_not_secrets_worth_redacting() -> None:
    assert Redactor(["abc"]).text("abc abcdef") == "abc abcdef"
