"""Check definitions: the YAML format, every validation rule, and the message of each error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.definitions.loader import DefinitionError, load_definitions, load_text
from tests.support.checks import http_check
from tests.support.processes import ROOT
from tests.support.settings import make_settings

DESIGN_EXAMPLE = (ROOT / "examples" / "design-example.yaml").read_text()


def problems_of(
    document: dict[str, object], settings_env: dict[str, str] | None = None
) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_text(yaml.safe_dump(document), "checks.yaml", make_settings(**(settings_env or {})))
    return [str(problem) for problem in caught.value.problems]


def test_the_design_example_is_valid() -> None:
    definitions = load_text(DESIGN_EXAMPLE, "design.yaml", make_settings())
    assert [c.id for c in definitions.checks] == ["api-health", "login-flow"]
    api = definitions.checks[0]
    assert api.frequency == 60 and api.request is not None and api.request.timeout == 10
    assert api.retry.strategy == "exponential" and api.retry.base_backoff == 5
    assert api.degraded_response_time == 2 and api.max_response_time == 5
    assert len(api.assertions) == 6
    browser = definitions.checks[1]
    assert browser.browser is not None
    assert [s.action for s in browser.browser.steps][:3] == ["goto", "fill", "click"]
    assert browser.browser.steps[2].args == {"selector": "button[type=submit]"}


def test_locations_default_to_the_installation() -> None:
    check = http_check()
    del check["locations"]
    definitions = load_text(yaml.safe_dump({"checks": [check]}), "c.yaml", make_settings())
    assert definitions.checks[0].locations == ["eu-west-1", "us-east-1"]


@pytest.mark.parametrize(
    ("check", "field", "message"),
    [
        (http_check(colour="red"), "colour", "unknown field"),
        (
            http_check(request={"url": "https://x.example", "tiemout": "5s"}),
            "request.tiemout",
            "unknown field",
        ),
        (http_check(frequency="5s"), "frequency", "between 10s and 24h"),
        (http_check(frequency="25h"), "frequency", "24h or less"),
        (http_check(frequency="soon"), "frequency", "not a duration"),
        (http_check(frequency="10 minutes"), "frequency", "not a duration"),
        (
            http_check(request={"url": "https://x.example", "timeout": "1m"}),
            "request.timeout",
            "at most 30s",
        ),
        (http_check(request={"url": "ftp://x.example"}), "request.url", "http:// or https://"),
        (http_check(request={"url": "https://x.example/{{ bad"}), "request.url", "placeholder"),
        (
            http_check(request={"url": "https://x", "method": "FETCH"}),
            "request.method",
            "Input should be",
        ),
        (
            http_check(assertions=[{"source": "body", "comparison": "equals", "target": 1}]),
            "assertions[0].source",
            "Input should be",
        ),
        (
            http_check(
                assertions=[{"source": "status_code", "comparison": "roughly", "target": 1}]
            ),
            "assertions[0].comparison",
            "Input should be",
        ),
        (
            http_check(assertions=[{"source": "status_code", "comparison": "equals"}]),
            "assertions[0]",
            "needs a target",
        ),
        (
            http_check(
                assertions=[{"source": "status_code", "comparison": "is_empty", "target": 1}]
            ),
            "assertions[0]",
            "takes no target",
        ),
        (
            http_check(
                assertions=[{"source": "text_body", "comparison": "matches", "target": "("}]
            ),
            "assertions[0]",
            "regular expression",
        ),
        (
            http_check(
                assertions=[
                    {"source": "json_body", "property": "$..[", "comparison": "equals", "target": 1}
                ]
            ),
            "assertions[0]",
            "JSONPath",
        ),
        (
            http_check(assertions=[{"source": "headers", "comparison": "equals", "target": "x"}]),
            "assertions[0]",
            "header name",
        ),
        (
            http_check(
                assertions=[{"source": "status_code", "comparison": "greater_than", "target": "ok"}]
            ),
            "assertions[0]",
            "numeric target",
        ),
        (
            http_check(
                assertions=[
                    {
                        "source": "tls_certificate",
                        "property": "issuer",
                        "comparison": "equals",
                        "target": 1,
                    }
                ]
            ),
            "assertions[0]",
            "days_until_expiry",
        ),
        (
            http_check(
                assertions=[{"source": "status_code", "comparison": "has_key", "target": "a"}]
            ),
            "assertions[0]",
            "json_body or headers",
        ),
        (http_check(degraded_response_time="5s", max_response_time="2s"), None, "must not exceed"),
        (http_check(locations=["mars-1"]), "locations[0]", "unknown location 'mars-1'"),
        (http_check(locations=["eu-west-1", "eu-west-1"]), "locations", "twice"),
        (http_check(id="Not A Slug"), "id", "lower-case"),
        (http_check(type="ftp"), "type", "Input should be"),
        (http_check(request=None), None, "needs a request"),
        (http_check(retry={"strategy": "random"}), "retry.strategy", "Input should be"),
        (http_check(retry={"max_retries": 50}), "retry.max_retries", "less than or equal to 10"),
        (http_check(retry={"base_backoff": "20m"}), "retry.base_backoff", "15m"),
        (
            http_check(alert={"after_failures": 0}),
            "alert.after_failures",
            "greater than or equal to 1",
        ),
        ({"id": "b", "type": "browser", "locations": ["eu-west-1"]}, None, "browser section"),
        (
            {
                "id": "b",
                "type": "browser",
                "locations": ["eu-west-1"],
                "browser": {"steps": [{"teleport": "x"}]},
            },
            "browser.steps[0]",
            "unknown step 'teleport'",
        ),
        (
            {
                "id": "b",
                "type": "browser",
                "locations": ["eu-west-1"],
                "browser": {"steps": [{"click": "a", "fill": "b"}]},
            },
            "browser.steps[0]",
            "one action",
        ),
        (
            {
                "id": "b",
                "type": "browser",
                "locations": ["eu-west-1"],
                "browser": {"steps": [{"assert_text": {"selector": "h1"}}]},
            },
            "browser.steps[0]",
            "exactly one of",
        ),
        (
            {
                "id": "b",
                "type": "browser",
                "locations": ["eu-west-1"],
                "browser": {"steps": [{"wait_for": {"selector": "a", "text": "b"}}]},
            },
            "browser.steps[0]",
            "exactly one of",
        ),
        (
            {
                "id": "b",
                "type": "browser",
                "locations": ["eu-west-1"],
                "browser": {"timeout": "5m", "steps": [{"goto": "https://x.example"}]},
            },
            "browser.timeout",
            "at most 240s",
        ),
        (
            {
                "id": "b",
                "type": "browser",
                "locations": ["eu-west-1"],
                "browser": {"steps": [{"goto": "javascript:alert(1)"}]},
            },
            "browser.steps[0].url",
            "http:// or https://",
        ),
    ],
)
def test_each_rule_names_file_check_and_field(
    check: dict[str, object], field: str | None, message: str
) -> None:
    problems = problems_of({"checks": [check]})
    ident = check.get("id")
    expected_prefix = f"checks.yaml: check {ident!r}: " + (f"{field}: " if field else "")
    assert any(p.startswith(expected_prefix) and message in p for p in problems), problems


def test_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"checks": [http_check()]}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"checks": [http_check()]}))
    with pytest.raises(DefinitionError) as caught:
        load_definitions(tmp_path, make_settings())
    (problem,) = caught.value.problems
    assert problem.file.endswith("b.yaml") and problem.field == "id"
    assert "duplicate id" in problem.message and "a.yaml" in problem.message


def test_a_channel_referenced_but_not_defined() -> None:
    problems = problems_of({"checks": [http_check(alert={"channels": ["pager"]})]})
    assert problems == [
        "checks.yaml: check 'api': alert.channels[0]: channel 'pager' is not defined"
    ]


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"id": "w", "type": "webhook"}, "needs a url"),
        ({"id": "w", "type": "email", "to": ["not-an-address"]}, "not an email address"),
        ({"id": "w", "type": "email"}, "needs 'to'"),
        ({"id": "w", "type": "pager", "url": "https://x.example"}, "Input should be"),
        ({"id": "w", "type": "webhook", "url": "https://x.example", "secret": 1}, "unknown field"),
    ],
)
def test_channel_rules(channel: dict[str, object], message: str) -> None:
    problems = problems_of({"channels": [channel]})
    assert any(p.startswith("checks.yaml: channel 'w'") and message in p for p in problems), (
        problems
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checks: [", "not valid YAML: line"),
        ("- just\n- a list\n", "expected a mapping"),
        ("checks: {id: a}\n", "expected a list"),
        ("checks:\n  - 42\n", "expected a mapping"),
        ("monitors: []\n", "unknown top-level field"),
    ],
)
def test_malformed_documents(text: str, message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_text(text, "bad.yaml")
    assert any(message in str(p) and str(p).startswith("bad.yaml") for p in caught.value.problems)


def test_an_installation_may_allow_shorter_frequencies() -> None:
    document = yaml.safe_dump({"checks": [http_check(frequency="2s")]})
    (check,) = load_text(document, "c.yaml", make_settings(SYNMON_MIN_FREQUENCY="2")).checks
    assert check.frequency == 2
    problems = problems_of({"checks": [http_check(frequency="1s")]}, {"SYNMON_MIN_FREQUENCY": "2"})
    assert problems == ["checks.yaml: check 'api': frequency: must be between 2s and 24h"]


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of({"checks": [http_check(frequency="1s"), http_check(id="b", colour="x")]})
    assert len(problems) == 2


def test_browser_step_shorthands() -> None:
    document = {
        "checks": [
            {
                "id": "b",
                "type": "browser",
                "locations": ["eu-west-1"],
                "browser": {
                    "steps": [
                        {"goto": "https://app.example.com"},
                        {"press": "Enter"},
                        {"select": {"selector": "#c", "value": "nl"}},
                        {"assert_title": {"matches": "^Dash"}},
                        {"wait_for": {"navigation": True}},
                        {"screenshot": "home"},
                        {"set_header": {"name": "X-Test", "value": "{{TOKEN}}"}},
                    ]
                },
            }
        ]
    }
    (check,) = load_text(yaml.safe_dump(document), "c.yaml", make_settings()).checks
    assert check.browser is not None
    args = [s.args for s in check.browser.steps]
    assert args[1] == {"key": "Enter"}
    assert args[2]["values"] == ["nl"]
    assert args[3] == {"matches": "^Dash"}
    assert args[5] == {"name": "home", "full_page": False}


@pytest.mark.parametrize(
    "target", ["nan", "inf", "Infinity", "1_000", "0x10", float("nan"), "1e9999999999999999999"]
)
def test_an_order_target_the_engine_cannot_compare_is_refused(target: object) -> None:
    assertion = {"source": "response_time", "comparison": "less_than", "target": target}
    (problem,) = problems_of({"checks": [http_check(assertions=[assertion])]})
    assert "assertions[0]" in problem and "numeric target" in problem


def test_the_quorum_cannot_exceed_the_checks_locations() -> None:
    alert = {"after_failures": 1, "min_failing_locations": 2}
    (problem,) = problems_of({"checks": [http_check(alert=alert)]})
    assert "check 'api'" in problem and "min_failing_locations (2)" in problem
    checks = load_text(
        yaml.safe_dump({"checks": [http_check(alert=alert, locations=["eu-west-1", "us-east-1"])]}),
        "c.yaml",
        make_settings(SYNMON_LOCATIONS="eu-west-1,us-east-1"),
    ).checks
    assert checks[0].alert.min_failing_locations == 2
    # At its default it stays out of the snapshot, which the release before reads.
    assert (
        "min_failing_locations"
        not in load_text(yaml.safe_dump({"checks": [http_check()]}), "c.yaml", make_settings())
        .checks[0]
        .snapshot()["alert"]
    )


def test_several_paths_are_validated_together(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "c.yaml").write_text(yaml.safe_dump({"checks": [http_check()]}))
    with pytest.raises(DefinitionError) as caught:
        load_definitions([tmp_path / "a", tmp_path / "b"], make_settings())
    (problem,) = [str(p) for p in caught.value.problems]
    assert "duplicate id" in problem and str(tmp_path / "a" / "c.yaml") in problem
    (tmp_path / "b" / "c.yaml").write_text(yaml.safe_dump({"checks": [http_check(id="other")]}))
    both = load_definitions([tmp_path / "a", str(tmp_path / "b")], make_settings())
    assert sorted(c.id for c in both.checks) == ["api", "other"]
