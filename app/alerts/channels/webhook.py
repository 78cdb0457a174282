"""Webhook: the event as JSON (or the channel's template), POSTed to the channel's URL.

The endpoint is a URL from a channel definition, so it goes through the same target
guard and the same guarded session as a check's request. Every HTTP channel (Slack,
Teams, PagerDuty, Opsgenie) delivers through ``post`` here.

The documented JSON body is the outbox payload (``event``, ``check_id``,
``check_name``, ``status``, ``location``, ``failing_locations``, ``run_id``,
``started_at``, ``duration_ms``, ``error``, ``attempt``), the ``incident`` it belongs
to (``id``, ``key``, ``opened_at``, ``closed_at``, ``locations``, or null) and
``text``, the event in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
import urllib3

from app.alerts.channels.base import Notifier, NotifierError, NotifierUnavailable, summary_line
from app.execution.guard import ForbiddenTarget, TargetGuard
from app.execution.http.transport import Probe, current_probe, guarded_session, watchdog

# What of an answer is kept for an error message (PagerDuty and Opsgenie say why there).
MAX_ANSWER_CHARS = 300


@dataclass(frozen=True)
class HttpPost:
    url: str
    body: dict[str, Any] | None = None  # sent as JSON
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes | None = None  # sent as it is, instead of ``body``


@dataclass(frozen=True)
class Answer:
    status: int
    text: str


def post(notifier: Notifier[Any], message: HttpPost) -> Answer:
    """POST ``message`` through the target guard within ``notifier.timeout``.

    A refused target, a redirect or a 4xx answer is permanent (``NotifierError``); no
    answer, a 5xx or a 429 is not (``NotifierUnavailable``). No redirect is followed.
    """
    settings = notifier.settings
    guard = TargetGuard(settings.allow_private_targets, settings.allowed_targets)
    probe = Probe(guard=guard, deadline=perf_counter() + notifier.timeout)
    token = current_probe.set(probe)
    # Socket timeouts bound each read: the watchdog bounds the whole exchange, so an
    # endpoint answering a byte at a time cannot hold the sender.
    alarm = watchdog.arm(probe.deadline or 0.0, probe.abort)
    session = guarded_session()
    host = urlsplit(message.url).hostname
    response: requests.Response | None = None
    try:
        response = session.post(
            message.url,
            json=message.body if message.data is None else None,
            data=message.data,
            headers=message.headers,
            timeout=notifier.timeout,
            allow_redirects=False,
            stream=True,  # only the start of an answer is read: it may be any size
        )
        start = response.raw.read(MAX_ANSWER_CHARS * 4, decode_content=True) or b""
        # Scrubbed before it is cut: a secret the answer echoes across the cut would no
        # longer match afterwards.
        text = notifier.scrub(start.decode("utf-8", "replace"))[:MAX_ANSWER_CHARS]
        if probe.expired:  # cut by the watchdog mid-answer: not known to be taken
            raise requests.ConnectionError("cut at the deadline")
    except ForbiddenTarget as exc:
        raise NotifierError(str(exc)) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if probe.expired:
            raise NotifierUnavailable(f"{host}: no answer within {notifier.timeout:g}s") from None
        # Not str(exc): requests names the URL, whose path is a Slack webhook's secret.
        raise NotifierUnavailable(f"{host}: {type(exc).__name__}") from None
    finally:
        watchdog.disarm(alarm)
        if response is not None:
            response.close()
        session.close()
        current_probe.reset(token)
    status = response.status_code
    if status >= 500 or status == 429:
        raise NotifierUnavailable(f"{host} answered {status}")
    if status >= 400:
        said = f": {' '.join(text.split())}" if text.strip() else ""
        raise NotifierError(f"{host} refused the notification ({status}){said}")
    if status >= 300:
        # Not followed (the guard would have to vet another host, and a POST turned into a
        # GET by a 302 delivers nothing): the channel's URL is not the endpoint.
        raise NotifierError(f"{host} answered a redirect ({status}); use the URL it points to")
    return Answer(status, text)


class Webhook(Notifier[HttpPost]):
    kind: ClassVar[str] = "webhook"

    def prepare(self, payload: dict[str, Any]) -> HttpPost:
        url = self.fill(self.config["url"], "url")
        headers = {
            name: self.fill(value, f"headers.{name}")
            for name, value in (self.config.get("headers") or {}).items()
        }
        document = {**payload, "text": summary_line(payload)}
        template = self.config.get("template")
        if not template:
            return HttpPost(url, document, headers)
        # Imported here: jinja2 is loaded only by senders that have a templated channel.
        from app.alerts.templates import render

        body = render(template, document)
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        return HttpPost(url, None, headers, body.encode())

    def send(self, message: HttpPost) -> None:
        post(self, message)


def json_answer(answer: Answer) -> dict[str, Any]:
    """The JSON object of an answer, or an empty one (answers are informative only)."""
    try:
        document = json.loads(answer.text)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
