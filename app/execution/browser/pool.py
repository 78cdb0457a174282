"""One Chromium per worker process, a fresh incognito context per run.

The ``BrowserHost`` of a process owns the guard proxy, the Chromium process and the
event loop that drives pyppeteer. It launches Chromium on first use (after Celery's
fork), relaunches it when it has crashed or hangs, and recycles it after
``SYNMON_BROWSER_RECYCLE_AFTER`` runs, so that a slow leak in Chromium never becomes
the worker's problem.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

import pyppeteer
from pyppeteer.errors import PyppeteerError

from app.definitions.models import Check
from app.definitions.placeholders import Placeholders, UndefinedVariable
from app.execution.artifacts import store_for
from app.execution.browser.chromium import BrowserLaunchError, Chromium, launch, sweep_orphans
from app.execution.browser.proxy import GuardProxy
from app.execution.browser.steps import (
    NAVIGATION_TIMINGS_JS,
    RAW_LIMIT,
    TEXT_LIMIT,
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


class BrowserUnavailable(RetryableError, RuntimeError):
    """The browser could not be brought up: a job failure, the run is delivered again."""


class BrowserHost:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        guard = TargetGuard(settings.allow_private_targets, settings.allowed_targets)
        # Anything Chromium asks for while no check runs is its own traffic: refused.
        self.proxy = GuardProxy(guard, refuse_between_runs=True).start()
        self.chromium: Chromium | None = None
        self.browser: Any = None
        self.runs = 0
        self.launches = 0
        self.pid = os.getpid()

    # ------------------------------------------------------------ lifecycle
    def _healthy(self) -> bool:
        return (
            self.chromium is not None
            and self.chromium.alive()
            and self.browser is not None
            and bool(self.browser._connection._connected)
        )

    def ensure(self) -> None:
        if self.runs >= self.settings.browser_recycle_after:
            self.restart(f"recycling after {self.runs} runs")
        elif not self._healthy():
            self.restart("starting" if self.chromium is None else "Chromium is gone")

    def restart(self, reason: str) -> None:
        self.close_browser()
        log.info("launching Chromium (%s)", reason)
        if self.launches == 0:
            sweep_orphans()
        try:
            self.chromium = launch(self.settings.chromium_path, self.proxy.port)
            self.browser = self.loop.run_until_complete(
                pyppeteer.connect(browserWSEndpoint=self.chromium.endpoint, defaultViewport=None)
            )
        except (BrowserLaunchError, PyppeteerError, OSError) as exc:
            self.close_browser()
            raise BrowserUnavailable(f"cannot start Chromium: {exc}") from exc
        self.launches += 1
        self.runs = 0

    def close_browser(self) -> None:
        if self.browser is not None:
            try:
                self.loop.run_until_complete(asyncio.wait_for(self.browser.disconnect(), 5))
            except Exception as exc:  # noqa: BLE001 - it is being killed anyway
                log.debug("disconnect failed: %s", exc)
            self.browser = None
        if self.chromium is not None:
            self.chromium.kill()
            self.chromium = None

    def close(self) -> None:
        if os.getpid() != self.pid:
            return  # a forked child does not own its parent's browser
        self.close_browser()
        self.proxy.stop()

    # ------------------------------------------------------------ runs
    def run(self, check: Check, request: RunRequest, deliveries: int) -> RunResult:
        self.ensure()
        self.runs += 1
        observation = Observation(started_at=datetime.now(UTC))
        placeholders = Placeholders(self.settings.variables, self.settings.public_variables)
        secrets: set[str] = set()
        self.proxy.state.take()
        try:
            with self.proxy.check_run():
                self.loop.run_until_complete(
                    self._run(check, request, observation, placeholders, secrets)
                )
        except BrowserUnavailable:
            self.close_browser()
            raise
        if self.chromium is None or not self.chromium.alive():
            self.close_browser()
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

    async def _run(
        self,
        check: Check,
        request: RunRequest,
        observation: Observation,
        placeholders: Placeholders,
        secrets: set[str],
    ) -> None:
        spec = check.browser
        assert spec is not None
        deadline = time.monotonic() + spec.timeout
        context = await self._control(
            self.browser.createIncognitoBrowserContext(), "open a context"
        )
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
            artifacts = store_for(self.settings)
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
                refusals=self.proxy.state.take,
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
                await self._steps(ctx, check, observation, deadline)
            # Refused after the last step began (a script's late request): recorded too.
            events.blocked(self.proxy.state.take())
            await self._finish_page(
                page, events, observation, redactor_for(frozenset(secrets | placeholders.used))
            )
        finally:
            try:
                await asyncio.wait_for(context.close(), CONTROL_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a context that will not close means a sick browser
                log.warning("closing the context failed (%s); restarting Chromium", exc)
                self.runs = self.settings.browser_recycle_after

    async def _steps(
        self, ctx: StepContext, check: Check, observation: Observation, deadline: float
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
                observation.fail(*await self._failure(spec.timeout, index, step, exc))
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
            if self.chromium is not None and self.chromium.alive():
                try:
                    await ctx.screenshot("failure")
                except Exception as exc:  # noqa: BLE001 - the failure matters more than its picture
                    log.warning("no screenshot of the failure: %s", exc)

    async def _failure(
        self, check_timeout: float, index: int, step: Any, exc: Exception
    ) -> tuple[str, str]:
        """(error kind, message) for a step that raised ``exc``."""
        where = f"step {index + 1} ({describe(step)})"
        if isinstance(exc, StepFailed):
            return exc.kind, f"{where}: {exc}"
        if isinstance(exc, TimeoutError):
            return TIMEOUT, f"check timed out after {check_timeout:g}s in {where}"
        if isinstance(exc, UndefinedVariable):
            return CONFIG, f"{where}: {exc}"
        if not await self._survives():
            return BROWSER, f"Chromium crashed during {where}"
        if "Target closed" in str(exc):
            return BROWSER, f"the page crashed during {where}"
        log.warning("%s failed unexpectedly", where, exc_info=exc)
        return BROWSER, f"{where}: {(str(exc).splitlines() or [type(exc).__name__])[0][:RAW_LIMIT]}"

    async def _survives(self, grace: float = 1.0) -> bool:
        """Whether the browser is still healthy after an error (a dying one gets ``grace`` s)."""
        deadline = time.monotonic() + grace
        while self._healthy():
            if time.monotonic() >= deadline:
                return True
            await asyncio.sleep(0.05)
        return False

    async def _finish_page(
        self, page: Any, events: PageEvents, observation: Observation, redactor: Redactor
    ) -> None:
        alive = self.chromium is not None and self.chromium.alive()

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


def host(settings: Settings) -> BrowserHost:
    global _host  # noqa: PLW0603 - one browser host per worker process
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
