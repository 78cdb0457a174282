"""What an assertion means, rule by rule, as Checkly's API check documentation gives it.

Each section proves one rule of the README's assertion table: the JSONPath primer, the
multi-value rule (every selected value, joined with AND), ``.length``, numbers,
missing values, errors (never an exception out of the engine) and regular expressions
(RE2, linear time). The last section runs the rules through the real HTTP check path
against real servers on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.definitions.models import Assertion, Check
from app.execution.assertions import (
    SHOWN_VALUES_LIMIT,
    AssertionOutcome,
    ResponseFacts,
    as_number,
    compare,
    compare_values,
    compile_json_path,
    judge,
)
from app.execution.guard import TargetGuard
from app.execution.http.check import run_http_check
from app.execution.runs import RunRequest, RunResult
from tests.support.assertion_targets import body_target
from tests.support.pipeline import http_check
from tests.support.servers import TargetServer, http_target
from tests.support.settings import make_settings

# The sample document of Checkly's JSON path primer.
STORE: dict[str, Any] = {
    "store": {
        "book": [
            {
                "category": "reference",
                "author": "Nigel Rees",
                "title": "Sayings of the Century",
                "price": 8.95,
            },
            {
                "category": "fiction",
                "author": "Evelyn Waugh",
                "title": "Sword of Honour",
                "price": 12.99,
            },
            {
                "category": "fiction",
                "author": "Herman Melville",
                "title": "Moby Dick",
                "isbn": "0-553-21311-3",
                "price": 8.99,
            },
            {
                "category": "fiction",
                "author": "J. R. R. Tolkien",
                "title": "The Lord of the Rings",
                "isbn": "0-395-19395-8",
                "price": 22.99,
            },
        ],
        "bicycle": {"color": "red", "price": 19.95},
    }
}


def facts_of(document: Any = None, *, text: str | None = None) -> ResponseFacts:
    return ResponseFacts(
        status_code=200,
        headers={"Content-Type": "application/json"},
        text=json.dumps(document) if text is None else text,
        response_time_ms=12.5,
    )


def outcome(
    document: Any, path: str, comparison: str, target: Any = None, *, text: str | None = None
) -> AssertionOutcome:
    assertion = Assertion(
        source="json_body",
        property=path,
        comparison=comparison,
        target=target,
    )
    (result,) = judge([assertion], facts_of(document, text=text))
    return result


def selected(document: Any, path: str) -> list[Any]:
    return [match.value for match in compile_json_path(path).find(document)]


# ---------------------------------------------------------------- JSONPath primer
BOOKS = STORE["store"]["book"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.store.book[*].author", [b["author"] for b in BOOKS]),
        ("$..author", [b["author"] for b in BOOKS]),
        ("$.store..price", [8.95, 12.99, 8.99, 22.99, 19.95]),
        ("$.store.book.length", [4]),
        ("$..book[2].title", ["Moby Dick"]),
        ("$..book[(@.length-1)].title", ["The Lord of the Rings"]),
        ("$..book[-1:].title", ["The Lord of the Rings"]),
        ("$..book[0,1].title", ["Sayings of the Century", "Sword of Honour"]),
        ("$..book[:2].title", ["Sayings of the Century", "Sword of Honour"]),
        ("$..book[?(@.isbn)].title", ["Moby Dick", "The Lord of the Rings"]),
        ("$..book[?(@.price<10)].title", ["Sayings of the Century", "Moby Dick"]),
        ("$..book[?(@.price==8.95)].title", ["Sayings of the Century"]),
        (
            '$..book[?(@.price<30 && @.category=="fiction")].title',
            ["Sword of Honour", "Moby Dick", "The Lord of the Rings"],
        ),
    ],
)
def test_the_examples_of_checklys_json_path_primer(path: str, expected: list[Any]) -> None:
    assert selected(STORE, path) == expected


def test_checklys_array_item_example_path_reads_a_root_array() -> None:
    assert selected([{"key": "a"}, {"key": "b"}], "$.[1].key") == ["b"]


# ---------------------------------------------------------------- multi-value rule
def test_checklys_documented_example_less_than_fails_on_one_value() -> None:
    # Docs: the values [1,5,2] "less than 3" fails, because 5 is not less than 3.
    document = {"values": [1, 5, 2]}
    failed = outcome(document, "$.values[*]", "less_than", 3)
    assert not failed.passed and failed.error is None
    assert failed.actual == [1, 5, 2]
    assert outcome(document, "$.values[*]", "less_than", 6).passed


CUSTOMERS = [
    {"customerId": 1234, "name": "John Doe", "active": True},
    {"customerId": 5678, "name": "Kate Doe", "active": False},
]


def test_checklys_blog_examples_each_name_contains_doe_but_not_each_is_active() -> None:
    assert outcome(CUSTOMERS, "$[*].name", "contains", "Doe").passed
    assert not outcome(CUSTOMERS, "$[*].active", "equals", True).passed
    assert outcome(CUSTOMERS, "$[*].customerId", "greater_than", 1000).passed


@pytest.mark.parametrize(
    ("values", "comparison", "target", "expected"),
    [
        # positive comparisons: every value satisfies it
        (["x", "x"], "equals", "x", True),
        (["x", "y"], "equals", "x", False),
        ([5, 6], "greater_than", 4, True),
        ([5, 3], "greater_than", 4, False),
        ([1, 2], "less_than", 3, True),
        (["Doe J", "Doe K"], "contains", "Doe", True),
        (["Doe J", "Roe K"], "contains", "Doe", False),
        (["ab", "ac"], "matches", "^a", True),
        (["ab", "b"], "matches", "^a", False),
        (["", [], {}, None], "is_empty", None, True),
        (["", "x"], "is_empty", None, False),
        (["a", [1]], "not_empty", None, True),
        (["a", ""], "not_empty", None, False),
        ([None, None], "is_null", None, True),
        ([None, 0], "is_null", None, False),
        ([0, ""], "not_null", None, True),
        ([1, None], "not_null", None, False),
        ([{"id": 1}, {"id": 2}], "has_key", "id", True),
        ([{"id": 1}, {}], "has_key", "id", False),
        # negative comparisons: no value satisfies the positive twin
        (["x", "y"], "not_equals", "z", True),
        (["x", "y"], "not_equals", "x", False),
        (["Doe", "Roe"], "not_contains", "Zed", True),
        (["Doe", "Roe"], "not_contains", "Doe", False),
        ([{"a": 1}, {}], "not_has_key", "id", True),
        ([{"id": 1}, {}], "not_has_key", "id", False),
    ],
)
def test_every_selected_value_is_compared(
    values: list[Any], comparison: str, target: Any, expected: bool
) -> None:
    result = outcome({"v": values}, "$.v[*]", comparison, target)
    assert result.passed is expected, result
    assert compare_values(values, comparison, target) is expected


scalars = st.none() | st.booleans() | st.integers() | st.text(alphabet="ab1 .", max_size=3)
every_comparison = st.sampled_from(
    [
        ("equals", "a"),
        ("not_equals", "a"),
        ("greater_than", 0),
        ("less_than", "1"),
        ("contains", "a"),
        ("not_contains", "a"),
        ("matches", "^a"),
        ("is_empty", None),
        ("not_empty", None),
        ("is_null", None),
        ("not_null", None),
        ("has_key", "a"),
        ("not_has_key", "a"),
    ]
)


@given(
    values=st.lists(scalars | st.dictionaries(st.just("a"), scalars), max_size=5),
    rule=every_comparison,
)
def test_several_values_mean_all_of_them_and_negatives_mean_none(
    values: list[Any], rule: tuple[str, Any]
) -> None:
    comparison, target = rule
    each = [compare(value, comparison, target) for value in values]
    if comparison.startswith("not_") and comparison not in ("not_empty", "not_null"):
        positive = comparison.removeprefix("not_")
        expected = not any(compare(value, positive, target) for value in values)
        assert expected == all(each)  # "no value is" and "every value is not" agree
    elif values:
        expected = all(each)
    else:
        expected = comparison in ("is_empty", "is_null")
    assert compare_values(values, comparison, target) is expected
    assert outcome({"v": values}, "$.v[*]", comparison, target).passed is expected


@pytest.mark.parametrize(
    ("comparison", "target", "expected"),
    [
        ("equals", "x", False),
        ("not_equals", "x", True),
        ("greater_than", 1, False),
        ("less_than", 1, False),
        ("contains", "x", False),
        ("not_contains", "x", True),
        ("matches", ".*", False),
        ("is_empty", None, True),
        ("not_empty", None, False),
        ("is_null", None, True),
        ("not_null", None, False),
        ("has_key", "x", False),
        ("not_has_key", "x", True),
    ],
)
def test_a_selection_of_no_values_is_a_missing_value(
    comparison: str, target: Any, expected: bool
) -> None:
    # An empty array under [*], a filter that keeps nothing, an absent member, an
    # absent header: all the same missing value, which no positive comparison accepts.
    for document, path in [({"v": []}, "$.v[*]"), ({"v": [1, 2]}, "$.v[?(@ > 100)]"), ({}, "$.a")]:
        result = outcome(document, path, comparison, target)
        assert result.passed is expected, result
        assert result.actual is None and result.error is None
    if comparison not in ("has_key", "not_has_key"):  # those read the header names
        header = Assertion(
            source="headers",
            property="x-absent",
            comparison=comparison,
            target=target,
        )
        (result,) = judge([header], facts_of({}))
        assert result.passed is expected, result


def test_a_path_to_one_array_is_one_value_and_contains_tests_membership() -> None:
    document = {"items": [1, 2, 3]}
    assert outcome(document, "$.items", "contains", 2).passed
    assert outcome(document, "$.items", "not_contains", 7).passed
    # Each of the three values would have to contain "2": "1" does not.
    assert not outcome(document, "$.items[*]", "contains", 2).passed


def test_the_shown_actual_of_many_values_is_bounded() -> None:
    result = outcome({"v": list(range(10_000))}, "$.v[*]", "less_than", 0)
    assert not result.passed
    assert len(result.actual) == SHOWN_VALUES_LIMIT + 1
    assert (
        result.actual[:3] == [0, 1, 2]
        and result.actual[-1] == f"… {10_000 - SHOWN_VALUES_LIMIT} more"
    )


# ---------------------------------------------------------------- .length
@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        ({"items": [1, 2, 3]}, "$.items.length", [3]),
        ({"items": []}, "$.items.length", [0]),
        ({"name": "héllo"}, "$.name.length", [5]),  # characters, not bytes
        ([1, 2], "$.length", [2]),
        ({"o": {"length": "long"}}, "$.o.length", ["long"]),  # an object's own member
        ({"o": {"size": 1}}, "$.o.length", []),
        ({"n": 12345}, "$.n.length", []),
        ({"u": [{"t": [1, 2]}, {"t": []}, {"t": "abc"}]}, "$.u[*].t.length", [2, 0, 3]),
        ({"u": [{"t": [1, 2]}, {"t": [3]}]}, "$.u[?(@.t.length > 1)].t", [[1, 2]]),
    ],
)
def test_length_of_an_array_or_a_string(document: Any, path: str, expected: list[Any]) -> None:
    assert selected(document, path) == expected


def test_length_in_assertions() -> None:
    document = {"items": list(range(12)), "tags": [[1], [1, 2]]}
    # Checkly's example: "the returned array has more than 10 items".
    assert outcome(document, "$.items.length", "greater_than", 10).passed
    assert outcome(document, "$.items.length", "equals", "12").passed
    assert not outcome(document, "$.tags[*].length", "greater_than", 1).passed
    assert outcome({"n": 5}, "$.n.length", "is_null").passed  # nothing selected


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    ("actual", "comparison", "target", "expected"),
    [
        ("NaN", "equals", "NaN", True),  # equal strings are equal
        ("NaN", "not_equals", "NaN", False),
        ("Infinity", "equals", "inf", False),  # text, not float('inf')
        ("nan", "greater_than", -1, False),
        ("Infinity", "greater_than", 1, False),
        ("-inf", "less_than", 0, False),
        ("0x10", "equals", 16, False),
        ("1_000", "equals", 1000, False),
        ("١٢", "equals", 12, False),  # Arabic-Indic digits are not a numeric literal
        ("1e3", "equals", 1000, True),
        (" 42 ", "equals", 42, True),
        ("+5", "equals", 5, True),
        ("1.0", "equals", "1", True),
        ("007", "equals", 7, True),
        (200, "equals", "200", True),
        (0.1, "equals", "0.1", True),  # the literal, not its binary approximation
        (0.1 + 0.2, "equals", "0.3", False),
        (12345678901234567891, "equals", "12345678901234567890", False),  # exact
        (12345678901234567891, "greater_than", "12345678901234567890", True),
        ("10", "greater_than", "9", True),  # as numbers, not as text
        ("abc", "greater_than", 1, False),
        (True, "equals", 1, False),
        (True, "equals", "true", True),
        (None, "equals", "null", True),
        (None, "equals", "", False),
        (3.0, "equals", "3", True),
        ({"a": 1}, "equals", '{"a":1}', True),
    ],
)
def test_numbers_are_real_numeric_literals_compared_exactly(
    actual: Any, comparison: str, target: Any, expected: bool
) -> None:
    assert compare(actual, comparison, target) is expected


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (7, Decimal(7)),
        (-0.5, Decimal("-0.5")),
        ("  1.50e2 ", Decimal("150")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        (True, None),
        (None, None),
        ("NaN", None),
        ("inf", None),
        ("Infinity", None),
        ("1_000", None),
        ("0x1f", None),
        ("1e", None),
        ("", None),
        (float("nan"), None),
        (float("inf"), None),
        ([1], None),
    ],
)
def test_what_is_a_number(value: Any, number: Decimal | None) -> None:
    assert as_number(value) == number


@given(st.text())
def test_a_string_equals_itself(text: str) -> None:
    assert compare(text, "equals", text)
    assert not compare(text, "not_equals", text)


@given(
    st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
    st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
)
def test_numbers_order_as_numbers_whether_written_as_numbers_or_text(a: float, b: float) -> None:
    for left in (a, json.dumps(a)):
        for right in (b, json.dumps(b)):
            assert compare(left, "less_than", right) is (a < b)
            assert compare(left, "greater_than", right) is (a > b)
            assert compare(left, "equals", right) is (a == b)


# ---------------------------------------------------------------- errors
def test_a_body_that_is_not_strict_json_fails_with_the_reason() -> None:
    not_json = outcome(None, "$", "not_null", text="<html>")
    assert not not_json.passed and not_json.error == "the response body is not JSON"
    nan = outcome(None, "$.a", "is_null", text='{"a": NaN}')
    assert not nan.passed and nan.error == "the response body is not JSON (NaN is not a JSON value)"
    deep = outcome(None, "$", "not_null", text="[" * 100_000 + "]" * 100_000)
    assert not deep.passed and deep.error == "the response body is not JSON (nested too deeply)"


def test_a_jsonpath_that_fails_on_this_document_is_a_failed_assertion() -> None:
    # Sorting members of mixed types: jsonpath-ng raises TypeError.
    result = outcome({"a": [{"b": 1}, {"b": "x"}]}, "$.a[/b]", "not_empty")
    assert not result.passed
    assert result.error is not None
    assert result.error.startswith("JSONPath '$.a[/b]' could not be evaluated on this response")
    assert "TypeError" in result.error


def test_definitions_from_an_older_release_fail_their_assertion_not_the_run() -> None:
    # A snapshot validated by an older release may hold what this release refuses.
    facts = facts_of({"a": "x"})
    bad_path = Assertion.model_construct(
        source="json_body", property="$.a.`sub(/x/, y)`", comparison="not_empty", target=None
    )
    bad_pattern = Assertion.model_construct(
        source="json_body", property="$.a", comparison="matches", target="(?=x)"
    )
    bad_comparison = Assertion.model_construct(
        source="json_body", property="$.a", comparison=cast(Any, "roughly"), target="x"
    )
    path, pattern, comparison = judge([bad_path, bad_pattern, bad_comparison], facts)
    assert not path.passed and "`sub()` operator is not supported" in (path.error or "")
    assert not pattern.passed
    assert (pattern.error or "").startswith("target is not a valid regular expression (RE2 syntax)")
    assert not comparison.passed and "unknown comparison 'roughly'" in (comparison.error or "")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("$.a[?(@.b =~ '(?=x)')]", "is not a valid regular expression (RE2 syntax)"),
        ("$.a[?(@.b =~ '(x')]", "is not a valid regular expression (RE2 syntax)"),
        ("$.a[?(@.b =~ 5)]", "takes a quoted pattern"),
        ("$.a.`sub(/x+/, y)`", "`sub()` operator is not supported"),
        ("$" + ".a" * 300, "nests more than"),
        ("$..[", "is not a valid JSONPath"),
    ],
)
def test_jsonpaths_refused_at_load_say_why(path: str, reason: str) -> None:
    with pytest.raises(ValueError, match="is not a valid JSONPath") as refused:
        compile_json_path(path)
    assert reason in str(refused.value)
    with pytest.raises(ValidationError, match="JSONPath"):
        Assertion(source="json_body", property=path, comparison="not_empty")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "length", "x", "0"]), children, max_size=4)
    ),
    max_leaves=25,
)
segments = st.sampled_from(
    [
        ".a",
        ".b",
        ".length",
        "[*]",
        "[0]",
        "[-1]",
        "[1:]",
        "[::2]",
        "[::-1]",
        "..a",
        "..*",
        "[?(@.a)]",
        "[?(@.a > 1)]",
        "[?(@ > 'a')]",
        "[?(@.a == null)]",
        "[?(@.a =~ '^x')]",
        "[?(@ =~ '(a+)+$')]",
        "[?(@.length > 1)]",
        "[?(@.a == $.b)]",
        "[?(!@.b)]",
        "[?(@.a || @.b)]",
        "[/a]",
        "[\\a]",
        ".`len`",
        ".`keys`",
        ".`str()`",
        ".`split(a, *, -1)`",
        ".`parent`",
        "[(@.length-1)]",
    ]
)
hostile_paths = st.lists(segments, min_size=0, max_size=5).map(lambda parts: "$" + "".join(parts))
comparisons = st.sampled_from(
    [
        ("equals", "x"),
        ("not_equals", 1),
        ("greater_than", 1),
        ("less_than", "2.5"),
        ("contains", "a"),
        ("not_contains", "a"),
        ("matches", "^(a|b)+$"),
        ("is_empty", None),
        ("not_empty", None),
        ("is_null", None),
        ("not_null", None),
        ("has_key", "a"),
        ("not_has_key", "a"),
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=json_values, path=hostile_paths, comparison=comparisons)
def test_no_document_and_no_path_makes_the_engine_raise(
    document: Any, path: str, comparison: tuple[str, Any]
) -> None:
    name, target = comparison
    assertion = Assertion.model_construct(
        source="json_body", property=path, comparison=cast(Any, name), target=target
    )
    (result,) = judge([assertion], facts_of(document))
    assert isinstance(result.passed, bool)
    if result.error is not None:
        assert not result.passed
    json.dumps(result.as_dict())  # what goes into the result message


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(alphabet='[]{}",:0123456789.eE-+ aNInfinity', max_size=60),
    path=hostile_paths,
)
def test_no_body_text_makes_the_engine_raise(text: str, path: str) -> None:
    assertion = Assertion.model_construct(
        source="json_body", property=path, comparison="not_null", target=None
    )
    (result,) = judge([assertion], facts_of(text=text))
    assert isinstance(result.passed, bool)


@pytest.mark.parametrize(
    "document",
    [
        5,
        "text",
        None,
        True,
        [],
        {},
        {"a": 5},
        {"a": "abc"},
        {"a": [1, "x", None, [2], {"b": "y"}]},
        json.loads("[" * 900 + "1" + "]" * 900),
        {"a": list(range(20_000))},
    ],
    ids=lambda d: type(d).__name__,
)
@pytest.mark.parametrize(
    "path",
    [
        "$.a[?(@.b > 1)]",
        "$[?(@ > 1)]",
        "$.a[?(@ =~ 'x')]",
        "$..*",
        "$..[0]",
        "$.a[1:-1:2]",
        "$.a[/b]",
        "$.a.length",
        "$.*.length",
        "$.a[?(@.length > 1)]",
        "$.a.`split(b, 0, 1)`",
        "$.a[(@.length-1)]",
    ],
)
def test_hostile_shapes_by_hand(document: Any, path: str) -> None:
    assertions = [
        Assertion(source="json_body", property=path, comparison=comparison, target=target)
        for comparison, target in [("not_empty", None), ("contains", "1"), ("not_equals", 0)]
    ]
    for result in judge(assertions, facts_of(document)):
        assert isinstance(result.passed, bool)
        assert result.error is None or not result.passed


# ---------------------------------------------------------------- regular expressions
UPPER = "'^[[:upper:]]+$'"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"$.a[?(@ =~ {UPPER})]", ["ABC"]),
        (f"$.a[?(@ == 'zzz' || @ =~ {UPPER})]", ["ABC"]),
        (f"$.a[?(@ =~ {UPPER} && @ != 'zzz')]", ["ABC"]),
        (f"$.a[?(@ != 'zzz' && (@ == 'q' || @ =~ {UPPER}))]", ["ABC"]),
        (f"$..[?(@ =~ {UPPER})]", ["ABC", "ABC"]),
        (f"$.o[?(@.a[?(@ =~ {UPPER})])].n", [1]),
        (f"$.o[\\n][?(@.a[?(@ =~ {UPPER})])].n", [1]),
    ],
)
def test_matches_and_regex_filters_use_re2_wherever_they_are(
    path: str, expected: list[Any]
) -> None:
    # [[:upper:]] is a POSIX class to RE2; to Python's re it is a set of "[:uper" and
    # a literal "]", which "ABC" does not match. So these select only through RE2.
    assert compare("ABC", "matches", "^[[:upper:]]+$")
    document = {"a": ["ABC", "abc"], "o": [{"a": ["ABC"], "n": 1}, {"a": ["abc"], "n": 2}]}
    assert selected(document, path) == expected


def test_regex_filters_keep_jsonpath_ng_meaning() -> None:
    document = {"a": [{"b": "xyz"}, {"b": "abc"}, {"b": 5}, {"c": "x"}, "x"]}
    assert selected(document, "$.a[?(@.b =~ 'y')].b") == ["xyz"]
    assert selected(document, "$.a[?(@.b =~ 'y' || @.b == 5)].b") == ["xyz", 5]
    assert selected(document, "$.a[?(@.b =~ 'y' && @.b == 'xyz')].b") == ["xyz"]
    assert selected(document, "$..[?(@ =~ '^x$')]") == ["x", "x"]


CATASTROPHIC = textwrap.dedent(
    """
    import json
    from app.execution.assertions import ResponseFacts, judge
    from app.definitions.models import Assertion

    hostile = "a" * 30000 + "b"
    facts = ResponseFacts(200, {}, json.dumps({"s": hostile, "list": [hostile]}), 1.0)
    checks = [
        Assertion.model_construct(
            source="json_body", property="$.s", comparison="matches", target="(a+)+$"
        ),
        Assertion.model_construct(
            source="text_body", property=None, comparison="matches", target="(a+)+$"
        ),
        Assertion.model_construct(
            source="json_body", property="$.list[?(@ =~ '(a+)+$')]", comparison="is_empty",
            target=None,
        ),
        Assertion.model_construct(
            source="json_body", property="$.list[?(@ =~ '(a+)+b$')]", comparison="not_empty",
            target=None,
        ),
    ]
    print(json.dumps([outcome.passed for outcome in judge(checks, facts)]))
    """
)


@pytest.mark.processes
def test_a_catastrophic_backtracking_pattern_returns_promptly() -> None:
    # With a backtracking engine (a+)+$ over 'a'*30000+'b' would not end for ages: the
    # generous timeout only catches that, it measures nothing.
    finished = subprocess.run(
        [sys.executable, "-c", CATASTROPHIC],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    # No match for the two `matches`; the filter keeps nothing; the anchored 'b' matches.
    assert json.loads(finished.stdout) == [False, False, True, True]


# ---------------------------------------------------------------- the real HTTP path
GUARD = TargetGuard(allow_private=True)


def run(url: str, assertions: list[dict[str, Any]]) -> RunResult:
    check = Check.model_validate(http_check("semantics", url, assertions=assertions))
    request = RunRequest(uuid.uuid4(), check.snapshot(), "eu-west-1", datetime.now(UTC))
    return run_http_check(check, request, make_settings(), GUARD)


def json_assertion(path: str, comparison: str, target: Any = None) -> dict[str, Any]:
    return {"source": "json_body", "property": path, "comparison": comparison, "target": target}


@pytest.fixture(scope="module")
def target() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


def test_multi_value_and_length_through_an_http_check(target: TargetServer) -> None:
    # /json answers {"status": "ok", "items": [1, 2, 3], ...}
    passing = run(
        target.url("/json"),
        [
            json_assertion("$.items[*]", "less_than", 4),
            json_assertion("$.items[*]", "not_equals", 7),
            json_assertion("$.items.length", "equals", 3),
            json_assertion("$.status.length", "equals", 2),
        ],
    )
    assert passing.status == "passed", passing.error
    assert [a["actual"] for a in passing.assertions] == [[1, 2, 3], [1, 2, 3], 3, 2]

    failing = run(
        target.url("/json"),
        [
            json_assertion("$.items[*]", "less_than", 3),
            json_assertion("$.items[*]", "not_equals", 2),
            json_assertion("$.items.length", "greater_than", 3),
        ],
    )
    assert failing.status == "failed"
    assert [a["passed"] for a in failing.assertions] == [False, False, False]
    assert failing.error == (
        "assertion failed: json_body $.items[*] less_than 3 (actual: [1, 2, 3]), and 2 more"
    )


def test_hostile_bodies_through_an_http_check_fail_the_check_with_a_reason() -> None:
    bodies = {
        "/customers": json.dumps(CUSTOMERS).encode(),
        "/mixed": json.dumps({"a": [{"b": 1}, {"b": "x"}]}).encode(),
        "/deep": b"[" * 100_000 + b"]" * 100_000,
        "/nan": b'{"a": NaN}',
    }
    with body_target(bodies) as server:
        customers = run(
            server.url("/customers"),
            [
                json_assertion("$[*].name", "contains", "Doe"),
                json_assertion("$.length", "equals", 2),
                json_assertion(
                    "$[?(@.name =~ '^[[:upper:]][a-z]+ Doe$')].customerId", "greater_than", 0
                ),
            ],
        )
        assert customers.status == "passed", customers.error
        inactive = run(server.url("/customers"), [json_assertion("$[*].active", "equals", True)])
        assert inactive.status == "failed"
        assert inactive.error == (
            "assertion failed: json_body $[*].active equals True (actual: [True, False])"
        )

        mixed = run(server.url("/mixed"), [json_assertion("$.a[/b]", "not_empty")])
        assert mixed.status == "failed"
        assert "could not be evaluated on this response: TypeError" in (mixed.error or "")

        deep = run(server.url("/deep"), [json_assertion("$", "not_null")])
        assert deep.status == "failed"
        assert deep.error == (
            "assertion failed: json_body $ not_null: the response body is not JSON"
            " (nested too deeply)"
        )

        nan = run(server.url("/nan"), [json_assertion("$.a", "is_null")])
        assert nan.status == "failed"
        assert "NaN is not a JSON value" in (nan.error or "")


@pytest.mark.parametrize(
    "huge", ["1e9999999999999999999", "-1E+99999999999999999999", "9e-99999999999999999999"]
)
def test_a_number_beyond_decimal_is_text_and_never_raises(huge: str) -> None:
    from app.execution.assertions import as_number, compare

    assert as_number(huge) is None
    assert compare(huge, "not_equals", "abc") is True
    assert compare(huge, "equals", huge) is True
    assert compare(huge, "greater_than", 5) is False
