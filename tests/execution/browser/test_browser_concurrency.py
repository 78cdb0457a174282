"""Several runs at once on one Chromium, each in its own incognito context.

Real headless Chromium against two page servers on 127.0.0.1: what one run records
(refused requests, console errors, failed subresources, timings, title and URL) never
appears in another's result; a crashed page fails its own run only; a crashed Chromium
fails the runs in flight on it and is relaunched; recycling waits for the runs in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from app.execution.browser.pool import BrowserHost
from app.execution.runs import RunResult
from tests.support.browsers import browser_host, run, run_together
from tests.support.pages import PageServer
from tests.support.processes import free_port
from tests.support.servers import serving
from tests.support.settings import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.processes]


@pytest.fixture(scope="module")
def first() -> Iterator[PageServer]:
    with serving(PageServer()) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def second() -> Iterator[PageServer]:
    with serving(PageServer()) as server:
        yield server  # type: ignore[misc]


def allowed(*sites: PageServer) -> str:
    return ",".join(f"127.0.0.1:{site.port}" for site in sites)


@pytest.fixture(scope="module")
def host(
    first: PageServer, second: PageServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserHost]:
    with browser_host(
        tmp_path_factory.mktemp("concurrency"), SYNMON_ALLOWED_TARGETS=allowed(first, second)
    ) as started:
        yield started


def noisy(site: PageServer, tag: str, blocked: int, delay: int = 1500) -> list[Any]:
    return [
        {"goto": site.url(f"/noisy?tag={tag}&blocked={blocked}&delay={delay}")},
        {"wait_for": {"selector": "#done", "timeout": "15s"}},
        {"assert_text": {"selector": "#tag", "equals": tag}},
    ]


def overlapped(results: list[RunResult]) -> bool:
    """Whether every run was in flight while every other one was."""
    spans = [(r.started_at, r.started_at + timedelta(milliseconds=r.duration_ms)) for r in results]
    return max(start for start, _ in spans) < min(end for _, end in spans)


def test_what_a_run_records_stays_in_its_own_result(
    host: BrowserHost, first: PageServer, second: PageServer
) -> None:
    ports = {"a": free_port(), "b": free_port()}
    for _ in range(3):
        results = run_together(
            host,
            [
                noisy(first, "a", ports["a"]),
                noisy(second, "b", ports["b"]),
                noisy(first, "c", ports["a"], delay=800),
                noisy(second, "d", ports["b"], delay=800),
            ],
        )
        assert overlapped(results)
        for result, tag, site in zip(results, "abcd", [first, second, first, second], strict=True):
            assert result.status == "passed", (tag, result.error)
            errors = result.response["console_errors"]
            assert f"noisy {tag}" in errors, (tag, errors)
            others = set("abcd") - {tag}
            for line in errors:  # its own, and Chromium's lines about its own requests
                marks = [m for o in others for m in (f"noisy {o}", f"from-{o}", f"missing-{o}")]
                assert not [m for m in marks if m in line], line
            failed = result.response["failed_requests"]
            blocked = {f["url"] for f in failed if f.get("blocked")}
            port = ports["a"] if site is first else ports["b"]
            # The proxy told this run of its own refused request, and of no other run's.
            assert blocked == {f"127.0.0.1:{port}"}, (tag, failed)
            missing = [f["url"] for f in failed if "/missing-" in f["url"]]
            assert missing and all(url.endswith(f"/missing-{tag}.png") for url in missing)
            assert result.response["title"] == f"Noisy {tag}"
            assert result.response["url"].startswith(site.url(f"/noisy?tag={tag}&"))
            assert {"ttfb_ms", "dom_content_loaded_ms", "load_ms"} <= set(result.timings)
            # Each page loaded in about its own time: the shared loop held no run up
            # past another's pace (timings are the page's own, not a neighbour's).
            assert result.timings["load_ms"] < 10_000


def crash_page(host: BrowserHost, url_part: str) -> None:
    """Crash the renderer of the page whose URL holds ``url_part``."""

    async def crash() -> None:
        for target in host.browser.targets():
            if url_part in target.url:
                page = await target.page()
                with contextlib.suppress(Exception):  # no answer comes from a dead renderer
                    await asyncio.wait_for(page._client.send("Page.crash"), 2)
                return
        raise AssertionError(f"no page at {url_part}")

    asyncio.run_coroutine_threadsafe(crash(), host.loop).result(10)


def later(seconds: float, action: Any) -> threading.Thread:
    def act() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=act)
    thread.start()
    return thread


def test_a_crashed_page_fails_its_own_run_only(
    host: BrowserHost, first: PageServer, second: PageServer
) -> None:
    host.ensure()
    assert host.chromium is not None
    chromium = host.chromium.pid
    crasher = later(2.0, lambda: crash_page(host, "/login"))
    crashed, survivor = run_together(
        host,
        [
            [{"goto": first.url("/login")}, {"wait_for": {"selector": "#never", "timeout": "8s"}}],
            noisy(second, "b", free_port(), delay=4000),
        ],
    )
    crasher.join()
    assert crashed.status == "failed" and crashed.error_kind == "browser", crashed.error
    assert crashed.error == "the page crashed during step 2 (wait_for '#never')"
    assert crashed.duration_ms < 6000  # at once, not at the step's timeout
    assert survivor.status == "passed", survivor.error
    assert host.chromium is not None and host.chromium.pid == chromium  # not relaunched
    assert run(host, [{"goto": first.url("/trivial")}, {"click": "#b"}]).status == "passed"


def test_a_crashed_chromium_fails_the_runs_in_flight_and_is_relaunched(
    host: BrowserHost, first: PageServer, second: PageServer
) -> None:
    host.ensure()
    assert host.chromium is not None
    victim = host.chromium

    def kill() -> None:
        for process in victim.tree():
            process.kill()

    killer = later(1.5, kill)
    waiting = [{"wait_for": {"selector": "#never", "timeout": "20s"}}]
    results = run_together(
        host,
        [[{"goto": first.url("/login")}, *waiting], [{"goto": second.url("/login")}, *waiting]],
    )
    killer.join()
    for result in results:
        assert result.status == "failed" and result.error_kind == "browser", result.error
        # Step 2 as a rule; step 1 when a loaded machine is still loading the page.
        assert re.search(r"Chromium crashed during step [12]\b", result.error or ""), result.error
    again = run_together(host, [noisy(first, "a", free_port()), noisy(second, "b", free_port())])
    assert [r.status for r in again] == ["passed", "passed"], [r.error for r in again]
    assert host.chromium is not None and host.chromium is not victim
    assert not [p for p in victim.tree() if p.status() != psutil.STATUS_ZOMBIE]


def test_recycling_lets_the_runs_in_flight_end(
    first: PageServer, second: PageServer, tmp_path: Path
) -> None:
    settings = make_settings(
        SYNMON_ALLOWED_TARGETS=allowed(first, second),
        SYNMON_BROWSER_RECYCLE_AFTER="2",
        SYNMON_DATA_DIR=str(tmp_path),
    )
    recycling = BrowserHost(settings)
    try:
        recycling.ensure()
        assert recycling.chromium is not None
        old = recycling.chromium
        # Two runs fill the first Chromium's quota; the third, sent while they are in
        # flight, goes at once to a new Chromium, and the old one lives until they end.
        third: list[tuple[RunResult, bool]] = []

        def send_third() -> None:
            third.append((run(recycling, noisy(first, "c", free_port(), 500)), old.alive()))

        sender = later(0.5, send_third)
        results = run_together(
            recycling,
            [noisy(first, "a", free_port(), 5000), noisy(second, "b", free_port(), 5000)],
        )
        sender.join()
        ((late, old_alive_then),) = third
        assert [r.status for r in [*results, late]] == ["passed"] * 3, [
            r.error for r in [*results, late]
        ]
        ended = min(r.started_at + timedelta(milliseconds=r.duration_ms) for r in results)
        assert late.started_at + timedelta(milliseconds=late.duration_ms) < ended
        assert old_alive_then  # the runs in flight on it kept it
        assert recycling.launches == 2 and recycling.chromium is not old
        assert not old.alive()  # closed by the last of them
        assert recycling.draining == set()
    finally:
        recycling.close()
