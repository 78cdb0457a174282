"""The one assertion engine: every check type compares values through ``compare``.

HTTP checks extract a value per assertion source from the response facts; browser steps
(assert_text, assert_title, assert_url) compare page text with the same function, so a
comparison means the same thing wherever a check author writes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as parse_json_path

from app.checks.models import Assertion

_MISSING = object()
ACTUAL_REPR_LIMIT = 200


@lru_cache(maxsize=4096)
def compile_json_path(expression: str) -> Any:
    """A compiled JSONPath; raises ``ValueError`` with a readable message."""
    try:
        return parse_json_path(expression)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # noqa: BLE001 - jsonpath-ng raises bare Exceptions too
        raise ValueError(f"property {expression!r} is not a valid JSONPath: {exc}") from None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_empty(value: Any) -> bool:
    return value is None or value is _MISSING or value in ("", [], {})


def _equals(actual: Any, target: Any) -> bool:
    actual_number, target_number = _as_number(actual), _as_number(target)
    if actual_number is not None and target_number is not None:
        return actual_number == target_number
    return _as_text(actual) == _as_text(target)


def compare(actual: Any, comparison: str, target: Any = None) -> bool:
    """Whether ``actual`` satisfies ``comparison`` against ``target``.

    A missing value (no such header, no JSONPath match) fails every comparison except
    the negative ones that it trivially satisfies: not_contains, is_empty, is_null,
    not_has_key.
    """
    if actual is _MISSING:
        return comparison in ("not_contains", "is_empty", "is_null", "not_has_key")
    match comparison:
        case "equals":
            return _equals(actual, target)
        case "not_equals":
            return not _equals(actual, target)
        case "greater_than" | "less_than":
            a, t = _as_number(actual), _as_number(target)
            if a is None or t is None:
                return False
            return a > t if comparison == "greater_than" else a < t
        case "contains" | "not_contains":
            if isinstance(actual, list):
                found = any(_equals(item, target) for item in actual)
            else:
                found = _as_text(target) in _as_text(actual)
            return found if comparison == "contains" else not found
        case "matches":
            return re.search(str(target), _as_text(actual)) is not None
        case "is_empty":
            return _is_empty(actual)
        case "not_empty":
            return not _is_empty(actual)
        case "is_null":
            return actual is None
        case "not_null":
            return actual is not None
        case "has_key" | "not_has_key":
            present = isinstance(actual, Mapping) and _has_key(actual, str(target))
            return present if comparison == "has_key" else not present
    raise ValueError(f"unknown comparison {comparison!r}")


def _has_key(mapping: Mapping[str, Any], key: str) -> bool:
    if isinstance(mapping, CaseInsensitive):
        return mapping.lookup(key) is not _MISSING
    return key in mapping


class CaseInsensitive(dict[str, Any]):
    """Header names compare without regard to case, as HTTP says."""

    def lookup(self, name: str) -> Any:
        lowered = name.lower()
        for key, value in self.items():
            if key.lower() == lowered:
                return value
        return _MISSING


@dataclass
class ResponseFacts:
    """What an HTTP check observed, in the shape the assertion sources read."""

    status_code: int
    headers: Mapping[str, str]
    text: str
    response_time_ms: float
    tls_days_until_expiry: float | None = None
    _json: Any = field(default=_MISSING, repr=False)

    def json_body(self) -> Any:
        if self._json is _MISSING:
            try:
                self._json = json.loads(self.text)
            except ValueError:
                self._json = _NOT_JSON
        return self._json


_NOT_JSON = object()


@dataclass(frozen=True)
class AssertionOutcome:
    source: str
    property: str | None
    comparison: str
    target: Any
    actual: Any
    passed: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "property": self.property,
            "comparison": self.comparison,
            "target": self.target,
            "actual": self.actual,
            "passed": self.passed,
            **({"error": self.error} if self.error else {}),
        }


def _shown(value: Any) -> Any:
    """The actual value as it goes into a result: bounded, JSON-safe."""
    if value is _MISSING:
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value[:ACTUAL_REPR_LIMIT] if isinstance(value, str) else value
    text = _as_text(value)
    return text if len(text) <= ACTUAL_REPR_LIMIT else text[:ACTUAL_REPR_LIMIT] + "…"


def extract(assertion: Assertion, facts: ResponseFacts) -> tuple[Any, str | None]:
    """The value an assertion reads from the response, or an error explaining why not."""
    match assertion.source:
        case "status_code":
            return facts.status_code, None
        case "response_time":
            return round(facts.response_time_ms, 1), None
        case "text_body":
            return facts.text, None
        case "headers":
            headers = CaseInsensitive(facts.headers)
            if assertion.comparison in ("has_key", "not_has_key"):
                return headers, None
            return headers.lookup(assertion.property or ""), None
        case "tls_certificate":
            if facts.tls_days_until_expiry is None:
                return _MISSING, "no TLS certificate: the request was not made over https"
            return round(facts.tls_days_until_expiry, 2), None
        case "json_body":
            document = facts.json_body()
            if document is _NOT_JSON:
                return _MISSING, "the response body is not JSON"
            path = assertion.property or "$"
            matches = [m.value for m in compile_json_path(path).find(document)]
            if not matches:
                return _MISSING, None
            return (matches[0] if len(matches) == 1 else matches), None
    raise ValueError(f"unknown source {assertion.source!r}")


def evaluate(assertions: Sequence[Assertion], facts: ResponseFacts) -> list[AssertionOutcome]:
    outcomes = []
    for assertion in assertions:
        actual, error = extract(assertion, facts)
        passed = error is None and compare(actual, assertion.comparison, assertion.target)
        outcomes.append(
            AssertionOutcome(
                source=assertion.source,
                property=assertion.property,
                comparison=assertion.comparison,
                target=assertion.target,
                actual=None if isinstance(actual, CaseInsensitive) else _shown(actual),
                passed=passed,
                error=error,
            )
        )
    return outcomes
