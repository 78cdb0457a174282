"""Browser checks: declarative steps, run in a fresh incognito context.

Nothing a check author writes runs as Python: each step is one of a fixed set of
actions with typed arguments; ``evaluate`` runs JavaScript inside the page only.
Text assertions (assert_text, assert_title, assert_url) use the assertion engine's
``compare`` and wait for the page to satisfy them, up to the step's timeout.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pyppeteer.errors import PyppeteerError
from pyppeteer.errors import TimeoutError as PyppeteerTimeout

from app.assertions import compare
from app.browser.proxy import Refusal
from app.checks.models import (
    BasicAuth,
    Check,
    EvaluateStep,
    GotoStep,
    HeaderStep,
    PressStep,
    ScreenshotStep,
    SelectorStep,
    SelectStep,
    Step,
    TextMatch,
    Viewport,
    WaitForStep,
)
from app.outcome import ASSERTION, FORBIDDEN, NETWORK, TIMEOUT
from app.placeholders import Placeholders

DEFAULT_STEP_TIMEOUT = 30.0
# How long assert_title and assert_url wait for the page to come round (they have no
# timeout field: a title or URL that is wrong for 5 s is wrong).
TEXT_WAIT = 5.0
POLL = 0.1
MAX_EVENTS = 50
TEXT_LIMIT = 300
NAVIGATION_TIMINGS_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  if (!n) return null;
  return {
    ttfb_ms: n.responseStart - n.requestStart,
    dom_content_loaded_ms: n.domContentLoadedEventEnd - n.startTime,
    load_ms: n.loadEventEnd > 0 ? n.loadEventEnd - n.startTime : null,
    first_contentful_paint_ms: fcp ? fcp.startTime : null,
  };
}"""


class StepFailed(Exception):  # the step failed; the check records why
    def __init__(self, message: str, kind: str = ASSERTION) -> None:
        super().__init__(message)
        self.kind = kind


class GuardRefused(StepFailed):
    def __init__(self, message: str) -> None:
        super().__init__(message, FORBIDDEN)


@dataclass
class PageEvents:
    """What the page reported while the steps ran."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[dict[str, Any]] = field(default_factory=list)
    main_navigations: int = 0

    def console(self, message: Any) -> None:
        if message.type == "error" and len(self.console_errors) < MAX_EVENTS:
            self.console_errors.append(str(message.text)[:TEXT_LIMIT])

    def page_error(self, error: Any) -> None:
        if len(self.console_errors) < MAX_EVENTS:
            self.console_errors.append(f"uncaught: {str(error)[:TEXT_LIMIT]}")

    def request_failed(self, request: Any) -> None:
        if len(self.failed_requests) < MAX_EVENTS:
            failure = request.failure() or {}
            self.failed_requests.append(
                {"url": request.url[:TEXT_LIMIT], "error": failure.get("errorText", "failed")}
            )

    def response(self, response: Any) -> None:
        if response.status >= 400 and len(self.failed_requests) < MAX_EVENTS:
            self.failed_requests.append(
                {"url": response.url[:TEXT_LIMIT], "status": response.status}
            )

    def blocked(self, refusals: list[Refusal]) -> None:
        for refusal in refusals[: MAX_EVENTS - len(self.failed_requests)]:
            self.failed_requests.append(
                {"url": f"{refusal.host}:{refusal.port}", "error": refusal.reason, "blocked": True}
            )


@dataclass
class StepContext:
    page: Any
    check: Check
    placeholders: Placeholders
    deadline: float  # time.monotonic() by which the whole check must end
    screenshot: Any  # async (name) -> artifact dict
    refusals: Any  # () -> list[Refusal] taken since the last call
    events: PageEvents
    headers: dict[str, str] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    navigations_at_step_start: int = 0

    def timeout(self, step_timeout: float | None) -> float:
        remaining = self.deadline - time.monotonic()
        return max(0.05, min(step_timeout or DEFAULT_STEP_TIMEOUT, remaining))


def describe(step: Step) -> str:
    args = step.args
    detail = (
        args.get("url")
        or args.get("selector")
        or args.get("key")
        or args.get("expression")
        or args.get("name")
        or next(
            (
                v
                for k, v in args.items()
                if k in ("contains", "equals", "matches", "not_contains", "not_equals")
            ),
            "",
        )
    )
    text = str(detail)
    return f"{step.action} {text[:80]!r}" if text else step.action


async def _element(ctx: StepContext, selector: str, timeout: float, visible: bool = True) -> Any:
    try:
        return await ctx.page.waitForSelector(selector, visible=visible, timeout=timeout * 1000)
    except PyppeteerTimeout:
        raise StepFailed(
            f"no {'visible ' if visible else ''}element matches {selector!r} after {timeout:g}s"
        ) from None


async def _until(probe: Any, comparison: str, target: str, timeout: float, what: str) -> None:
    """Poll ``probe()`` until it satisfies the comparison, or fail with the last value."""
    deadline = time.monotonic() + timeout
    actual: Any = None
    while True:
        actual = await probe()
        if compare(actual, comparison, target):
            return
        if time.monotonic() >= deadline:
            shown = str(actual)[:TEXT_LIMIT]
            raise StepFailed(
                f"{what} {comparison} {target!r} failed after {timeout:g}s (actual: {shown!r})"
            )
        await asyncio.sleep(POLL)


def _refused(ctx: StepContext, url: str | None) -> None:
    """Fail a navigation whose own target the guard refused (the proxy's 403 is not the site's)."""
    refusals: list[Refusal] = ctx.refusals()
    ctx.events.blocked(refusals)
    if url is None:
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for refusal in refusals:
        if (refusal.host, refusal.port) == (parts.hostname, port):
            raise GuardRefused(refusal.reason)


async def goto(ctx: StepContext, step: GotoStep) -> None:
    url = ctx.placeholders.text(step.url)
    timeout = ctx.timeout(step.timeout)
    try:
        response = await ctx.page.goto(url, waitUntil=step.wait_until, timeout=timeout * 1000)
    except PyppeteerTimeout:
        _refused(ctx, url)
        raise StepFailed(
            f"page did not finish loading ({step.wait_until}) within {timeout:g}s", TIMEOUT
        ) from None
    except PyppeteerError as exc:
        _refused(ctx, url)
        raise StepFailed(f"navigation failed: {str(exc).splitlines()[0]}", NETWORK) from None
    _refused(ctx, url)
    if response is not None and response.status >= 400:
        raise StepFailed(f"{url} answered {response.status}")


async def click(ctx: StepContext, step: SelectorStep) -> None:
    element = await _element(ctx, step.selector, ctx.timeout(step.timeout))
    await element.click()


async def hover(ctx: StepContext, step: SelectorStep) -> None:
    element = await _element(ctx, step.selector, ctx.timeout(step.timeout))
    await element.hover()


async def fill(ctx: StepContext, step: Any) -> None:
    element = await _element(ctx, step.selector, ctx.timeout(step.timeout))
    await ctx.page.evaluate("(el) => { el.value = ''; }", element)
    await element.type(ctx.placeholders.text(step.value))


async def select(ctx: StepContext, step: SelectStep) -> None:
    await _element(ctx, step.selector, ctx.timeout(step.timeout))
    values = [ctx.placeholders.text(v) for v in step.values]
    chosen = await ctx.page.select(step.selector, *values)
    if not chosen:
        raise StepFailed(f"{step.selector!r} has no option with value {', '.join(values)!r}")


async def press(ctx: StepContext, step: PressStep) -> None:
    if step.selector:
        element = await _element(ctx, step.selector, ctx.timeout(step.timeout))
        await element.press(step.key)
    else:
        await ctx.page.keyboard.press(step.key)


async def wait_for(ctx: StepContext, step: WaitForStep) -> None:
    timeout = ctx.timeout(step.timeout)
    if step.selector and step.hidden:
        await _wait_hidden(ctx, step.selector, timeout)
    elif step.selector:
        await _element(ctx, step.selector, timeout)
    elif step.text:
        text = ctx.placeholders.text(step.text)
        await _until(_body_text(ctx), "contains", text, timeout, "page text")
    else:
        # A navigation since the previous step began counts: the click that caused it
        # may have finished before this step started to wait.
        deadline = time.monotonic() + timeout
        while ctx.events.main_navigations <= ctx.navigations_at_step_start:
            if time.monotonic() >= deadline:
                raise StepFailed(f"no navigation within {timeout:g}s")
            await asyncio.sleep(POLL)
        await _until(
            lambda: ctx.page.evaluate("document.readyState"),
            "equals",
            "complete",
            max(0.05, deadline - time.monotonic()),
            "document.readyState",
        )


async def _wait_hidden(ctx: StepContext, selector: str, timeout: float) -> None:
    try:
        await ctx.page.waitForSelector(selector, hidden=True, timeout=timeout * 1000)
    except PyppeteerTimeout:
        raise StepFailed(f"{selector!r} still visible after {timeout:g}s") from None


def _body_text(ctx: StepContext) -> Any:
    return lambda: ctx.page.evaluate("document.body ? document.body.innerText : ''")


async def assert_text(ctx: StepContext, step: Any) -> None:
    timeout = ctx.timeout(step.timeout)
    await _element(ctx, step.selector, timeout, visible=False)
    comparison, target = step.comparison

    async def text() -> Any:
        return await ctx.page.querySelectorEval(
            step.selector, "(el) => el.innerText || el.textContent || ''"
        )

    await _until(
        text, comparison, ctx.placeholders.text(target), timeout, f"text of {step.selector!r}"
    )


async def assert_title(ctx: StepContext, step: TextMatch) -> None:
    comparison, target = step.comparison
    await _until(ctx.page.title, comparison, target, ctx.timeout(TEXT_WAIT), "title")


async def assert_url(ctx: StepContext, step: TextMatch) -> None:
    comparison, target = step.comparison

    async def url() -> str:
        return str(ctx.page.url)

    await _until(url, comparison, target, ctx.timeout(TEXT_WAIT), "URL")


async def assert_visible(ctx: StepContext, step: SelectorStep) -> None:
    await _element(ctx, step.selector, ctx.timeout(step.timeout))


async def assert_hidden(ctx: StepContext, step: SelectorStep) -> None:
    await _wait_hidden(ctx, step.selector, ctx.timeout(step.timeout))


async def evaluate(ctx: StepContext, step: EvaluateStep) -> None:
    try:
        value = await asyncio.wait_for(
            ctx.page.evaluate(step.expression, force_expr=True), ctx.timeout(step.timeout)
        )
    except TimeoutError:
        raise StepFailed(
            f"expression did not finish within {ctx.timeout(step.timeout):g}s"
        ) from None
    except PyppeteerError as exc:
        raise StepFailed(f"expression threw: {str(exc).splitlines()[0][:TEXT_LIMIT]}") from None
    if not value:
        raise StepFailed(f"expression returned {value!r}, not a truthy value")


async def screenshot(ctx: StepContext, step: ScreenshotStep) -> None:
    await ctx.screenshot(step.name, step.full_page)


async def set_header(ctx: StepContext, step: HeaderStep) -> None:
    ctx.headers[step.name] = ctx.placeholders.text(step.value)
    await ctx.page.setExtraHTTPHeaders(ctx.headers)


async def viewport(ctx: StepContext, step: Viewport) -> None:
    await ctx.page.setViewport({"width": step.width, "height": step.height})


async def basic_auth(ctx: StepContext, step: BasicAuth) -> None:
    # pyppeteer's authenticate() needs request interception, which current Chromium
    # no longer offers it; the header does the same for every request of the page.
    await apply_basic_auth(ctx, step)


async def apply_basic_auth(ctx: StepContext, auth: BasicAuth) -> None:
    user, password = ctx.placeholders.text(auth.username), ctx.placeholders.text(auth.password)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    ctx.secrets.add(token)
    ctx.headers["Authorization"] = f"Basic {token}"
    await ctx.page.setExtraHTTPHeaders(ctx.headers)


ACTIONS: dict[str, Callable[[StepContext, Any], Awaitable[None]]] = {
    "goto": goto,
    "click": click,
    "fill": fill,
    "select": select,
    "press": press,
    "hover": hover,
    "wait_for": wait_for,
    "assert_text": assert_text,
    "assert_title": assert_title,
    "assert_url": assert_url,
    "assert_visible": assert_visible,
    "assert_hidden": assert_hidden,
    "evaluate": evaluate,
    "screenshot": screenshot,
    "set_header": set_header,
    "viewport": viewport,
    "basic_auth": basic_auth,
}


async def run_step(ctx: StepContext, step: Step) -> None:
    ctx.navigations_at_step_start = ctx.events.main_navigations
    await ACTIONS[step.action](ctx, step.parsed())
    # Subresources the guard refused are recorded as failed requests; the page goes on.
    _refused(ctx, None)
