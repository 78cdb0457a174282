"""A browser check's secrets stay with it: headers and credentials go to the check's own
origins only, and a secret typed into the page never shows in a screenshot.

Real headless Chromium; two servers on 127.0.0.1 on different ports are two origins.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.definitions.models import Check
from app.definitions.placeholders import Placeholders
from app.execution.browser.pool import BrowserHost
from app.execution.browser.steps import OwnOriginHeaders, own_origins
from tests.support.browsers import browser_host, run
from tests.support.navigation_pages import NavigationServer
from tests.support.servers import serving

pytestmark = pytest.mark.slow
TOKEN = "tok-0123456789abcdef"
PASSWORD = "pa55-w0rd-xyz"
# Two secrets and two public values, all of one length: a field showing either of a
# pair draws the same number of characters.
FIRST, SECOND = "sesame-1234", "hunter-9876"
SHOWN_A, SHOWN_B = "visible-111", "visible-222"


@pytest.fixture(scope="module")
def own() -> Iterator[NavigationServer]:
    with serving(NavigationServer()) as server:
        yield server


@pytest.fixture(scope="module")
def third() -> Iterator[NavigationServer]:
    with serving(NavigationServer()) as server:
        yield server


@pytest.fixture(scope="module")
def host(
    own: NavigationServer, third: NavigationServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserHost]:
    with browser_host(
        tmp_path_factory.mktemp("secrets"),
        SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{own.port},127.0.0.1:{third.port}",
        SYNMON_VAR_TOKEN=TOKEN,
        SYNMON_VAR_PASSWORD=PASSWORD,
        SYNMON_VAR_FIRST=FIRST,
        SYNMON_VAR_SECOND=SECOND,
        SYNMON_PUBLIC_VAR_SHOWN_A=SHOWN_A,
        SYNMON_PUBLIC_VAR_SHOWN_B=SHOWN_B,
    ) as started:
        yield started


def visit_both_origins(own: NavigationServer, third: NavigationServer) -> list[Any]:
    """Steps that post a form, load the other origin's subresources, then get redirected
    to it."""
    return [
        {"goto": own.url("/form")},
        {"click": "#order"},
        {"wait_for": {"selector": "#landed", "timeout": "10s"}},
        {"goto": own.url(f"/third-party?other={third.port}")},
        {"wait_for": {"selector": "#fetched", "timeout": "10s"}},
        {"goto": own.url(f"/away?to=http://127.0.0.1:{third.port}/landing")},
        {"wait_for": {"selector": "#landed", "timeout": "10s"}},
    ]


@pytest.mark.processes
@pytest.mark.parametrize("where", ["browser", "steps"])
def test_headers_and_credentials_go_to_the_checks_own_origin_only(
    host: BrowserHost, own: NavigationServer, third: NavigationServer, where: str
) -> None:
    own.hits.clear()
    third.hits.clear()
    auth = {"username": "monitor", "password": "{{PASSWORD}}"}
    steps = visit_both_origins(own, third)
    if where == "browser":
        result = run(
            host, steps, browser={"headers": {"X-Api-Token": "{{TOKEN}}"}, "basic_auth": auth}
        )
    else:
        result = run(
            host,
            [
                {"set_header": {"name": "X-Api-Token", "value": "{{TOKEN}}"}},
                {"basic_auth": auth},
                *steps,
            ],
        )
    assert result.status == "passed", result.error
    authorization = "Basic " + base64.b64encode(f"monitor:{PASSWORD}".encode()).decode()
    # The own origin got both: on its pages, the form post, script, fetch and redirect.
    for path in ("/form", "/submit", "/third-party", "/own.js", "/own-fetch", "/away"):
        (seen,) = own.headers_seen(path)
        assert seen.get("x-api-token") == TOKEN, (path, seen)
        assert seen.get("authorization") == authorization, (path, seen)
    # A paused request goes on whole: the form's body arrived.
    assert [h["body"] for h in own.hits if h["method"] == "POST"] == [b"item=tea"]
    # The other origin was reached in every way, and got neither.
    assert {"/pixel.png", "/frame", "/fetched", "/landing"} <= {h["path"] for h in third.hits}
    for seen in third.headers_seen("/"):
        assert "x-api-token" not in seen and "authorization" not in seen, seen
        assert not any(TOKEN in value or PASSWORD in value for value in seen.values()), seen
    assert result.response["url"] == third.url("/landing")


def test_the_own_origins_are_those_the_goto_steps_name() -> None:
    check = Check.model_validate(
        {
            "id": "origins",
            "type": "browser",
            "locations": ["eu-west-1"],
            "browser": {
                "steps": [
                    {"goto": "https://App.example.com/login"},
                    {"goto": "http://example.com:8080/a?b=c"},
                    {"goto": "https://example.com:443/{{PATH}}"},
                    {"goto": "https://{{UNSET}}.example.net/"},
                    {"click": "#go"},
                ]
            },
        }
    )
    placeholders = Placeholders({"PATH": "secret-path"})
    assert own_origins(check, placeholders) == {
        ("https", "app.example.com", 443),
        ("http", "example.com", 8080),
        ("https", "example.com", 443),
    }
    sender = OwnOriginHeaders(None, own_origins(check, placeholders), {"X-Key": "k1"})
    # An own origin gets the check's value (over one the page set itself); another
    # origin keeps the page's own headers but never the check's value.
    assert sender.continued_headers("https://app.example.com/x", {"x-key": "page", "A": "1"}) == {
        "A": "1",
        "X-Key": "k1",
    }
    assert sender.continued_headers("https://app.example.com:8443/", {"A": "1"}) is None
    assert sender.continued_headers("https://elsewhere.example/", {"X-Key": "k1", "A": "1"}) == {
        "A": "1"
    }
    assert sender.continued_headers("http://app.example.com/", {"X-Key": "mine"}) is None


def typing_run(host: BrowserHost, site: NavigationServer, placeholder: str) -> list[bytes]:
    """Type ``placeholder`` into a field, take a screenshot, then fail: both pictures."""
    result = run(
        host,
        [
            {"goto": site.url("/typing?other=plain")},
            {"fill": {"selector": "#field", "value": f"{{{{{placeholder}}}}}"}},
            {"screenshot": "typed"},
            # The field is as it was after the picture: its value, its own colour.
            {
                "evaluate": "document.getElementById('field').value.length === 11"
                " && document.getElementById('field').getAttribute('style') === null"
                " && getComputedStyle(document.getElementById('field')).color"
                " === getComputedStyle(document.getElementById('other')).color"
            },
            {"click": {"selector": "#missing", "timeout": "500ms"}},
        ],
    )
    assert result.status == "failed" and "#missing" in (result.error or ""), result.error
    assert [a["name"] for a in result.artifacts] == ["typed", "failure"]
    return [Path(a["url"].removeprefix("file://")).read_bytes() for a in result.artifacts]


@pytest.mark.processes
def test_a_typed_secret_never_shows_in_a_screenshot(
    host: BrowserHost, own: NavigationServer
) -> None:
    first = typing_run(host, own, "FIRST")
    second = typing_run(host, own, "SECOND")
    # Different secrets of one length: the same picture, explicit and on failure.
    assert first == second
    # Public values are shown: the same page with different ones is another picture.
    shown_a = typing_run(host, own, "SHOWN_A")
    shown_b = typing_run(host, own, "SHOWN_B")
    assert shown_a[0] != shown_b[0] and shown_a[1] != shown_b[1]
    assert shown_a[0] != first[0]


@pytest.mark.processes
def test_console_lines_and_urls_are_redacted_before_they_are_cut(
    host: BrowserHost, own: NavigationServer, third: NavigationServer
) -> None:
    # The secret straddles the 300 characters a result shows of each line and URL: cut
    # first and then redacted, its first half would show.
    pad = 300 - len(TOKEN) // 2
    logging = (
        f"console.error('x'.repeat({pad}) + document.querySelector('#field').value); "
        f"fetch('http://127.0.0.1:{third.port}/missing/' + 'y'.repeat({pad - 40}) "
        "+ document.querySelector('#field').value).catch(() => null); true"
    )
    result = run(
        host,
        [
            {"goto": own.url("/typing")},
            {"fill": {"selector": "#field", "value": "{{TOKEN}}"}},
            {"evaluate": logging},
            {"wait_for": {"selector": "#nothing-here", "timeout": "2s"}},
        ],
    )
    shown = [
        *result.response["console_errors"],
        *(f["url"] for f in result.response["failed_requests"]),
    ]
    assert any("x" * 50 in line for line in shown), shown
    assert any("/missing/" in line for line in shown), shown
    for line in shown:
        assert len(line) <= 300
        assert TOKEN[: len(TOKEN) // 2] not in line, line
