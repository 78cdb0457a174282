"""Webhook: the event as JSON, POSTed to the channel's URL with its headers.

The endpoint is a URL from a channel definition, so it goes through the same target
guard and the same guarded session as a check's request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from app.alerts.channels.base import Notifier, NotifierError, NotifierUnavailable, summary_line
from app.execution.guard import ForbiddenTarget, TargetGuard
from app.execution.http.transport import Probe, current_probe, guarded_session, watchdog


@dataclass(frozen=True)
class HttpPost:
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Webhook(Notifier[HttpPost]):
    kind: ClassVar[str] = "webhook"

    def prepare(self, payload: dict[str, Any]) -> HttpPost:
        return HttpPost(
            self.config["url"],
            {**payload, "text": summary_line(payload)},
            self.config.get("headers") or {},
        )

    def send(self, message: HttpPost) -> None:
        guard = TargetGuard(self.settings.allow_private_targets, self.settings.allowed_targets)
        probe = Probe(guard=guard, deadline=perf_counter() + self.timeout)
        token = current_probe.set(probe)
        # Socket timeouts bound each read: the watchdog bounds the whole exchange, so an
        # endpoint answering a byte at a time cannot hold the sender.
        alarm = watchdog.arm(probe.deadline or 0.0, probe.abort)
        session = guarded_session()
        try:
            response = session.post(
                message.url,
                json=message.body,
                headers=message.headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except ForbiddenTarget as exc:
            raise NotifierError(str(exc)) from None
        except (requests.RequestException, OSError) as exc:
            host = urlsplit(message.url).hostname
            if probe.expired:
                raise NotifierUnavailable(f"{host}: no answer within {self.timeout:g}s") from None
            # Not str(exc): requests names the URL, whose path is a Slack webhook's secret.
            raise NotifierUnavailable(f"{host}: {type(exc).__name__}") from None
        finally:
            watchdog.disarm(alarm)
            session.close()
            current_probe.reset(token)
        host = urlsplit(message.url).hostname
        if response.status_code >= 500 or response.status_code == 429:
            raise NotifierUnavailable(f"{host} answered {response.status_code}")
        if response.status_code >= 400:
            raise NotifierError(f"{host} refused the notification ({response.status_code})")
