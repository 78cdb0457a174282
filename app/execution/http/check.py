"""Running an HTTP check: one request (and its redirects), timed, bounded, asserted.

Everything the target can do wrong (refuse, time out, fail DNS or TLS, answer slowly,
answer wrongly) ends as a *failed check* with a clear error. Only a bug in synmon
raises out of ``run_http_check``.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import (
    ConnectTimeout,
    InvalidURL,
    ReadTimeout,
    SSLError,
    TooManyRedirects,
)

from app.definitions.models import Assertion, Check
from app.definitions.placeholders import Placeholders, UndefinedVariable
from app.execution import assertions as engine
from app.execution.guard import ForbiddenTarget, TargetGuard
from app.execution.http.transport import (
    Probe,
    current_probe,
    days_until,
    guarded_session,
    watchdog,
)
from app.execution.origins import same_origin
from app.execution.outcome import (
    ASSERTION,
    CONFIG,
    FORBIDDEN,
    NETWORK,
    TIMEOUT,
    Observation,
    to_result,
)
from app.execution.redact import Redactor, redactor_for
from app.execution.runs import RunRequest, RunResult
from config.settings import Settings

MAX_REDIRECTS = 10
CHUNK = 64 * 1024
# Response headers whose values are credentials of the monitored service.
SENSITIVE_HEADERS = frozenset({"set-cookie", "authorization", "proxy-authorization", "cookie"})
# Request headers that carry credentials whoever set them (requests adds Authorization
# for user:password@ in a URL); never sent on to another origin.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
BODY_HEADERS = ("Content-Type", "Content-Length", "Transfer-Encoding")
HEADER_VALUE_LIMIT = 500
MAX_HEADERS_SHOWN = 50
DEFAULT_ASSERTION = Assertion(source="status_code", comparison="less_than", target=400)
USER_AGENT = "synmon (+https://github.com/synmon/synmon)"


class _Deadline(Exception):
    pass


def _prepare(check: Check, placeholders: Placeholders) -> tuple[requests.Request, dict[str, Any]]:
    spec = check.request
    assert spec is not None
    headers = {"User-Agent": USER_AGENT, **placeholders.value(spec.headers)}
    body = spec.body
    data: Any = None
    if isinstance(body, dict | list):
        data = json.dumps(placeholders.value(body))
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = placeholders.text(body).encode()
    auth_header: dict[str, Any] = {}
    if spec.basic_auth is not None:
        user = placeholders.text(spec.basic_auth.username)
        password = placeholders.text(spec.basic_auth.password)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        auth_header["secret"] = token
    prepared = requests.Request(
        method=spec.method,
        url=placeholders.text(spec.url),
        headers=headers,
        params=placeholders.value(spec.query) or None,
        data=data,
    )
    return prepared, auth_header


def _read_body(response: requests.Response, limit: int, probe: Probe) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
        if probe.expired or (probe.remaining() or 0.0) < 0:
            raise _Deadline
    if probe.expired:
        # The watchdog cut the connection: the end of this body is the deadline's doing
        # (a body that runs until the connection closes would look complete).
        raise _Deadline
    return b"".join(chunks), False


def _decode(body: bytes, response: requests.Response) -> str:
    encoding = response.encoding or "utf-8"
    try:
        return body.decode(encoding, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _network_error(exc: Exception, url: str, redactor: Redactor) -> tuple[str, str]:
    """(kind, message) for an exception that requests raised.

    The exception's text can quote the URL (and so a secret in its query): it is
    redacted before it is cut.
    """
    host = urlsplit(url).hostname or url
    text = redactor.text(str(exc))
    if isinstance(exc, ConnectTimeout):
        return TIMEOUT, f"connecting to {host} timed out"
    if isinstance(exc, ReadTimeout):
        return TIMEOUT, f"{host} did not answer in time"
    if isinstance(exc, SSLError):
        reason = text.split("SSLError(", 1)[-1].rstrip(")'\"") if "SSLError(" in text else text
        return NETWORK, f"TLS error with {host}: {reason}"
    if "DNS lookup" in text:
        return NETWORK, f"DNS lookup of {host} failed"
    if "Connection refused" in text or "ECONNREFUSED" in text:
        return NETWORK, f"connection to {host} refused"
    if isinstance(exc, RequestsConnectionError):
        cause = text.split("Caused by ", 1)[-1][:300]
        return NETWORK, f"connection to {host} failed: {cause}"
    return NETWORK, f"request to {host} failed: {text[:300]}"


def run_http_check(
    check: Check,
    request: RunRequest,
    settings: Settings,
    guard: TargetGuard,
    deliveries: int = 1,
) -> RunResult:
    spec = check.request
    assert spec is not None, "run_http_check needs an http check"
    observation = Observation(started_at=datetime.now(UTC))
    placeholders = Placeholders(settings.variables, settings.public_variables)
    secrets: set[str] = set()
    probe = Probe(guard=guard)
    token = current_probe.set(probe)
    session = guarded_session()
    response: requests.Response | None = None
    try:
        try:
            prepared_request, auth = _prepare(check, placeholders)
            if auth:
                secrets.add(auth["secret"])
            check_headers = {name.lower() for name in prepared_request.headers}
        except UndefinedVariable as exc:
            observation.fail(CONFIG, str(exc))
            return _finish(check, request, observation, settings, deliveries, placeholders, secrets)

        # Every secret is known once the request is filled in: from here each text that
        # may echo one is redacted before it is cut.
        redactor = redactor_for(_secrets(settings, placeholders, secrets))
        deadline = observation.started + spec.timeout
        probe.deadline = deadline
        url = prepared_request.url
        prepared = session.prepare_request(prepared_request)
        redirects = 0
        alarm = watchdog.arm(deadline, probe.abort)
        try:
            while True:
                remaining = max(0.001, deadline - time.perf_counter())
                response = session.send(
                    prepared,
                    allow_redirects=False,
                    stream=True,
                    timeout=(remaining, remaining),
                    verify=False if spec.skip_tls_verify else (settings.ca_bundle or True),
                )
                observation.timings["first_byte_ms"] = round(
                    (time.perf_counter() - observation.started) * 1000, 2
                )
                if not (spec.follow_redirects and response.is_redirect):
                    break
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")
                prepared = _follow(session, prepared, response, check_headers)
                response.close()
            body, truncated = _read_body(response, settings.max_response_bytes, probe)
        except ForbiddenTarget as exc:
            observation.fail(FORBIDDEN, str(exc))
        except _Deadline:
            observation.fail(
                TIMEOUT, f"no complete response within the timeout of {spec.timeout:g}s"
            )
        except TooManyRedirects as exc:
            observation.fail(NETWORK, str(exc))
        except InvalidURL as exc:
            observation.fail(CONFIG, f"invalid URL: {exc}")
        except (requests.RequestException, OSError) as exc:
            if probe.expired or time.perf_counter() >= deadline:
                observation.fail(
                    TIMEOUT, f"no complete response within the timeout of {spec.timeout:g}s"
                )
            else:
                kind, message = _network_error(exc, url or spec.url, redactor)
                observation.fail(kind, message)
        finally:
            watchdog.disarm(alarm)
        observation.stop()
        _record_timings(observation, probe)
        if observation.error is None and response is not None:
            _assert(
                check, observation, response, body, truncated, probe, settings, redirects, redactor
            )
        return _finish(check, request, observation, settings, deliveries, placeholders, secrets)
    finally:
        if response is not None:
            response.close()
        session.close()
        current_probe.reset(token)


def _follow(
    session: requests.Session,
    previous: requests.PreparedRequest,
    response: requests.Response,
    check_headers: set[str],
) -> requests.PreparedRequest:
    """The request a browser would make for this redirect (and nothing else).

    303, and 301/302 after a POST, turn into a GET without a body. A check's headers
    and credentials stay with their origin: on a redirect to another scheme, host or
    port, every header the check set (its basic_auth, Authorization, Cookie and any
    custom header) is dropped, and stays dropped for the hops after it.
    """
    url = urljoin(response.url, response.headers["location"])
    method = previous.method or "GET"
    body = previous.body
    headers = dict(previous.headers)
    if (response.status_code == 303 and method != "HEAD") or (
        response.status_code in (301, 302) and method == "POST"
    ):
        method, body = "GET", None
        for name in BODY_HEADERS:
            headers.pop(name, None)
    if not same_origin(url, previous.url or ""):
        headers = {
            name: value
            for name, value in headers.items()
            if name.lower() not in check_headers | CREDENTIAL_HEADERS
            or (body is not None and name in BODY_HEADERS)  # they describe the body
        }
        headers.setdefault("User-Agent", USER_AGENT)
    headers.pop("Host", None)
    return session.prepare_request(
        requests.Request(method=method, url=url, headers=headers, data=body)
    )


def _record_timings(observation: Observation, probe: Probe) -> None:
    timings = observation.timings
    timings.update(
        dns_ms=round(probe.dns_ms, 2),
        connect_ms=round(probe.connect_ms, 2),
        tls_ms=round(probe.tls_ms, 2),
        total_ms=observation.duration_ms,
    )
    if "first_byte_ms" in timings:
        connection = probe.dns_ms + probe.connect_ms + probe.tls_ms
        timings["wait_ms"] = round(max(0.0, timings["first_byte_ms"] - connection), 2)
        timings["download_ms"] = round(
            max(0.0, observation.duration_ms - timings["first_byte_ms"]), 2
        )


def _assert(
    check: Check,
    observation: Observation,
    response: requests.Response,
    body: bytes,
    truncated: bool,
    probe: Probe,
    settings: Settings,
    redirects: int,
    redactor: Redactor,
) -> None:
    text = _decode(body, response)
    headers = {k: v for k, v in response.headers.items()}
    facts = engine.ResponseFacts(
        status_code=response.status_code,
        headers=headers,
        text=text,
        response_time_ms=observation.duration_ms,
        tls_days_until_expiry=(
            days_until(probe.certificate_not_after) if probe.certificate_not_after else None
        ),
    )
    assertions = check.assertions or [DEFAULT_ASSERTION]
    outcomes = engine.judge(assertions, facts)
    if redactor.active:
        outcomes = _shown_redacted(assertions, outcomes, facts, redactor)
    observation.assertions = [o.as_dict() for o in outcomes]
    failed = [o for o in outcomes if not o.passed]
    if failed:
        first = failed[0]
        target = "" if first.target is None else f" {first.target!r}"
        prop = f" {first.property}" if first.property else ""
        reason = f": {first.error}" if first.error else f" (actual: {first.actual!r})"
        observation.fail(
            ASSERTION,
            f"assertion failed: {first.source}{prop} {first.comparison}{target}{reason}"
            + (f", and {len(failed) - 1} more" if len(failed) > 1 else ""),
        )
    observation.response = {
        "status_code": response.status_code,
        "url": redactor.text(response.url),
        "redirects": redirects,
        "remote_address": probe.remote_address,
        "http_version": {10: "1.0", 11: "1.1"}.get(getattr(response.raw, "version", 11), "1.1"),
        "headers": {
            redactor.cut(k, HEADER_VALUE_LIMIT): (
                "[REDACTED]"
                if k.lower() in SENSITIVE_HEADERS
                else redactor.cut(v, HEADER_VALUE_LIMIT)
            )
            for k, v in list(headers.items())[:MAX_HEADERS_SHOWN]
        },
        "body_bytes": len(body),
        "body_truncated": truncated,
        "body_excerpt": redactor.cut(text, settings.response_excerpt_bytes, already_cut=truncated),
    }
    if probe.certificate_not_after is not None:
        observation.response["tls_not_after"] = probe.certificate_not_after.isoformat()


def _shown_redacted(
    assertions: list[Assertion],
    outcomes: list[engine.AssertionOutcome],
    facts: engine.ResponseFacts,
    redactor: Redactor,
) -> list[engine.AssertionOutcome]:
    """``outcomes`` with each actual value read from the redacted response.

    The assertion engine shortens the actual values it reports; a secret cut there
    would no longer be found by the redaction of the result. So the verdicts come from
    the real response and the values shown from a redacted copy of it, read the same way.
    """
    redacted = engine.ResponseFacts(
        status_code=facts.status_code,
        headers=redactor.value(facts.headers),
        text=redactor.text(facts.text),
        response_time_ms=facts.response_time_ms,
        tls_days_until_expiry=facts.tls_days_until_expiry,
    )
    shown = engine.judge(assertions, redacted)
    return [
        replace(
            outcome, actual=display.actual, error=outcome.error and redactor.text(outcome.error)
        )
        for outcome, display in zip(outcomes, shown, strict=True)
    ]


def _finish(
    check: Check,
    request: RunRequest,
    observation: Observation,
    settings: Settings,
    deliveries: int,
    placeholders: Placeholders,
    secrets: set[str],
) -> RunResult:
    if not observation.duration_ms:
        observation.stop()
    return to_result(check, request, observation, settings, deliveries, secrets | placeholders.used)


def _secrets(settings: Settings, placeholders: Placeholders, extra: set[str]) -> frozenset[str]:
    """The secrets ``to_result`` redacts (the same set, so the same cached redactor)."""
    return frozenset([*settings.variables.values(), *extra, *placeholders.used])
