"""Browser checks with real headless Chromium against pages served on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from app.execution.browser.pool import BrowserHost
from tests.support.browsers import browser_host, own_chromium_processes, run, steps_passed
from tests.support.pages import PageServer
from tests.support.processes import free_port
from tests.support.servers import TargetServer, serving
from tests.support.settings import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.processes]
PASSWORD = "correct-horse"


@pytest.fixture(scope="module")
def site() -> Iterator[PageServer]:
    with serving(PageServer(PASSWORD)) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def other() -> Iterator[TargetServer]:
    with serving(TargetServer()) as server:
        yield server


@pytest.fixture(scope="module")
def host(site: PageServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserHost]:
    with browser_host(
        tmp_path_factory.mktemp("browser"),
        SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{site.port}",
        SYNMON_VAR_PASSWORD=PASSWORD,
        SYNMON_PUBLIC_VAR_USER="ada@example.com",
    ) as started:
        yield started


def test_a_login_flow_with_a_form_and_navigation(host: BrowserHost, site: PageServer) -> None:
    result = run(
        host,
        [
            {"goto": site.url("/login")},
            {"fill": {"selector": "#email", "value": "{{USER}}"}},
            {"fill": {"selector": "#password", "value": "{{PASSWORD}}"}},
            {"select": {"selector": "#lang", "value": "nl"}},
            {"click": "button[type=submit]"},
            {"wait_for": {"navigation": True}},
            {"assert_text": {"selector": "h1", "contains": "Welcome, ada"}},
            {"assert_text": {"selector": "#lang", "equals": "nl"}},
            {"assert_title": {"contains": "Dashboard"}},
            {"assert_url": {"matches": "/dashboard\\?user=ada"}},
            {"assert_hidden": "#menu"},
            {"hover": "#toggle"},
            {"press": {"key": "Enter", "selector": "#toggle"}},
            {"assert_visible": "#menu"},
            {"evaluate": "document.querySelectorAll('.item').length === 2"},
            {"screenshot": "dashboard"},
        ],
    )
    assert result.status == "passed", result.error
    assert steps_passed(result) == [True] * 16
    assert all(o["duration_ms"] >= 0 for o in result.assertions)
    assert result.response["title"] == "Dashboard - Acme"
    (shot,) = result.artifacts
    assert shot["name"] == "dashboard" and shot["bytes"] > 1000
    assert Path(shot["url"].removeprefix("file://")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"ttfb_ms", "dom_content_loaded_ms", "load_ms"} <= set(result.timings)
    # The typed password reached the site, and no part of the result holds it.
    assert site.hits[-1]["form"]["password"] == PASSWORD
    assert PASSWORD not in json.dumps(result.__dict__, default=str)
    assert "ada@example.com" in json.dumps(site.hits[-1])


def test_a_single_page_app_route_change(host: BrowserHost, site: PageServer) -> None:
    result = run(
        host,
        [
            {"goto": site.url("/spa")},
            {"click": "#to-settings"},
            {"assert_url": {"contains": "/spa/settings"}},
            {"wait_for": {"selector": "#settings"}},
            {"assert_title": {"equals": "SPA settings"}},
            {"wait_for": {"text": "Settings view"}},
        ],
    )
    assert result.status == "passed", result.error


def test_a_slow_element_is_waited_for(host: BrowserHost, site: PageServer) -> None:
    result = run(
        host,
        [
            {"goto": site.url("/slow-element")},
            {"assert_text": {"selector": "#late", "equals": "Ready now", "timeout": "5s"}},
        ],
    )
    assert result.status == "passed", result.error
    assert result.assertions[1]["duration_ms"] > 1000


def test_a_missing_element_fails_at_its_step_with_a_screenshot(
    host: BrowserHost, site: PageServer
) -> None:
    result = run(
        host,
        [
            {"goto": site.url("/login")},
            {"click": {"selector": "#does-not-exist", "timeout": "1s"}},
            {"fill": {"selector": "#email", "value": "x"}},
        ],
    )
    assert result.status == "failed" and result.error_kind == "assertion"
    assert (
        result.error
        == "step 2 (click '#does-not-exist'): no visible element matches '#does-not-exist' after 1s"
    )
    assert steps_passed(result) == [True, False, None]
    assert result.assertions[2]["skipped"] is True
    assert result.response["failed_step"] == 2
    (shot,) = result.artifacts
    assert shot["name"] == "failure" and shot["bytes"] > 1000


def test_javascript_errors_are_recorded(host: BrowserHost, site: PageServer) -> None:
    result = run(host, [{"goto": site.url("/js-error")}, {"assert_visible": "#ok"}])
    assert result.status == "passed", result.error
    errors = result.response["console_errors"]
    assert any("console says no" in e for e in errors)
    assert any("boom from page" in e for e in errors)


def test_failing_subresources_are_recorded(host: BrowserHost, site: PageServer) -> None:
    result = run(
        host,
        [
            {"goto": site.url(f"/broken-resources?closed={free_port()}")},
            {"assert_visible": "#ok"},
            {"wait_for": {"selector": "#refused"}},  # the page's own fetch has failed by now
        ],
    )
    assert result.status == "passed", result.error
    failed = result.response["failed_requests"]
    assert any(f["url"].endswith("/missing.png") and f.get("status") == 404 for f in failed), failed
    assert any("127.0.0.1:" in f["url"] and f.get("blocked") for f in failed), failed


def test_a_page_that_never_finishes_loading_times_out_cleanly(
    host: BrowserHost, site: PageServer
) -> None:
    started = time.monotonic()
    result = run(
        host,
        [{"goto": {"url": site.url("/never-loads"), "timeout": "2s"}}, {"assert_visible": "p"}],
    )
    assert result.status == "failed" and result.error_kind == "timeout"
    assert "did not finish loading (load) within 2s" in (result.error or "")
    assert time.monotonic() - started < 15
    # The whole check's timeout also holds when a step has none of its own.
    started = time.monotonic()
    result = run(host, [{"goto": site.url("/never-loads")}], browser={"timeout": "3s"})
    assert result.status == "failed" and result.error_kind == "timeout"
    assert time.monotonic() - started < 15
    assert run(host, [{"goto": site.url("/trivial")}]).status == "passed"


def test_basic_auth_as_a_header(host: BrowserHost, site: PageServer) -> None:
    ok = run(
        host,
        [
            {"goto": site.url("/protected")},
            {"assert_text": {"selector": "h1", "equals": "Secret area"}},
        ],
        browser={"basic_auth": {"username": "admin", "password": "{{PASSWORD}}"}},
    )
    assert ok.status == "passed", ok.error
    denied = run(host, [{"goto": site.url("/protected")}])
    assert denied.status == "failed" and "ERR_INVALID_AUTH_CREDENTIALS" in (denied.error or "")
    step = run(
        host,
        [
            {"basic_auth": {"username": "admin", "password": "{{PASSWORD}}"}},
            {"set_header": {"name": "X-Trace", "value": "trace-1"}},
            {"goto": site.url("/protected")},
        ],
    )
    assert step.status == "passed", step.error


def test_an_evaluate_that_returns_false(host: BrowserHost, site: PageServer) -> None:
    result = run(
        host, [{"goto": site.url("/login")}, {"evaluate": "document.title === 'Something else'"}]
    )
    assert result.status == "failed" and result.error_kind == "assertion"
    assert "expression returned False, not a truthy value" in (result.error or "")
    thrown = run(host, [{"goto": site.url("/login")}, {"evaluate": "undefinedThing.call()"}])
    assert thrown.status == "failed" and "expression threw" in (thrown.error or "")


def test_degraded_when_slower_than_degraded_response_time(
    host: BrowserHost, site: PageServer
) -> None:
    result = run(
        host,
        [{"goto": site.url("/slow-element")}, {"wait_for": {"selector": "#late"}}],
        degraded_response_time="500ms",
    )
    assert result.status == "degraded", result.error


def test_the_page_cannot_reach_forbidden_targets(
    host: BrowserHost, site: PageServer, other: TargetServer
) -> None:
    result = run(host, [{"goto": site.url(f"/ssrf?other={other.port}")}, {"assert_visible": "#ok"}])
    assert result.status == "passed", result.error
    assert other.hits == [], "a forbidden target was reached"
    blocked = {f["url"] for f in result.response["failed_requests"] if f.get("blocked")}
    assert {f"127.0.0.1:{other.port}", "169.254.169.254:80", "10.0.0.1:80"} <= blocked
    navigation = run(host, [{"goto": other.url("/ok")}])
    assert navigation.status == "failed" and navigation.error_kind == "forbidden_target"
    assert "loopback addresses are not allowed" in (navigation.error or "")
    assert other.hits == []


def test_undefined_placeholder_fails_clearly(host: BrowserHost, site: PageServer) -> None:
    result = run(
        host, [{"goto": site.url("/login")}, {"fill": {"selector": "#email", "value": "{{NOPE}}"}}]
    )
    assert result.status == "failed" and result.error_kind == "config"
    assert "{{NOPE}} has no value" in (result.error or "")


def test_chromium_killed_mid_run_then_the_next_run_succeeds(
    host: BrowserHost, site: PageServer
) -> None:
    host.ensure()
    assert host.chromium is not None
    victim = host.chromium

    def kill_soon() -> None:
        time.sleep(1.0)
        for process in victim.tree():
            process.kill()

    killer = threading.Thread(target=kill_soon)
    killer.start()
    crashed = run(
        host, [{"goto": site.url("/login")}, {"wait_for": {"selector": "#never", "timeout": "20s"}}]
    )
    killer.join()
    assert crashed.status == "failed" and crashed.error_kind == "browser"
    # Step 2 as a rule; step 1 when a loaded machine is still loading the page.
    assert re.search(r"Chromium crashed during step [12]\b", crashed.error or ""), crashed.error
    again = run(
        host,
        [
            {"goto": site.url("/trivial")},
            {"click": "#b"},
            {"assert_text": {"selector": "#b", "equals": "clicked"}},
        ],
    )
    assert again.status == "passed", again.error
    assert host.chromium is not victim
    assert not [p for p in victim.tree() if p.status() != psutil.STATUS_ZOMBIE]


def test_a_hung_chromium_is_replaced(
    host: BrowserHost, site: PageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser that stops answering fails the job (so SQS delivers the run again) and is
    replaced; the next run gets a new, answering one."""
    import os
    import signal

    from app.execution.browser import pool
    from app.execution.browser.pool import BrowserUnavailable

    monkeypatch.setattr(pool, "CONTROL_TIMEOUT", 2.0)
    host.ensure()
    assert host.chromium is not None
    hung = host.chromium
    os.kill(hung.pid, signal.SIGSTOP)
    try:
        with pytest.raises(BrowserUnavailable, match="did not open a context"):
            run(host, [{"goto": site.url("/trivial")}])
    finally:
        for process in hung.tree():
            process.kill()
    assert run(host, [{"goto": site.url("/trivial")}, {"click": "#b"}]).status == "passed"
    assert host.chromium is not None and host.chromium.pid != hung.pid


def test_recycling_and_closing_leave_no_chromium_behind(site: PageServer, tmp_path: Path) -> None:
    settings = make_settings(
        SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{site.port}",
        SYNMON_BROWSER_RECYCLE_AFTER="2",
        SYNMON_DATA_DIR=str(tmp_path),
    )
    before = {p.pid for p in own_chromium_processes()}
    browser_host = BrowserHost(settings)
    try:
        pids = []
        for _ in range(5):
            assert run(browser_host, [{"goto": site.url("/trivial")}]).status == "passed"
            assert browser_host.chromium is not None
            pids.append(browser_host.chromium.pid)
        assert len(set(pids)) == 3  # recycled after every second run
        assert browser_host.launches == 3
    finally:
        browser_host.close()
    time.sleep(0.5)
    left = [
        p
        for p in own_chromium_processes()
        if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert left == []


def test_screenshots_go_to_s3_by_key_not_into_the_message(site: PageServer, tmp_path: Path) -> None:
    import boto3

    from app.pipeline.wire import result_body
    from tests.support.processes import moto_server

    with moto_server() as moto:
        s3 = boto3.client(
            "s3",
            endpoint_url=moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        s3.create_bucket(Bucket="synmon-artifacts")
        settings = make_settings(
            SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{site.port}",
            SYNMON_DATA_DIR=str(tmp_path),
            SYNMON_ARTIFACTS_URL="s3://synmon-artifacts/screens",
            SYNMON_S3_ENDPOINT=moto.endpoint,
        )
        browser_host = BrowserHost(settings)
        try:
            result = run(
                browser_host,
                [
                    {"goto": site.url("/login")},
                    {"screenshot": "login"},
                    {"click": {"selector": "#missing", "timeout": "500ms"}},
                ],
            )
        finally:
            browser_host.close()
        assert result.status == "failed"
        assert [a["name"] for a in result.artifacts] == ["login", "failure"]
        for artifact in result.artifacts:
            assert artifact["url"] == f"s3://synmon-artifacts/screens/{artifact['key']}"
            body = s3.get_object(Bucket="synmon-artifacts", Key=f"screens/{artifact['key']}")[
                "Body"
            ].read()
            assert body[:8] == b"\x89PNG\r\n\x1a\n" and len(body) == artifact["bytes"]
        message = result_body(result, 2)
        assert len(message) < 8 * 1024 and "iVBOR" not in message  # a key, no image inside
