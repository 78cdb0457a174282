"""One Chromium per worker process, serving several runs at once, each in its own
incognito context.

The ``BrowserHost`` of a process owns the guard proxy, the Chromium process and the
one event loop that drives pyppeteer, on a thread of its own: the worker's threads
(Celery's ``threads`` pool) hand their runs to that loop and wait for the result, so
``SYNMON_BROWSER_CONCURRENCY`` runs share one Chromium. Each run has its own context,
page, proxy port (so what the proxy refused is that run's alone), events and
screenshots; nothing of one run reaches another's result.

The host launches Chromium on first use, relaunches it when it has crashed or hangs
(the runs in flight on it fail as browser errors), and recycles it after
``SYNMON_BROWSER_RECYCLE_AFTER`` runs, so that a slow leak in Chromium never becomes
the worker's problem: new runs go to a fresh Chromium at once, and the old one is
closed when the last of its runs in flight has ended.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyppeteer
from pyppeteer.browser import BrowserContext
from pyppeteer.errors import PyppeteerError

from app.definitions.models import Check
from app.definitions.placeholders import Placeholders, UndefinedVariable
from app.execution.artifacts import store_for
from app.execution.browser.chromium import (
    PROXY_BYPASS,
    BrowserLaunchError,
    Chromium,
    launch,
    sweep_orphans,
)
from app.execution.browser.proxy import GuardProxy, RunTraffic
from app.execution.browser.steps import (
    NAVIGATION_TIMINGS_JS,
    RAW_LIMIT,
    TEXT_LIMIT,
    PageCrashed,
    PageEvents,
    StepContext,
    StepFailed,
    apply_basic_auth,
    describe,
    hiding_typed_secrets,
    own_origins,
    run_step,
    send_headers,
)
from app.execution.guard import TargetGuard
from app.execution.outcome import BROWSER, CONFIG, TIMEOUT, Observation, to_result
from app.execution.redact import Redactor, redactor_for
from app.execution.runs import RunRequest, RunResult
from config.errors import RetryableError
from config.settings import Settings

log = logging.getLogger("synmon.browser")
CONTROL_TIMEOUT = 15.0  # opening or closing a context takes well under a second when healthy
# Beyond its check's timeout, what a run may take: opening and closing its context, a
# failure screenshot, the page's timings. A run still going then is stuck in the loop.
RUN_MARGIN = 60.0


class BrowserUnavailable(RetryableError, RuntimeError):
    """The browser could not be brought up: a job failure, the run is delivered again."""


@dataclass(eq=False)
class Launch:
    """One launch of Chromium, pyppeteer's connection to it, and the runs it serves."""

    chromium: Chromium
    browser: Any
    runs: int = 0  # runs started on it
    in_flight: int = 0
    closed: bool = False

    def healthy(self) -> bool:
        return self.chromium.alive() and bool(self.browser._connection._connected)


class BrowserHost:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Built once, off the loop: an S3 client takes long enough to stall every run.
        self.artifacts = store_for(settings)
        guard = TargetGuard(settings.allow_private_targets, settings.allowed_targets)
        # Each run's requests come on a port of its own; the port Chromium is launched
        # with only ever carries Chromium's own traffic, and refuses all of it.
        self.proxy = GuardProxy(guard, refuse_between_runs=True).start()
        self.current: Launch | None = None  # where new runs go
        # Recycled launches whose runs in flight have not all ended: closed by the last.
        self.draining: set[Launch] = set()
        self.launches = 0
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        # Chromium dies with the thread that started it (PR_SET_PDEATHSIG follows the
        # thread, not the process): it is started on this one, which lives as long as
        # the host, and not on a worker thread that may come and go.
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="synmon-chromium-launcher")
        self._admitting: asyncio.Lock | None = None  # made on the loop: see _admit
        self._closed = False
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="synmon-browser-loop", daemon=True
        )
        self._thread.start()

    @property
    def chromium(self) -> Chromium | None:
        return self.current.chromium if self.current is not None else None

    @property
    def browser(self) -> Any:
        return self.current.browser if self.current is not None else None

    def _call(self, coroutine: Any, timeout: float | None = None) -> Any:
        """``coroutine`` run on the host's loop, from any other thread; its result."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    # ------------------------------------------------------------ lifecycle
    def ensure(self) -> None:
        """A healthy Chromium, launched (or recycled) if need be."""
        self._call(self._admit(run=False))

    async def _admit(self, run: bool) -> Launch:
        """The Chromium launch a new run (``run``) goes on. Launched when there is none or it is
        gone; when it is due for recycling, a new one is launched for the new runs and
        the old one is closed once its runs in flight have ended: a recycle never cuts
        a run short, nor makes one wait for another's end."""
        if self._admitting is None:
            self._admitting = asyncio.Lock()
        async with self._admitting:  # one launch at a time: who comes meanwhile uses it
            old = self.current
            reason = "starting"
            if old is not None and old.runs >= self.settings.browser_recycle_after:
                reason = f"recycling after {old.runs} runs"
                self.current = None
                if old.in_flight and old.healthy():
                    self.draining.add(old)
                else:
                    await self._close_launch(old)
            elif old is not None and not old.healthy():
                reason = "Chromium is gone"
                await self._retire(old)
            if self.current is None:
                self.current = await self._launch(reason)
            launched = self.current
            if run:
                launched.runs += 1
                launched.in_flight += 1
            return launched

    async def _ended(self, launched: Launch) -> None:
        launched.in_flight -= 1
        if launched in self.draining and launched.in_flight == 0:
            await self._retire(launched)

    async def _launch(self, reason: str) -> Launch:
        log.info("launching Chromium (%s)", reason)
        loop = asyncio.get_running_loop()
        if self.launches == 0:
            await loop.run_in_executor(self._launcher, sweep_orphans)
        chromium: Chromium | None = None
        try:
            chromium = await loop.run_in_executor(
                self._launcher, launch, self.settings.chromium_path, self.proxy.port
            )
            browser = await pyppeteer.connect(
                browserWSEndpoint=chromium.endpoint, defaultViewport=None
            )
        except (BrowserLaunchError, PyppeteerError, OSError) as exc:
            if chromium is not None:
                chromium.kill()
            raise BrowserUnavailable(f"cannot start Chromium: {exc}") from exc
        self.launches += 1
        return Launch(chromium, browser)

    async def _retire(self, launched: Launch) -> None:
        """``launched`` is done with (broken, or recycled and idle): closed, and no new run
        goes on it; runs still in flight on a broken one fail as browser errors."""
        if self.current is launched:
            self.current = None
        self.draining.discard(launched)
        await self._close_launch(launched)

    async def _close_launch(self, launched: Launch) -> None:
        if launched.closed:
            return
        launched.closed = True
        try:
            await asyncio.wait_for(launched.browser.disconnect(), 5)
        except Exception as exc:  # noqa: BLE001 - it is being killed anyway
            log.debug("disconnect failed: %s", exc)
        await asyncio.get_running_loop().run_in_executor(None, launched.chromium.kill)

    async def _close_all(self) -> None:
        for launched in [*self.draining, *([self.current] if self.current else [])]:
            await self._retire(launched)

    def close_browser(self) -> None:
        if not self._closed:
            self._call(self._close_all(), CONTROL_TIMEOUT * 2)

    def close(self) -> None:
        if os.getpid() != self.pid or self._closed:
            return  # a forked child does not own its parent's browser
        try:
            self.close_browser()
        except Exception as exc:  # noqa: BLE001 - a stuck loop: Chromium dies with the process
            log.warning("closing Chromium failed: %s", exc)
        self._closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self._launcher.shutdown(wait=False)
        self.proxy.stop()

    # ------------------------------------------------------------ runs
    def run(self, check: Check, request: RunRequest, deliveries: int) -> RunResult:
        """The result of one run; called from any thread but the host's loop."""
        assert check.browser is not None
        bound = check.browser.timeout + RUN_MARGIN
        try:
            result: RunResult = self._call(self._run_one(check, request, deliveries), bound)
        except FutureTimeout:
            raise BrowserUnavailable(f"the run did not end within {bound:g}s") from None
        return result

    async def _run_one(self, check: Check, request: RunRequest, deliveries: int) -> RunResult:
        launched = await self._admit(run=True)
        observation = Observation(started_at=datetime.now(UTC))
        placeholders = Placeholders(self.settings.variables, self.settings.public_variables)
        secrets: set[str] = set()
        try:
            with self.proxy.run_port() as traffic:
                await self._run(
                    launched, traffic, check, request, observation, placeholders, secrets
                )
        except BrowserUnavailable:
            await self._retire(launched)
            raise
        finally:
            await self._ended(launched)
        if not launched.chromium.alive():
            await self._retire(launched)
        observation.stop()
        return to_result(
            check, request, observation, self.settings, deliveries, secrets | placeholders.used
        )

    async def _control(self, awaitable: Any, what: str) -> Any:
        try:
            return await asyncio.wait_for(awaitable, CONTROL_TIMEOUT)
        except (TimeoutError, PyppeteerError, OSError) as exc:
            # A browser that cannot open a context is broken, not the target.
            raise BrowserUnavailable(f"Chromium did not {what}: {exc or 'timed out'}") from exc

    async def _new_context(self, launched: Launch, traffic: RunTraffic) -> BrowserContext:
        """An incognito context whose every request goes to the run's own proxy port."""
        browser = launched.browser
        created = await browser._connection.send(
            "Target.createBrowserContext",
            {"proxyServer": f"http://127.0.0.1:{traffic.port}", "proxyBypassList": PROXY_BYPASS},
        )
        context = BrowserContext(browser, created["browserContextId"])
        browser._contexts[created["browserContextId"]] = context  # as pyppeteer's own does
        return context

    async def _run(
        self,
        launched: Launch,
        traffic: RunTraffic,
        check: Check,
        request: RunRequest,
        observation: Observation,
        placeholders: Placeholders,
        secrets: set[str],
    ) -> None:
        spec = check.browser
        assert spec is not None
        deadline = time.monotonic() + spec.timeout
        context = await self._control(self._new_context(launched, traffic), "open a context")
        try:
            page = await self._control(context.newPage(), "open a page")
            events = PageEvents()
            page.on("console", events.console)
            page.on("pageerror", events.page_error)
            page.on("requestfailed", events.request_failed)
            page.on("response", events.response)
            page.on("error", events.page_crashed)

            def navigated(frame: Any) -> None:
                if frame.parentFrame is None:
                    events.main_navigations += 1

            page.on("framenavigated", navigated)
            await page.setViewport({"width": spec.viewport.width, "height": spec.viewport.height})
            artifacts = self.artifacts
            typed_secrets: set[str] = set()

            async def screenshot(name: str, full_page: bool = False) -> None:
                data = await asyncio.wait_for(
                    hiding_typed_secrets(
                        page,
                        typed_secrets,
                        lambda: page.screenshot(type="png", fullPage=full_page),
                    ),
                    10,
                )
                key = f"{check.id}/{request.run_id}/{len(observation.artifacts):02d}-{name}.png"
                url = await asyncio.get_running_loop().run_in_executor(
                    None, artifacts.put, key, data, "image/png"
                )
                observation.artifacts.append(
                    {
                        "name": name,
                        "key": key,
                        "url": url,
                        "content_type": "image/png",
                        "bytes": len(data),
                    }
                )

            ctx = StepContext(
                page=page,
                check=check,
                placeholders=placeholders,
                deadline=deadline,
                screenshot=screenshot,
                refusals=traffic.take,
                events=events,
                secrets=secrets,
                typed_secrets=typed_secrets,
            )
            try:
                ctx.own_origins = own_origins(check, placeholders)
                ctx.headers.update({k: placeholders.text(v) for k, v in spec.headers.items()})
                if spec.basic_auth is not None:
                    await self._control(apply_basic_auth(ctx, spec.basic_auth), "send headers")
                else:
                    await self._control(send_headers(ctx), "send headers")
            except UndefinedVariable as exc:
                observation.fail(CONFIG, str(exc))
            else:
                await self._steps(launched, ctx, check, observation, deadline)
            # Refused after the last step began (a script's late request): recorded too.
            events.blocked(traffic.take())
            await self._finish_page(
                launched,
                page,
                events,
                observation,
                redactor_for(frozenset(secrets | placeholders.used)),
            )
        finally:
            try:
                await asyncio.wait_for(context.close(), CONTROL_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a context that will not close means a sick browser
                log.warning("closing the context failed (%s); restarting Chromium", exc)
                # Replaced for the next run; closed once its other runs have ended.
                launched.runs = self.settings.browser_recycle_after

    async def _steps(
        self,
        launched: Launch,
        ctx: StepContext,
        check: Check,
        observation: Observation,
        deadline: float,
    ) -> None:
        spec = check.browser
        assert spec is not None
        outcomes = observation.assertions
        failed_at: int | None = None
        for index, step in enumerate(spec.steps):
            started = time.perf_counter()
            outcome: dict[str, Any] = {
                "step": index + 1,
                "action": step.action,
                "target": describe(step),
            }
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(run_step(ctx, step), remaining)
            except Exception as exc:  # noqa: BLE001 - every failure of a step is reported, none escapes
                observation.fail(*await self._failure(launched, spec.timeout, index, step, exc))
            outcome["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            outcome["passed"] = observation.error is None
            if observation.error is not None:
                outcome["error"] = observation.error
                outcomes.append(outcome)
                failed_at = index
                break
            outcomes.append(outcome)
        if failed_at is not None:
            for index, step in enumerate(spec.steps[failed_at + 1 :], start=failed_at + 2):
                outcomes.append(
                    {
                        "step": index,
                        "action": step.action,
                        "target": describe(step),
                        "passed": None,
                        "skipped": True,
                    }
                )
            if launched.chromium.alive() and not ctx.events.crashed:
                await self._failure_screenshot(ctx)

    async def _failure_screenshot(self, ctx: StepContext) -> None:
        # A page that is still navigating (a redirect chain, say) can destroy the context
        # a screenshot was taken in: once more, a moment later, catches the page it lands on.
        for attempt in range(2):
            try:
                await ctx.screenshot("failure")
                return
            except Exception as exc:  # noqa: BLE001 - the failure matters more than its picture
                if attempt:
                    log.warning("no screenshot of the failure: %s", exc)
                else:
                    await asyncio.sleep(0.25)

    async def _failure(
        self, launched: Launch, check_timeout: float, index: int, step: Any, exc: Exception
    ) -> tuple[str, str]:
        """(error kind, message) for a step that raised ``exc``."""
        where = f"step {index + 1} ({describe(step)})"
        if isinstance(exc, StepFailed):
            return exc.kind, f"{where}: {exc}"
        if isinstance(exc, TimeoutError):
            return TIMEOUT, f"check timed out after {check_timeout:g}s in {where}"
        if isinstance(exc, UndefinedVariable):
            return CONFIG, f"{where}: {exc}"
        if not await self._survives(launched):
            return BROWSER, f"Chromium crashed during {where}"
        if isinstance(exc, PageCrashed) or "Target closed" in str(exc):
            return BROWSER, f"the page crashed during {where}"
        log.warning("%s failed unexpectedly", where, exc_info=exc)
        return BROWSER, f"{where}: {(str(exc).splitlines() or [type(exc).__name__])[0][:RAW_LIMIT]}"

    async def _survives(self, launched: Launch, grace: float = 1.0) -> bool:
        """Whether the run's browser is still healthy after an error (a dying one gets
        ``grace`` s); a newer one that replaced it meanwhile does not count."""
        deadline = time.monotonic() + grace
        while launched.healthy():
            if time.monotonic() >= deadline:
                return True
            await asyncio.sleep(0.05)
        return False

    async def _finish_page(
        self,
        launched: Launch,
        page: Any,
        events: PageEvents,
        observation: Observation,
        redactor: Redactor,
    ) -> None:
        alive = launched.chromium.alive() and not events.crashed  # else nothing answers

        def shown(text: str) -> str:  # redacted first, then cut: no half secret shows
            return redactor.cut(text, TEXT_LIMIT, already_cut=len(text) >= RAW_LIMIT)

        response: dict[str, Any] = {
            "console_errors": [shown(line) for line in events.console_errors],
            "failed_requests": [
                {**failure, "url": shown(str(failure["url"]))} for failure in events.failed_requests
            ],
        }
        if alive:
            try:
                timings = await asyncio.wait_for(page.evaluate(NAVIGATION_TIMINGS_JS), 5)
                response["url"] = page.url
                response["title"] = await asyncio.wait_for(page.title(), 5)
            except Exception:  # noqa: BLE001 - a page stuck loading may not answer
                timings = None
            for name, value in (timings or {}).items():
                if value is not None:
                    observation.timings[name] = round(float(value), 1)
        if observation.error is not None:
            response["failed_step"] = next(
                (o["step"] for o in observation.assertions if o.get("passed") is False), None
            )
        observation.response = response


_host: BrowserHost | None = None
_host_lock = threading.Lock()  # the worker's threads ask for it at once on the first runs


def host(settings: Settings) -> BrowserHost:
    global _host  # noqa: PLW0603 - one browser host per worker process
    with _host_lock:
        if _host is None or _host.pid != os.getpid():
            _host = BrowserHost(settings)
            atexit.register(_host.close)
        return _host


def close_host() -> None:
    if _host is not None:
        _host.close()


def run_browser_check(
    check: Check, request: RunRequest, settings: Settings, deliveries: int = 1
) -> RunResult:
    return host(settings).run(check, request, deliveries)
