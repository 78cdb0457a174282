"""Random and malformed YAML: the loader accepts it or raises DefinitionError, nothing else."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.definitions.loader import MAX_SNAPSHOT_BYTES, DefinitionError, load_text, stored_size
from app.definitions.models import MAX_NAME_CHARS, control_character
from config.settings import ConfigError
from tests.support.settings import make_settings

SETTINGS = make_settings()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "10s",
            "5m",
            "500ms",
            "1h",
            "24h",
            "0s",
            "http",
            "browser",
            "GET",
            "equals",
            "status_code",
            "json_body",
            "$.a",
            "https://x.example",
            "{{X}}",
            "{{",
            "eu-west-1",
        ]
    ),
)
keys = st.one_of(
    st.sampled_from(
        [
            "id",
            "type",
            "frequency",
            "locations",
            "request",
            "url",
            "method",
            "timeout",
            "assertions",
            "source",
            "comparison",
            "target",
            "property",
            "browser",
            "steps",
            "goto",
            "click",
            "retry",
            "alert",
            "channels",
            "checks",
            "headers",
            "body",
            "strategy",
            "max_retries",
            "run_mode",
            "to",
            "wait_for",
            "selector",
        ]
    ),
    st.text(max_size=8),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=40,
)


def _load(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml", SETTINGS)
    except DefinitionError as exc:
        assert exc.problems and all(p.file == "fuzz.yaml" for p in exc.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_structures(document: object) -> None:
    _load(yaml.safe_dump({"checks": [document]} if isinstance(document, dict) else document))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    _load(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100).map(lambda b: b.decode("latin-1")), st.integers(0, 400))
def test_a_valid_document_cut_and_corrupted(noise: str, cut: int) -> None:
    valid = yaml.safe_dump(
        {
            "checks": [
                {
                    "id": "a",
                    "type": "http",
                    "locations": ["eu-west-1"],
                    "request": {"url": "https://x.example", "headers": {"A": "b"}},
                    "assertions": [
                        {
                            "source": "json_body",
                            "property": "$.a",
                            "comparison": "equals",
                            "target": 1,
                        }
                    ],
                }
            ]
        }
    )
    _load(valid[:cut] + noise + valid[cut:])


hostile_text = st.text(
    st.characters(codec="utf-8", categories=["Cc", "Zl", "Zp", "L", "N", "P", "S"]), max_size=30
) | st.sampled_from(["\x00", "a\nb", "\u2028", "\x85", "é" * 201, "api\n", "x" * 41])
hostile_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), hostile_text),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3)
    ),
    max_leaves=12,
)


FIELDS = ("name", "tag", "header", "body", "target", "location")


@pytest.mark.processes
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(FIELDS),
    value=st.one_of(hostile_text, hostile_values, st.floats(), st.integers()),
)
def test_what_the_loader_accepts_the_database_can_store(field: str, value: Any) -> None:
    """A hostile value in one of the fields that reach columns or the snapshot: whatever
    the loader accepts has no NUL, no lone surrogate, no NaN or infinity, no control
    character where a column or a header takes it, and fits its columns."""
    values: dict[str, Any] = {
        "name": "API",
        "tag": "prod",
        "header": "v",
        "body": None,
        "target": 200,
        "location": "eu-west-1",
        field: value,
    }
    check = {
        "id": "api",
        "type": "http",
        "name": values["name"],
        "tags": [values["tag"]],
        "locations": [values["location"]],
        "request": {
            "url": "https://x.example/",
            "headers": {"X-A": values["header"]},
            "body": values["body"],
        },
        "assertions": [
            {"source": "status_code", "comparison": "equals", "target": values["target"]}
        ],
    }
    location = values["location"]
    installation = (
        make_settings(SYNMON_LOCATIONS=f"{location},us-east-1")
        if isinstance(location, str) and _location_ok(location)
        else SETTINGS
    )
    try:
        (parsed,) = load_text(yaml.safe_dump({"checks": [check]}), "fuzz.yaml", installation).checks
    except DefinitionError as exc:
        assert all(p.file == "fuzz.yaml" for p in exc.problems)
        return
    snapshot = parsed.snapshot()
    json.dumps(snapshot, allow_nan=False)
    for leaf in (*leaves(snapshot), *leaves(parsed.model_dump())):
        if isinstance(leaf, str):
            assert "\x00" not in leaf
            leaf.encode("utf-8")  # no lone surrogate
        elif isinstance(leaf, float):
            assert math.isfinite(leaf)
    assert stored_size(snapshot) <= MAX_SNAPSHOT_BYTES
    name = parsed.name or parsed.id  # what the name column gets
    assert len(name) <= MAX_NAME_CHARS
    for one_line in (name, *parsed.tags, *parsed.locations, values["header"]):
        assert control_character(one_line) is None, one_line
    assert all(len(location) <= 40 for location in parsed.locations)


def leaves(value: object) -> Iterator[object]:
    """Every key and scalar of a document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def _location_ok(location: str) -> bool:
    try:
        make_settings(SYNMON_LOCATIONS=f"{location},us-east-1")
    except ConfigError:
        return False
    return True
