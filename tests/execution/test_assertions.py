"""The assertion engine: every source and every comparison, with Checkly's meaning."""

from __future__ import annotations

import pytest

from app.definitions.models import Assertion
from app.execution.assertions import CaseInsensitive, ResponseFacts, compare, judge

FACTS = ResponseFacts(
    status_code=200,
    headers={"Content-Type": "application/json; charset=utf-8", "X-Request-Id": "abc123"},
    text='{"status": "ok", "count": 3, "items": [1, 2, 3], "nested": {"flag": true}, "missing": null, "empty": ""}',
    response_time_ms=123.4,
    tls_days_until_expiry=42.5,
)


@pytest.mark.parametrize(
    ("source", "prop", "comparison", "target", "passed"),
    [
        ("status_code", None, "equals", 200, True),
        ("status_code", None, "equals", "200", True),
        ("status_code", None, "not_equals", 500, True),
        ("status_code", None, "greater_than", 199, True),
        ("status_code", None, "less_than", 300, True),
        ("status_code", None, "less_than", 200, False),
        ("json_body", "$.status", "equals", "ok", True),
        ("json_body", "$.status", "not_equals", "down", True),
        ("json_body", "$.count", "greater_than", 2, True),
        ("json_body", "$.count", "less_than", 3, False),
        ("json_body", "$.items", "contains", 2, True),
        ("json_body", "$.items", "not_contains", 7, True),
        ("json_body", "$.status", "matches", "^o.$", True),
        ("json_body", "$.empty", "is_empty", None, True),
        ("json_body", "$.status", "not_empty", None, True),
        ("json_body", "$.nested", "has_key", "flag", True),
        ("json_body", "$.nested", "not_has_key", "other", True),
        ("json_body", "$.missing", "is_null", None, True),
        ("json_body", "$.status", "not_null", None, True),
        ("json_body", "$.nested.flag", "equals", "true", True),
        ("json_body", "$.absent", "equals", "x", False),
        ("json_body", "$.absent", "is_null", None, True),
        # $.items[*] selects three values and each must satisfy the comparison
        # (Checkly's rule): "1" does not contain "3". $.items, one array, contains 3.
        ("json_body", "$.items[*]", "contains", 3, False),
        ("json_body", "$.items", "contains", 3, True),
        ("json_body", "$.items[*]", "less_than", 4, True),
        ("json_body", None, "has_key", "status", True),
        ("headers", "content-type", "contains", "json", True),
        ("headers", "CONTENT-TYPE", "not_contains", "xml", True),
        ("headers", "x-request-id", "equals", "abc123", True),
        ("headers", "x-absent", "equals", "abc123", False),
        ("headers", "x-absent", "is_empty", None, True),
        ("headers", None, "has_key", "X-REQUEST-ID", True),
        ("headers", None, "not_has_key", "Set-Cookie", True),
        ("text_body", None, "contains", '"status": "ok"', True),
        ("text_body", None, "matches", r"count\": \d+", True),
        ("text_body", None, "not_contains", "error", True),
        ("text_body", None, "not_empty", None, True),
        ("response_time", None, "less_than", 500, True),
        ("response_time", None, "greater_than", 500, False),
        ("tls_certificate", "days_until_expiry", "greater_than", 14, True),
        ("tls_certificate", "days_until_expiry", "less_than", 14, False),
    ],
)
def test_sources_and_comparisons(
    source: str, prop: str | None, comparison: str, target: object, passed: bool
) -> None:
    assertion = Assertion(source=source, property=prop, comparison=comparison, target=target)
    (outcome,) = judge([assertion], FACTS)
    assert outcome.passed is passed, outcome


def test_non_json_body_fails_json_assertions_with_a_reason() -> None:
    facts = ResponseFacts(status_code=200, headers={}, text="<html>", response_time_ms=1)
    (outcome,) = judge([Assertion(source="json_body", property="$.a", comparison="is_null")], facts)
    assert not outcome.passed and outcome.error == "the response body is not JSON"


def test_tls_assertion_over_plain_http_fails_with_a_reason() -> None:
    facts = ResponseFacts(status_code=200, headers={}, text="", response_time_ms=1)
    assertion = Assertion(
        source="tls_certificate", property="days_until_expiry", comparison="greater_than", target=1
    )
    (outcome,) = judge([assertion], facts)
    assert not outcome.passed and "not made over https" in (outcome.error or "")


def test_actual_values_in_outcomes_are_bounded() -> None:
    facts = ResponseFacts(status_code=200, headers={}, text="x" * 10_000, response_time_ms=1)
    (outcome,) = judge([Assertion(source="text_body", comparison="contains", target="y")], facts)
    assert len(outcome.actual) <= 200


@pytest.mark.parametrize(
    ("actual", "comparison", "target", "expected"),
    [
        (None, "is_empty", None, True),
        ([], "is_empty", None, True),
        ({}, "not_empty", None, False),
        (1.0, "equals", "1", True),
        (True, "equals", "true", True),
        ("abc", "greater_than", 1, False),
        ({"a": 1}, "equals", '{"a":1}', True),
        (CaseInsensitive({"A": "1"}), "has_key", "a", True),
        ("x", "has_key", "x", False),
    ],
)
def test_compare_edges(actual: object, comparison: str, target: object, expected: bool) -> None:
    assert compare(actual, comparison, target) is expected


def test_unknown_comparison_is_a_bug_not_a_pass() -> None:
    with pytest.raises(ValueError, match="unknown comparison"):
        compare(1, "roughly", 1)
