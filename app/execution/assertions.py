"""The one assertion engine: every check type compares values through it.

HTTP checks select values per assertion source from the response facts; browser steps
(assert_text, assert_title, assert_url) compare page text with ``compare``, so a
comparison means the same thing wherever a check author writes it.

The meaning follows Checkly's API check assertions (docs: "Assertions", JSON path
primer), so a Checkly user's assertion gives the same verdict here:

- A JSONPath may select several values (``$.items[*]``, ``$..price``, filters,
  slices). Checkly then performs the comparison for every value, joined with AND. A
  negative comparison (not_equals, not_contains, not_has_key) therefore holds when
  *no* value satisfies its positive twin.
- ``.length`` gives the length of an array (or a string), as in the JavaScript engine
  Checkly uses; ``[(@.length-N)]`` picks the N-th element from the end.
- Numbers: only real numeric literals compare as numbers, exactly (decimal, not
  binary floating point); "NaN", "Infinity", "0x10" and "1_000" are text. Two equal
  strings are always equal.
- Regular expressions (``matches`` and JSONPath ``=~`` filters) run on RE2, in time
  linear in the text: a pattern comes from a definition and the text from a target,
  and either could hang a worker with a backtracking engine.
- Whatever the response holds, evaluating an assertion never raises: a value that
  cannot be selected or compared is a failed assertion whose ``error`` says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.definitions import patterns
from app.definitions.jsonpath import as_number, compile_json_path
from app.definitions.models import Assertion

_MISSING = object()
ACTUAL_REPR_LIMIT = 200
# How many of several selected values an outcome shows.
SHOWN_VALUES_LIMIT = 20
ERROR_TEXT_LIMIT = 300

POSITIVE_OF_NEGATIVE = {
    "not_equals": "equals",
    "not_contains": "contains",
    "not_has_key": "has_key",
}
# Comparisons that hold for a value that is not there (no header, no JSONPath match):
# nothing is equal to, contains, or has the target; nothing is not empty or not null.
HOLD_WHEN_MISSING = frozenset({*POSITIVE_OF_NEGATIVE, "is_empty", "is_null"})
COMPARISONS = frozenset(
    {
        *POSITIVE_OF_NEGATIVE,
        *POSITIVE_OF_NEGATIVE.values(),
        "greater_than",
        "less_than",
        "matches",
        "is_empty",
        "not_empty",
        "is_null",
        "not_null",
    }
)


def _as_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_empty(value: Any) -> bool:
    return value is None or value in ("", [], {})


def _equals(actual: Any, target: Any) -> bool:
    if isinstance(actual, str) and isinstance(target, str) and actual == target:
        return True
    actual_number, target_number = as_number(actual), as_number(target)
    if actual_number is not None and target_number is not None:
        return actual_number == target_number
    return _as_text(actual) == _as_text(target)


def _contains(actual: Any, target: Any) -> bool:
    if isinstance(actual, list):
        return any(_equals(item, target) for item in actual)
    return _as_text(target) in _as_text(actual)


def _has_key(value: Any, key: str) -> bool:
    if isinstance(value, CaseInsensitive):
        return value.lookup(key) is not _MISSING
    return isinstance(value, Mapping) and key in value


def _compare_one(actual: Any, comparison: str, target: Any) -> bool:
    match comparison:
        case "equals":
            return _equals(actual, target)
        case "greater_than" | "less_than":
            a, t = as_number(actual), as_number(target)
            if a is None or t is None:
                return False
            return a > t if comparison == "greater_than" else a < t
        case "contains":
            return _contains(actual, target)
        case "matches":
            return patterns.search(str(target), _as_text(actual))
        case "is_empty":
            return _is_empty(actual)
        case "not_empty":
            return not _is_empty(actual)
        case "is_null":
            return actual is None
        case "not_null":
            return actual is not None
        case "has_key":
            return _has_key(actual, str(target))
    raise ValueError(f"unknown comparison {comparison!r}")


def compare_values(values: Sequence[Any], comparison: str, target: Any = None) -> bool:
    """Whether the selected ``values`` satisfy ``comparison`` against ``target``.

    Every value must satisfy it (Checkly's AND over a JSONPath's values), and at least
    one must be there. A negative comparison holds when no value satisfies its positive
    twin; it, is_empty and is_null also hold when nothing was selected.
    """
    if comparison not in COMPARISONS:
        raise ValueError(f"unknown comparison {comparison!r}")
    positive = POSITIVE_OF_NEGATIVE.get(comparison)
    if positive is not None:
        return not any(_compare_one(value, positive, target) for value in values)
    if not values:
        return comparison in HOLD_WHEN_MISSING
    return all(_compare_one(value, comparison, target) for value in values)


def compare(actual: Any, comparison: str, target: Any = None) -> bool:
    """Whether one value ``actual`` satisfies ``comparison`` against ``target``.

    ``matches`` raises ``patterns.PatternError`` for a pattern RE2 cannot compile.
    """
    return compare_values([] if actual is _MISSING else [actual], comparison, target)


class CaseInsensitive(dict[str, Any]):
    """Header names compare without regard to case, as HTTP says."""

    def lookup(self, name: str) -> Any:
        lowered = name.lower()
        for key, value in self.items():
            if key.lower() == lowered:
                return value
        return _MISSING


# ---------------------------------------------------------------- responses
def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


@dataclass
class ResponseFacts:
    """What an HTTP check observed, in the shape the assertion sources read."""

    status_code: int
    headers: Mapping[str, str]
    text: str
    response_time_ms: float
    tls_days_until_expiry: float | None = None
    _json: Any = field(default=_MISSING, repr=False)
    _json_error: str | None = field(default=None, repr=False)

    def json_body(self) -> Any:
        """The parsed body, or ``_NOT_JSON`` (``json_error`` then says why)."""
        if self._json is _MISSING:
            try:
                # Strict JSON, as JSON.parse reads it: NaN and Infinity are not values.
                self._json = json.loads(self.text, parse_constant=_refuse_constant)
            except RecursionError:
                self._json, self._json_error = _NOT_JSON, "nested too deeply"
            except ValueError as exc:
                self._json = _NOT_JSON
                if "is not a JSON value" in str(exc):
                    self._json_error = str(exc)
        return self._json

    @property
    def json_error(self) -> str:
        reason = f" ({self._json_error})" if self._json_error else ""
        return f"the response body is not JSON{reason}"


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


def _bounded(text: str) -> str:
    return text if len(text) <= ACTUAL_REPR_LIMIT else text[:ACTUAL_REPR_LIMIT] + "…"


def _shown(value: Any) -> Any:
    """One value as it goes into a result: bounded, JSON-safe."""
    if isinstance(value, str):
        return value[:ACTUAL_REPR_LIMIT]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _bounded(_as_text(value))


def _shown_values(values: Sequence[Any]) -> Any:
    """The selected values in a result: the value itself when there is one."""
    if not values:
        return None
    if len(values) == 1:
        return _shown(values[0])
    shown = [_shown(value) for value in values[:SHOWN_VALUES_LIMIT]]
    if len(values) > SHOWN_VALUES_LIMIT:
        shown.append(f"… {len(values) - SHOWN_VALUES_LIMIT} more")
    return shown


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "…"


@dataclass(frozen=True)
class Selection:
    """The values an assertion reads from a response, or why it could not read them."""

    values: list[Any]
    error: str | None = None


def _select_json(path: str, facts: ResponseFacts) -> Selection:
    document = facts.json_body()
    if document is _NOT_JSON:
        return Selection([], facts.json_error)
    try:
        compiled = compile_json_path(path)
    except ValueError as exc:
        return Selection([], str(exc))
    try:
        return Selection([match.value for match in compiled.find(document)])
    except Exception as exc:  # noqa: BLE001 - jsonpath-ng raises whatever the data provokes
        return Selection(
            [], f"JSONPath {path!r} could not be evaluated on this response: {_error_text(exc)}"
        )


def select(assertion: Assertion, facts: ResponseFacts) -> Selection:
    """The values ``assertion`` compares: none when missing, several from a JSONPath."""
    match assertion.source:
        case "status_code":
            return Selection([facts.status_code])
        case "response_time":
            return Selection([round(facts.response_time_ms, 1)])
        case "text_body":
            return Selection([facts.text])
        case "headers":
            headers = CaseInsensitive(facts.headers)
            if assertion.comparison in ("has_key", "not_has_key"):
                return Selection([headers])
            value = headers.lookup(assertion.property or "")
            return Selection([] if value is _MISSING else [value])
        case "tls_certificate":
            if facts.tls_days_until_expiry is None:
                return Selection([], "no TLS certificate: the request was not made over https")
            return Selection([round(facts.tls_days_until_expiry, 2)])
        case "json_body":
            return _select_json(assertion.property or "$", facts)
    raise ValueError(f"unknown source {assertion.source!r}")


def _evaluate_one(assertion: Assertion, facts: ResponseFacts) -> AssertionOutcome:
    values: list[Any] = []
    try:
        selection = select(assertion, facts)
        values, error = selection.values, selection.error
        passed = error is None and compare_values(values, assertion.comparison, assertion.target)
    except patterns.PatternError as exc:
        passed, error = False, f"target is {exc}"
    except Exception as exc:  # noqa: BLE001 - a bad value fails its assertion, never the run
        passed, error = False, f"the assertion could not be evaluated: {_error_text(exc)}"
    shown_values = [] if any(isinstance(v, CaseInsensitive) for v in values) else values
    try:
        actual = _shown_values(shown_values)
    except Exception:  # noqa: BLE001 - e.g. a value too deeply nested to print
        actual = None
    return AssertionOutcome(
        source=assertion.source,
        property=assertion.property,
        comparison=assertion.comparison,
        target=assertion.target,
        actual=actual,
        passed=passed,
        error=error,
    )


def judge(assertions: Iterable[Assertion], facts: ResponseFacts) -> list[AssertionOutcome]:
    """One outcome per assertion; never raises, whatever the response holds."""
    return [_evaluate_one(assertion, facts) for assertion in assertions]
