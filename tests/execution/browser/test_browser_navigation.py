"""Browser steps that wait or assert keep working while the page navigates under them.

Real headless Chromium against pages served on 127.0.0.1 that navigate on their own:
a script that sets location.href a moment after a click, a meta refresh, a chain of
client-side redirects, and a form submit. The step after the one that starts the
navigation is never told to wait for it: like Puppeteer's waitForSelector, it goes on
in the new document until its own timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.execution.browser.pool import BrowserHost
from tests.support.browsers import browser_host, run, steps_passed
from tests.support.navigation_pages import NavigationServer
from tests.support.servers import serving

pytestmark = [pytest.mark.slow, pytest.mark.processes]

# What the landing page is checked with, right after the step that starts the move.
ON_LANDING: list[Any] = [
    {"wait_for": {"selector": "#landed", "timeout": "10s"}},
    {"assert_text": {"selector": "#landed", "equals": "Welcome aboard", "timeout": "10s"}},
    {"assert_url": {"contains": "/landing?via="}},
    {"assert_title": {"equals": "Landed - Acme"}},
    {"wait_for": {"text": "Welcome aboard", "timeout": "10s"}},
    {"assert_visible": "#landed"},
    {"evaluate": "document.getElementById('where').textContent === 'landing'"},
]
# Each of these may be the first step after the one that starts the move. (evaluate
# runs its expression once, in whatever document is there: it is no waiting step.)
FIRST = [step for step in ON_LANDING if "evaluate" not in step]


@pytest.fixture(scope="module")
def site() -> Iterator[NavigationServer]:
    with serving(NavigationServer()) as server:
        yield server


@pytest.fixture(scope="module")
def host(site: NavigationServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserHost]:
    with browser_host(
        tmp_path_factory.mktemp("navigation"), SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{site.port}"
    ) as started:
        yield started


def test_a_click_that_navigates_a_moment_later(host: BrowserHost, site: NavigationServer) -> None:
    for first in FIRST:
        result = run(host, [{"goto": site.url("/delayed")}, {"click": "#go"}, first, *ON_LANDING])
        assert result.status == "passed", (first, result.error)
        assert steps_passed(result) == [True] * (3 + len(ON_LANDING))
        assert result.response["url"] == site.url("/landing?via=script")


def test_a_meta_refresh(host: BrowserHost, site: NavigationServer) -> None:
    for first in FIRST:
        result = run(host, [{"goto": site.url("/meta-refresh")}, first, *ON_LANDING])
        assert result.status == "passed", (first, result.error)
        assert result.response["url"] == site.url("/landing?via=meta")


def test_a_chain_of_client_side_redirects(host: BrowserHost, site: NavigationServer) -> None:
    for first in FIRST:
        result = run(host, [{"goto": site.url("/chain?left=4")}, first, *ON_LANDING])
        assert result.status == "passed", (first, result.error)
        assert result.response["url"] == site.url("/landing?via=chain")


def test_a_form_submit(host: BrowserHost, site: NavigationServer) -> None:
    for first in FIRST:
        result = run(host, [{"goto": site.url("/form")}, {"click": "#order"}, first, *ON_LANDING])
        assert result.status == "passed", (first, result.error)
        assert result.response["url"] == site.url("/landing?via=form")
    assert any(hit["method"] == "POST" and hit["body"] == b"item=tea" for hit in site.hits)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            {"wait_for": {"selector": "#never", "timeout": "2s"}},
            "step 3 (wait_for '#never'): no visible element matches '#never' after 2s",
        ),
        (
            {"assert_text": {"selector": "#landed", "equals": "Goodbye", "timeout": "2s"}},
            "step 3 (assert_text '#landed'): text of '#landed' equals 'Goodbye' failed after 2s"
            " (actual: 'Welcome aboard')",
        ),
        (
            {"assert_url": {"contains": "/elsewhere"}},
            "step 3 (assert_url '/elsewhere'): URL contains '/elsewhere' failed after 5s (actual: ",
        ),
        (
            {"evaluate": {"expression": "document.title === 'Nope'", "timeout": "2s"}},
            "step 3 (evaluate \"document.title === 'Nope'\"): expression returned False,"
            " not a truthy value",
        ),
    ],
)
def test_a_step_that_never_comes_true_fails_at_its_own_timeout(
    host: BrowserHost, site: NavigationServer, step: dict[str, Any], message: str
) -> None:
    result = run(host, [{"goto": site.url("/chain?left=3")}, {"assert_visible": "p"}, step])
    assert result.status == "failed" and result.error_kind == "assertion", result.error
    assert (result.error or "").startswith(message), result.error
    assert steps_passed(result) == [True, True, False]
    # A waiting step waited through the redirects in the page, up to its own timeout.
    if "evaluate" not in step:
        assert result.assertions[2]["duration_ms"] >= 2000
    if message.endswith("(actual: "):
        assert "/landing?via=chain" in (result.error or "")
    assert any(hit["path"] == "/landing?via=chain" for hit in site.hits)
    (shot,) = result.artifacts
    assert shot["name"] == "failure"
    assert Path(shot["url"].removeprefix("file://")).read_bytes()[:4] == b"\x89PNG"
