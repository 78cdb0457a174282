"""Random and malformed YAML: the loader accepts it or raises DefinitionError, nothing else."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.checks.loader import DefinitionError, load_text
from tests.conftest import make_settings

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
