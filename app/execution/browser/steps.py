"""Browser checks: declarative steps, run in a fresh incognito context.

Nothing a check author writes runs as Python: each step is one of a fixed set of
actions with typed arguments; ``evaluate`` runs JavaScript inside the page only.
Text assertions (assert_text, assert_title, assert_url) use the assertion engine's
``compare`` and wait for the page to satisfy them, up to the step's timeout.

Three promises about pages that do things on their own:
- A step outlives navigations: when the document it was waiting or asserting in goes
  away (a script's location.href, a meta refresh, a form post), it goes on in the new
  document until its own timeout, as Puppeteer's waitForSelector does.
- Headers and credentials go to the check's own origins only (``own_origins``).
- A secret typed by a fill step is hidden from every screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pyppeteer.errors import PyppeteerError
from pyppeteer.errors import TimeoutError as PyppeteerTimeout

from app.definitions.models import (
    PLACEHOLDER_RE,
    AssertTextStep,
    BasicAuth,
    Check,
    EvaluateStep,
    FillStep,
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
from app.definitions.patterns import PatternError
from app.definitions.placeholders import Placeholders, UndefinedVariable
from app.execution.assertions import compare
from app.execution.browser.proxy import Refusal
from app.execution.origins import Origin, origin_of
from app.execution.outcome import ASSERTION, CONFIG, FORBIDDEN, NETWORK, TIMEOUT
from config.errors import SynmonError

log = logging.getLogger("synmon.browser")
Result = TypeVar("Result")
DEFAULT_STEP_TIMEOUT = 30.0
# How long assert_title and assert_url wait for the page to come round (they have no
# timeout field: a title or URL that is wrong for 5 s is wrong).
TEXT_WAIT = 5.0
POLL = 0.1
MAX_EVENTS = 50
# What a result shows of a console line or URL. A secret may sit anywhere in the text,
# so texts are kept up to RAW_LIMIT (memory's bound) and cut to TEXT_LIMIT only after
# redaction (BrowserHost._finish_page); errors are cut by redact_result.
TEXT_LIMIT = 300
RAW_LIMIT = 16 * 1024
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


class StepFailed(SynmonError):  # the step failed; the check records why
    def __init__(self, message: str, kind: str = ASSERTION) -> None:
        super().__init__(message)
        self.kind = kind


class GuardRefused(StepFailed):
    def __init__(self, message: str) -> None:
        super().__init__(message, FORBIDDEN)


class PageCrashed(RuntimeError):
    """The page's renderer died under a step: a browser error of this run alone."""


@dataclass
class PageEvents:
    """What the page reported while the steps ran."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[dict[str, Any]] = field(default_factory=list)
    main_navigations: int = 0
    crashed: bool = False  # the page's renderer died: nothing more will happen in it
    crash: asyncio.Event = field(default_factory=asyncio.Event)  # set with ``crashed``

    def page_crashed(self, error: Any) -> None:
        self.crashed = True
        self.crash.set()

    def console(self, message: Any) -> None:
        if message.type == "error" and len(self.console_errors) < MAX_EVENTS:
            self.console_errors.append(str(message.text)[:RAW_LIMIT])

    def page_error(self, error: Any) -> None:
        if len(self.console_errors) < MAX_EVENTS:
            self.console_errors.append(f"uncaught: {str(error)[:RAW_LIMIT]}")

    def request_failed(self, request: Any) -> None:
        if len(self.failed_requests) < MAX_EVENTS:
            failure = request.failure() or {}
            self.failed_requests.append(
                {"url": request.url[:RAW_LIMIT], "error": failure.get("errorText", "failed")}
            )

    def response(self, response: Any) -> None:
        if response.status >= 400 and len(self.failed_requests) < MAX_EVENTS:
            self.failed_requests.append(
                {"url": response.url[:RAW_LIMIT], "status": response.status}
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
    # Secret values that fill steps typed into the page: hidden from every screenshot.
    typed_secrets: set[str] = field(default_factory=set)
    navigations_at_step_start: int = 0
    own_origins: frozenset[Origin] = frozenset()  # where headers go: see own_origins()
    origin_headers: OwnOriginHeaders | None = None  # started by the first header

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


# What pyppeteer raises when the document a call was running in went away under it (a
# navigation replaced it). Puppeteer's waitForSelector then runs again in the new
# document; pyppeteer's does so for some of these messages only, so steps do it here.
DOCUMENT_GONE = (
    "Execution context was destroyed",
    "Inspected target navigated or closed",
    "Cannot find context with specified id",
    "Execution context is not available in detached frame",
    "Node is detached from document",
    "No node with given id found",
    "Cannot find object with id",
)


def document_gone(exc: BaseException) -> bool:
    """Whether ``exc`` only says that the page navigated while a call was running."""
    return isinstance(exc, PyppeteerError) and any(marker in str(exc) for marker in DOCUMENT_GONE)


async def in_document(
    ctx: StepContext, call: Callable[[float], Awaitable[Result]], deadline: float
) -> Result:
    """``call(seconds_left)``, made again in the new document each time a navigation takes
    the one it ran in away, until ``deadline`` (time.monotonic()); a page still
    navigating then is a timeout, as if the call had waited in vain. A crashed or closed
    page is not a navigation: its error goes up at once."""
    while True:
        try:
            return await call(max(0.05, deadline - time.monotonic()))
        except PyppeteerError as exc:
            if not document_gone(exc) or _page_lost(ctx):
                raise
            if time.monotonic() >= deadline:
                raise PyppeteerTimeout("the page kept navigating") from exc
        await asyncio.sleep(POLL)  # the new document's context comes up in the meantime


def _page_lost(ctx: StepContext) -> bool:
    return ctx.events.crashed or bool(ctx.page.isClosed())


async def _element(
    ctx: StepContext,
    selector: str,
    timeout: float,
    visible: bool = True,
    deadline: float | None = None,
) -> Any:
    """The element, once there (and visible); ``timeout`` is the step's, ``deadline`` may
    come sooner when part of the step's time went before."""
    if deadline is None:
        deadline = time.monotonic() + timeout

    async def wait(seconds: float) -> Any:
        return await ctx.page.waitForSelector(selector, visible=visible, timeout=seconds * 1000)

    try:
        return await in_document(ctx, wait, deadline)
    except PyppeteerTimeout:
        raise StepFailed(
            f"no {'visible ' if visible else ''}element matches {selector!r} after {timeout:g}s"
        ) from None


async def _act(
    ctx: StepContext,
    selector: str,
    step_timeout: float | None,
    action: Callable[[Any], Awaitable[Any]],
) -> None:
    """Find the element, then act on it; a navigation in between finds it again in the new
    document (the action had not happened: its preparation failed before any input)."""
    timeout = ctx.timeout(step_timeout)
    deadline = time.monotonic() + timeout

    async def attempt(_: float) -> None:
        await action(await _element(ctx, selector, timeout, deadline=deadline))

    try:
        await in_document(ctx, attempt, deadline)
    except PyppeteerTimeout:
        raise StepFailed(
            f"{selector!r} went away with each navigation of the page for {timeout:g}s"
        ) from None


async def _until(
    ctx: StepContext,
    probe: Callable[[], Awaitable[Any]],
    comparison: str,
    target: str,
    timeout: float,
    what: str,
    deadline: float | None = None,
) -> None:
    """Poll ``probe()`` until it satisfies the comparison, or fail with the last value.

    ``timeout`` is the step's (named in the message); ``deadline`` may end it sooner when
    part of the step's time went before. A probe cut short by a navigation is asked
    again in the new document."""
    if deadline is None:
        deadline = time.monotonic() + timeout
    actual: Any = None
    while True:
        try:
            actual = await probe()
        except PyppeteerError as exc:
            if not document_gone(exc) or _page_lost(ctx):
                raise
        else:
            try:
                if compare(actual, comparison, target):
                    return
            except PatternError as exc:  # from a snapshot an older release accepted
                raise StepFailed(f"{what} {comparison}: target is {exc}", CONFIG) from None
        if time.monotonic() >= deadline:
            shown = str(actual)[:RAW_LIMIT]
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
    await _act(ctx, step.selector, step.timeout, lambda element: element.click())


async def hover(ctx: StepContext, step: SelectorStep) -> None:
    await _act(ctx, step.selector, step.timeout, lambda element: element.hover())


async def fill(ctx: StepContext, step: FillStep) -> None:
    value = ctx.placeholders.text(step.value)
    ctx.typed_secrets.update(_secret_values(ctx, step.value))

    async def type_into(element: Any) -> None:
        await ctx.page.evaluate("(el) => { el.value = ''; }", element)
        await element.type(value)

    await _act(ctx, step.selector, step.timeout, type_into)


def _secret_values(ctx: StepContext, template: str) -> set[str]:
    """The secret (SYNMON_VAR_) values that ``template`` is filled with."""
    names = {match.group(1) for match in PLACEHOLDER_RE.finditer(template)}
    return {ctx.placeholders.secrets[name] for name in names if name in ctx.placeholders.secrets}


async def select(ctx: StepContext, step: SelectStep) -> None:
    values = [ctx.placeholders.text(v) for v in step.values]
    chosen: list[str] = []

    async def choose(_: Any) -> None:
        chosen[:] = await ctx.page.select(step.selector, *values)

    await _act(ctx, step.selector, step.timeout, choose)
    if not chosen:
        raise StepFailed(f"{step.selector!r} has no option with value {', '.join(values)!r}")


async def press(ctx: StepContext, step: PressStep) -> None:
    if step.selector:
        await _act(ctx, step.selector, step.timeout, lambda element: element.press(step.key))
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
        await _until(ctx, _body_text(ctx), "contains", text, timeout, "page text")
    else:
        # A navigation since the previous step began counts: the click that caused it
        # may have finished before this step started to wait.
        deadline = time.monotonic() + timeout
        while ctx.events.main_navigations <= ctx.navigations_at_step_start:
            if time.monotonic() >= deadline:
                raise StepFailed(f"no navigation within {timeout:g}s")
            await asyncio.sleep(POLL)
        await _until(
            ctx,
            lambda: ctx.page.evaluate("document.readyState"),
            "equals",
            "complete",
            timeout,
            "document.readyState",
            deadline,
        )


async def _wait_hidden(ctx: StepContext, selector: str, timeout: float) -> None:
    async def wait(seconds: float) -> Any:
        return await ctx.page.waitForSelector(selector, hidden=True, timeout=seconds * 1000)

    try:
        await in_document(ctx, wait, time.monotonic() + timeout)
    except PyppeteerTimeout:
        raise StepFailed(f"{selector!r} still visible after {timeout:g}s") from None


def _body_text(ctx: StepContext) -> Callable[[], Awaitable[Any]]:
    return lambda: ctx.page.evaluate("document.body ? document.body.innerText : ''")


# null when the element is not there (yet): the new document may not have drawn it.
ELEMENT_TEXT_JS = """(selector) => {
  const el = document.querySelector(selector);
  return el ? (el.innerText || el.textContent || '') : null;
}"""


async def assert_text(ctx: StepContext, step: AssertTextStep) -> None:
    timeout = ctx.timeout(step.timeout)
    deadline = time.monotonic() + timeout
    await _element(ctx, step.selector, timeout, visible=False, deadline=deadline)
    comparison, target = step.comparison

    async def text() -> Any:
        return await ctx.page.evaluate(ELEMENT_TEXT_JS, step.selector)

    await _until(
        ctx,
        text,
        comparison,
        ctx.placeholders.text(target),
        timeout,
        f"text of {step.selector!r}",
        deadline,
    )


async def assert_title(ctx: StepContext, step: TextMatch) -> None:
    comparison, target = step.comparison
    await _until(ctx, ctx.page.title, comparison, target, ctx.timeout(TEXT_WAIT), "title")


async def assert_url(ctx: StepContext, step: TextMatch) -> None:
    comparison, target = step.comparison

    async def url() -> str:
        return str(ctx.page.url)

    await _until(ctx, url, comparison, target, ctx.timeout(TEXT_WAIT), "URL")


async def assert_visible(ctx: StepContext, step: SelectorStep) -> None:
    await _element(ctx, step.selector, ctx.timeout(step.timeout))


async def assert_hidden(ctx: StepContext, step: SelectorStep) -> None:
    await _wait_hidden(ctx, step.selector, ctx.timeout(step.timeout))


async def evaluate(ctx: StepContext, step: EvaluateStep) -> None:
    # Run once, not polled (an expression may have effects); but an evaluation that a
    # navigation cut short runs again in the new document.
    timeout = ctx.timeout(step.timeout)

    async def run(_: float) -> Any:
        return await ctx.page.evaluate(step.expression, force_expr=True)

    try:
        value = await asyncio.wait_for(in_document(ctx, run, time.monotonic() + timeout), timeout)
    except TimeoutError:
        raise StepFailed(f"expression did not finish within {timeout:g}s") from None
    except PyppeteerError as exc:
        raise StepFailed(f"expression threw: {str(exc).splitlines()[0][:RAW_LIMIT]}") from None
    if not value:
        raise StepFailed(f"expression returned {value!r}, not a truthy value")


async def screenshot(ctx: StepContext, step: ScreenshotStep) -> None:
    await ctx.screenshot(step.name, step.full_page)


async def set_header(ctx: StepContext, step: HeaderStep) -> None:
    ctx.headers[step.name] = ctx.placeholders.text(step.value)
    await send_headers(ctx)


async def viewport(ctx: StepContext, step: Viewport) -> None:
    await ctx.page.setViewport({"width": step.width, "height": step.height})


async def basic_auth(ctx: StepContext, step: BasicAuth) -> None:
    # pyppeteer's authenticate() needs request interception, which current Chromium
    # no longer offers it; an Authorization header to the check's own origins instead.
    await apply_basic_auth(ctx, step)


async def apply_basic_auth(ctx: StepContext, auth: BasicAuth) -> None:
    user, password = ctx.placeholders.text(auth.username), ctx.placeholders.text(auth.password)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    ctx.secrets.add(token)
    ctx.headers["Authorization"] = f"Basic {token}"
    await send_headers(ctx)


# ---------------------------------------------------------------- the check's own origins
def own_origins(check: Check, placeholders: Placeholders) -> frozenset[Origin]:
    """The check's own origins: those of the URLs its goto steps name.

    Its headers and credentials (browser.headers, browser.basic_auth, set_header,
    basic_auth) go to these and to nothing else: not to a third-party subresource,
    not to where a redirect or a link leads, even when the page itself goes there.
    """
    origins: set[Origin] = set()
    for step in check.browser.steps if check.browser else []:
        if step.action != "goto":
            continue
        try:
            origin = origin_of(placeholders.text(str(step.args["url"])))
        except UndefinedVariable:
            continue  # that goto fails with a config error before anything is sent
        if origin is not None:
            origins.add(origin)
    return frozenset(origins)


class OwnOriginHeaders:
    """Adds the check's headers to the requests for its own origins, and to no others.

    Chromium's setExtraHTTPHeaders adds them to every request of the page, whatever its
    origin. Instead each request is paused through the CDP Fetch domain (pyppeteer's
    setRequestInterception is gone from current Chromium) and continued with the headers
    added when, and only when, its URL is of an own origin. Chromium pauses every hop
    of a redirect anew, so a redirect elsewhere continues without them. Requests of
    targets that are not the page (a cross-site iframe in its own process, a service
    worker) are not paused and get no headers.
    """

    def __init__(self, page: Any, origins: frozenset[Origin], headers: dict[str, str]) -> None:
        self.page = page
        self.origins = origins
        self.headers = headers  # the step context's own dict: a later set_header counts at once
        self.session: Any = None
        self._pending: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        self.session = await self.page.target.createCDPSession()
        self.session.on("Fetch.requestPaused", self._paused)
        await self.session.send(
            "Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}
        )

    def _paused(self, event: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._continue(event))
        self._pending.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._pending.discard)

    def continued_headers(self, url: str, headers: dict[str, str]) -> dict[str, str] | None:
        """The headers a paused request to ``url`` goes on with; None to leave them be."""
        ours = {name.lower(): value for name, value in self.headers.items()}
        if origin_of(url) in self.origins:
            merged = {k: v for k, v in headers.items() if k.lower() not in ours}
            merged.update(self.headers)
            return merged
        # Not an own origin. Chromium carries none of the added headers over to a
        # redirect's next hop, but should one ever arrive here it is taken off.
        kept = {k: v for k, v in headers.items() if ours.get(k.lower()) != v}
        return kept if len(kept) != len(headers) else None

    async def _continue(self, event: dict[str, Any]) -> None:
        params: dict[str, Any] = {"requestId": event["requestId"]}
        try:
            request = event["request"]
            headers = self.continued_headers(str(request["url"]), dict(request["headers"]))
            if headers is not None:
                params["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
        except Exception:  # a request left paused would hang the page
            log.warning("a paused request goes on unchanged", exc_info=True)
            params = {"requestId": event["requestId"]}
        try:
            await self.session.send("Fetch.continueRequest", params)
        except PyppeteerError as exc:  # cancelled meanwhile: the page went elsewhere
            log.debug("continuing a paused request failed: %s", exc)


async def send_headers(ctx: StepContext) -> None:
    """From now on, ``ctx.headers`` go with every request to the check's own origins."""
    if ctx.headers and ctx.origin_headers is None:
        ctx.origin_headers = OwnOriginHeaders(ctx.page, ctx.own_origins, ctx.headers)
        await ctx.origin_headers.start()


# ---------------------------------------------------------------- screenshots
# Fields whose value holds a secret a fill step typed lose their text's colour (and
# caret) while a screenshot is taken; their style attributes are kept in the page under
# a marker, which also tells afterwards that the picture was of that same document.
HIDE_TYPED_JS = """(secrets, marker) => {
  const saved = [];
  for (const el of document.querySelectorAll('input, textarea, [contenteditable]')) {
    const text = el.isContentEditable ? el.innerText : el.value;
    if (typeof text !== 'string' || !secrets.some((s) => text.includes(s))) continue;
    saved.push([el, el.getAttribute('style')]);
    for (const p of ['color', '-webkit-text-fill-color', 'caret-color']) {
      el.style.setProperty(p, 'transparent', 'important');
    }
    el.style.setProperty('text-shadow', 'none', 'important');
  }
  window[marker] = saved;
  return saved.length;
}"""
RESTORE_TYPED_JS = """(marker) => {
  const saved = window[marker];
  if (!saved) return false;
  for (const [el, style] of saved) {
    // Set before removing: Chromium writes a style changed through el.style back to
    // the attribute lazily, and would otherwise bring back an empty style="" later.
    el.setAttribute('style', style === null ? '' : style);
    if (style === null) el.removeAttribute('style');
  }
  delete window[marker];
  return true;
}"""
HIDE_ATTEMPTS = 3


async def hiding_typed_secrets(
    page: Any, typed_secrets: set[str], take: Callable[[], Awaitable[bytes]]
) -> bytes:
    """``take()`` (a screenshot) with the secrets typed into the page hidden.

    Fields are found by their value, so a field a page re-renders, or the same value
    in another field, is hidden too. A picture taken while the page navigated away
    from the document that was hidden is thrown away and taken again.
    """
    secrets = sorted(secret for secret in typed_secrets if secret)
    if not secrets:
        return await take()
    for _ in range(HIDE_ATTEMPTS):
        marker = f"__synmon_hidden_{uuid.uuid4().hex}"
        try:
            await page.evaluate(HIDE_TYPED_JS, secrets, marker)
            data = await take()
            if await page.evaluate(RESTORE_TYPED_JS, marker):
                return data
        except PyppeteerError as exc:
            if not document_gone(exc):
                raise
        await asyncio.sleep(POLL)
    raise StepFailed(
        "no screenshot: the page kept navigating, so the secrets typed into it"
        " could not be hidden from the picture"
    )


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
    """One step; it ends with ``PageCrashed`` as soon as its page's renderer dies (a call
    into a dead renderer would otherwise wait out the step's timeout)."""
    ctx.navigations_at_step_start = ctx.events.main_navigations
    action = asyncio.ensure_future(ACTIONS[step.action](ctx, step.parsed()))
    crash = asyncio.ensure_future(ctx.events.crash.wait())
    try:
        await asyncio.wait({action, crash}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        crash.cancel()
        if not action.done():
            action.cancel()
    if not action.done() or action.cancelled():
        await asyncio.wait({action})  # its way out, whatever it raises on it
        raise PageCrashed("the page crashed")
    action.result()
    # Subresources the guard refused are recorded as failed requests; the page goes on.
    _refused(ctx, None)
