"""Browser checks through one worker's ``BrowserHost``: one Chromium shared by
``SYNMON_BROWSER_CONCURRENCY`` incognito contexts.

* a goto-click-read check one at a time, against a bare pyppeteer loop doing the same
  with one reused browser (a fresh incognito context per run, as synmon does);
* checks in flight per GiB of the worker (its process and its Chromium, by PSS) at its
  concurrency, against a Chromium per check;
* the throughput of checks that wait on their pages at that concurrency, against one
  at a time;
* launching a browser per run, against synmon.

Every run must end as one passed result under its own run id: a lost, doubled or
failed run fails the benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psutil
import pyppeteer

from app.definitions.models import Check
from app.execution.browser.chromium import BASE_ARGS
from app.execution.browser.pool import BrowserHost
from app.execution.runs import RunRequest
from bench.common import Figure, Size, WrongResult
from config.settings import Settings, load_settings
from tests.support.pages import PageServer
from tests.support.servers import serving

SIZES = {"tiny": 3, "full": 30}
# Runs of the waiting check one at a time, and at the worker's concurrency.
THROUGHPUT_RUNS = {"tiny": (2, 8), "full": (10, 40)}
MIB = 2**20
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


def synmon_settings(port: int) -> Settings:
    return load_settings(
        {
            "SYNMON_ALLOWED_TARGETS": f"127.0.0.1:{port}",
            "SYNMON_DATA_DIR": tempfile.mkdtemp(prefix="bench-synmon-"),
        }
    )


def browser_check(steps: list[dict[str, Any]], check_id: str = "bench") -> Check:
    return Check.model_validate(
        {"id": check_id, "type": "browser", "locations": ["local"], "browser": {"steps": steps}}
    )


def flow_check(url: str) -> Check:
    """goto-click-read, the steps of the bare loop's ``goto_click_read``."""
    return browser_check(
        [{"goto": url}, {"click": "#b"}, {"assert_text": {"selector": "#b", "equals": "clicked"}}]
    )


def waiting_check(url: str) -> Check:
    """A check that waits on its page (an element that appears after 1.5 s), as most
    real flows wait on their targets: what several contexts of one Chromium overlap."""
    return browser_check(
        [
            {"goto": url},
            {"wait_for": {"selector": "#late", "timeout": "10s"}},
            {"assert_text": {"selector": "#late", "contains": "Ready"}},
        ],
        "bench-waiting",
    )


def request_for(check: Check) -> RunRequest:
    return RunRequest(uuid.uuid4(), check.snapshot(), "local", datetime.now(UTC))


def synmon_once(host: BrowserHost, check: Check) -> float:
    started = time.perf_counter()
    request = request_for(check)
    result = host.run(check, request, 1)
    if result.status != "passed" or result.run_id != request.run_id:
        raise WrongResult(f"synmon's browser check {result.status}: {result.error}")
    return time.perf_counter() - started


def medians_at_concurrency_1(
    url: str, host: BrowserHost, runs: int
) -> tuple[list[float], list[float]]:
    """(synmon, bare) seconds per goto-click-read, one run at a time, taking turns run by
    run: on a shared machine, a burst of load then lands on both alike."""
    check = flow_check(url)
    loop = asyncio.new_event_loop()
    browser = loop.run_until_complete(pyppeteer.launch(**launch_options()))
    try:
        loop.run_until_complete(goto_click_read(browser, url))  # warm-up
        synmon_once(host, check)  # warm-up: launches Chromium
        synmon: list[float] = []
        bare: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            if loop.run_until_complete(goto_click_read(browser, url)) != "clicked":
                raise WrongResult("the bare loop did not read 'clicked'")
            bare.append(time.perf_counter() - started)
            synmon.append(synmon_once(host, check))
        return synmon, bare
    finally:
        loop.run_until_complete(browser.close())
        # Not closed: pyppeteer's launcher uses this loop again at exit, to kill Chromium.


def tree_pss(pids: list[int]) -> tuple[float, float]:
    """(PSS, RSS) in MiB of the processes ``pids`` and all their descendants, each
    counted once. PSS splits a shared page among the processes that map it, so Chromium's
    helpers, which share most of their pages, are not counted several times over."""
    seen: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                seen[process.pid] = process
        except psutil.NoSuchProcess:
            continue
    pss = rss = 0
    for process in seen.values():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = process.memory_full_info()
            pss += info.pss
            rss += info.rss
    return pss / MIB, rss / MIB


class PeakMemory:
    """The highest (PSS, RSS) of a worker while it runs: this process (the host's loop,
    its guard proxy and the worker's threads) and the host's Chromium tree."""

    def __init__(self, host: BrowserHost) -> None:
        self.host = host
        self.pss = self.rss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            chromium = self.host.chromium
            pss, rss = tree_pss([os.getpid(), *([chromium.pid] if chromium else [])])
            self.pss, self.rss = max(self.pss, pss), max(self.rss, rss)
            self._stop.wait(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def own_process_memory_without_bare_browsers() -> None:
    """The bare loop's Chromium is this process's child too: it must be gone before the
    worker's memory is sampled, or the worker would be charged for it."""
    wait_for_bench_chromium_to_exit()


def throughput(
    host: BrowserHost, check: Check, runs: int, concurrency: int
) -> tuple[float, list[float]]:
    """(runs per second, seconds of each run) of ``runs`` runs of ``check`` through
    ``host`` from ``concurrency`` threads, as a worker's ``threads`` pool hands them over.
    Every run must end as exactly one passed result under its own run id."""
    requests = [request_for(check) for _ in range(runs)]
    results: dict[uuid.UUID, list[str]] = {r.run_id: [] for r in requests}
    lock = threading.Lock()

    def one(request: RunRequest) -> float:
        started = time.perf_counter()
        result = host.run(check, request, 1)
        with lock:
            if result.run_id in results:
                results[result.run_id].append(result.status)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency, thread_name_prefix="bench-browser") as pool:
        durations = list(pool.map(one, requests))
    seconds = time.perf_counter() - started
    lost = [run_id for run_id, statuses in results.items() if not statuses]
    doubled = [run_id for run_id, statuses in results.items() if len(statuses) > 1]
    failed = [s for statuses in results.values() for s in statuses if s != "passed"]
    if lost or doubled or failed:
        raise WrongResult(
            f"at concurrency {concurrency}: {len(lost)} run(s) without a result, "
            f"{len(doubled)} with several, {len(failed)} not passed"
        )
    return runs / seconds, durations


def bare_chromium_per_check(url: str) -> tuple[float, float]:
    """(PSS, RSS) in MiB of one bare Chromium with the waiting page open: the memory of a
    check in flight when each has a browser of its own, not counting its worker."""

    async def measure() -> tuple[float, float]:
        browser = await pyppeteer.launch(**launch_options())
        try:
            page = await browser.newPage()
            await page.goto(url)
            await page.waitForSelector("#late", timeout=10_000)
            return tree_pss([browser.process.pid])
        finally:
            await browser.close()

    loop = asyncio.new_event_loop()
    return loop.run_until_complete(measure())


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
    serial_runs, parallel_runs = THROUGHPUT_RUNS[size]
    with serving(PageServer()) as server:
        settings = synmon_settings(server.port)
        concurrency = settings.browser_concurrency
        host = BrowserHost(settings)
        try:
            synmon, bare = medians_at_concurrency_1(server.url("/trivial"), host, runs)
            own_process_memory_without_bare_browsers()
            waiting = waiting_check(server.url("/slow-element"))
            synmon_once(host, waiting)  # warm-up
            serial_rate, serial_times = throughput(host, waiting, serial_runs, 1)
            with PeakMemory(host) as peak:
                parallel_rate, parallel_times = throughput(
                    host, waiting, parallel_runs, concurrency
                )
        finally:
            host.close()
        bare_pss, bare_rss = bare_chromium_per_check(server.url("/slow-element"))
        loop = asyncio.new_event_loop()
        fresh = loop.run_until_complete(browser_per_run(server.url("/trivial"), max(3, runs // 3)))
        # Not closed: pyppeteer's launcher uses this loop again at exit, to kill Chromium.
    wait_for_bench_chromium_to_exit()
    synmon_ms, bare_ms, fresh_ms = (1000 * statistics.median(v) for v in (synmon, bare, fresh))
    per_gib = concurrency / (peak.pss / 1024)
    bare_per_gib = 1 / (bare_pss / 1024)
    return [
        Figure(
            "browser",
            "goto-click-read, median per run, concurrency 1",
            "ms",
            synmon_ms,
            bare_ms,
            "bare pyppeteer loop, one reused browser, incognito context per run",
            better="lower",
            goal="<= 1.10x the bare loop",
            met=synmon_ms <= 1.10 * bare_ms if size == "full" else None,
            notes=[
                f"{runs} runs each, taking turns run by run",
                "synmon's run includes its guard proxy, event recording and navigation timings",
            ],
        ),
        Figure(
            "browser",
            f"checks in flight per GiB, one worker, {concurrency} contexts",
            "checks/GiB",
            per_gib,
            bare_per_gib,
            "a Chromium per check in flight (bare Chromium, the same page open, no worker)",
            goal=">= 4 checks per GiB",
            met=per_gib >= 4 if size == "full" else None,
            notes=[
                f"peak PSS {peak.pss:,.0f} MiB (RSS summed {peak.rss:,.0f}) of the worker's "
                f"process and its Chromium with {concurrency} checks in flight; "
                f"bare Chromium {bare_pss:,.0f} MiB PSS ({bare_rss:,.0f} RSS)",
            ],
        ),
        Figure(
            "browser",
            f"checks waiting on their page, {concurrency} contexts of one Chromium",
            "runs/s",
            parallel_rate,
            serial_rate,
            "the same worker, one check at a time",
            notes=[
                f"{parallel_runs} and {serial_runs} runs; median per run "
                f"{1000 * statistics.median(parallel_times):,.0f} ms and "
                f"{1000 * statistics.median(serial_times):,.0f} ms "
                "(the page shows its element after 1.5 s)",
            ],
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
