"""Browser checks: synmon's run of a goto-click-read check on a trivial page, against a
bare pyppeteer loop doing the same with one reused browser (a fresh incognito context
per run, as synmon does), and against launching a browser per run."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime

import pyppeteer

from app.definitions.models import Check
from app.execution.browser.chromium import BASE_ARGS
from app.execution.browser.pool import BrowserHost
from app.execution.runs import RunRequest
from bench.common import Figure, Size, WrongResult
from config.settings import load_settings
from tests.support.pages import PageServer
from tests.support.servers import serving

SIZES = {"tiny": 3, "full": 30}
CHROMIUM = "/usr/bin/chromium"


def launch_options() -> dict[str, object]:
    args = [a for a in BASE_ARGS if not a.startswith("--remote-debugging")] + ["--no-sandbox"]
    return {
        "executablePath": CHROMIUM,
        "args": args,
        "handleSIGINT": False,
        "handleSIGTERM": False,
        "handleSIGHUP": False,
        "userDataDir": tempfile.mkdtemp(prefix="bench-chromium-"),
    }


async def goto_click_read(browser: pyppeteer.browser.Browser, url: str) -> str:
    context = await browser.createIncognitoBrowserContext()
    try:
        page = await context.newPage()
        await page.goto(url)
        await page.click("#b")
        return str(await page.querySelectorEval("#b", "(el) => el.textContent"))
    finally:
        await context.close()


async def bare_reused(url: str, runs: int) -> list[float]:
    browser = await pyppeteer.launch(**launch_options())
    try:
        await goto_click_read(browser, url)  # warm-up
        costs = []
        for _ in range(runs):
            started = time.perf_counter()
            if await goto_click_read(browser, url) != "clicked":
                raise WrongResult("the bare loop did not read 'clicked'")
            costs.append(time.perf_counter() - started)
        return costs
    finally:
        await browser.close()


async def browser_per_run(url: str, runs: int) -> list[float]:
    costs = []
    for _ in range(runs):
        started = time.perf_counter()
        browser = await pyppeteer.launch(**launch_options())
        try:
            page = await browser.newPage()
            await page.goto(url)
            await page.click("#b")
            if await page.querySelectorEval("#b", "(el) => el.textContent") != "clicked":
                raise WrongResult("the browser-per-run loop did not read 'clicked'")
        finally:
            await browser.close()
        costs.append(time.perf_counter() - started)
    return costs


def synmon_runs(url: str, port: int, runs: int) -> list[float]:
    settings = load_settings(
        {
            "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{port}",
            "SYNMON_DATA_DIR": tempfile.mkdtemp(prefix="bench-synmon-"),
        }
    )
    check = Check.model_validate(
        {
            "id": "bench",
            "type": "browser",
            "locations": ["local"],
            "browser": {
                "steps": [
                    {"goto": url},
                    {"click": "#b"},
                    {"assert_text": {"selector": "#b", "equals": "clicked"}},
                ]
            },
        }
    )
    host = BrowserHost(settings)
    try:

        def once() -> float:
            started = time.perf_counter()
            result = host.run(
                check, RunRequest(uuid.uuid4(), check.snapshot(), "local", datetime.now(UTC)), 1
            )
            if result.status != "passed":
                raise WrongResult(f"synmon's browser check {result.status}: {result.error}")
            return time.perf_counter() - started

        once()  # warm-up: launches Chromium
        return [once() for _ in range(runs)]
    finally:
        host.close()


def wait_for_bench_chromium_to_exit(timeout: float = 15.0) -> None:
    """pyppeteer's close() returns before every Chromium helper has gone."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [
            p
            for p in psutil.process_iter(["cmdline"])
            if any("bench-chromium-" in part for part in (p.info.get("cmdline") or []))
        ]
        if not alive:
            return
        time.sleep(0.2)
    for process in alive:
        process.kill()


def run(size: Size) -> list[Figure]:
    runs = SIZES[size]
    with serving(PageServer()) as server:
        url = server.url("/trivial")
        loop = asyncio.new_event_loop()
        bare = loop.run_until_complete(bare_reused(url, runs))
        synmon = synmon_runs(url, server.port, runs)
        fresh = loop.run_until_complete(browser_per_run(url, max(3, runs // 3)))
        # Not closed: pyppeteer's launcher uses this loop again at exit, to kill Chromium.
    wait_for_bench_chromium_to_exit()
    synmon_ms, bare_ms, fresh_ms = (1000 * statistics.median(v) for v in (synmon, bare, fresh))
    return [
        Figure(
            "browser",
            "goto-click-read, median per run",
            "ms",
            synmon_ms,
            bare_ms,
            "bare pyppeteer loop, one reused browser, incognito context per run",
            better="lower",
            goal="<= 1.15x the bare loop",
            met=synmon_ms <= 1.15 * bare_ms if size == "full" else None,
            notes=["synmon's run includes its guard proxy, event recording and navigation timings"],
        ),
        Figure(
            "browser",
            "browser per run, median per run",
            "ms",
            fresh_ms,
            synmon_ms,
            "synmon (above)",
            better="higher",
            goal=">= 1.8x slower than synmon",
            met=fresh_ms >= 1.8 * synmon_ms if size == "full" else None,
        ),
    ]
