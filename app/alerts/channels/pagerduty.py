"""PagerDuty, through its Events API v2: a failure triggers, a recovery resolves.

One ``dedup_key`` per incident (``app.alerts.channels.incidents``), so PagerDuty opens
one alert for a failing period and resolves that alert, however often a notification
is sent again. The routing key is a ``{{NAME}}`` placeholder filled in at send time.
PagerDuty answers 202 when it took an event, 400 when it never will (a wrong routing
key, an invalid event), 429 and 5xx when it may later.
"""

from __future__ import annotations

from typing import Any, ClassVar

from app.alerts.channels.base import Notifier, NotifierError, summary_line
from app.alerts.channels.incidents import bounded, closed_already, incident_key
from app.alerts.channels.webhook import HttpPost, post

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# Limits of the Events API v2.
MAX_SUMMARY_CHARS = 1024
MAX_DEDUP_KEY_CHARS = 255
MAX_DETAIL_CHARS = 2000


class PagerDuty(Notifier[list[HttpPost]]):
    kind: ClassVar[str] = "pagerduty"

    def prepare(self, payload: dict[str, Any]) -> list[HttpPost]:
        routing_key = self.fill(self.config["routing_key"], "routing_key").strip()
        if not routing_key or not routing_key.isprintable():
            raise NotifierError("routing_key: the placeholder's value is not a routing key")
        url = self.fill(self.config.get("url") or EVENTS_URL, "url")
        key = bounded(incident_key(payload), MAX_DEDUP_KEY_CHARS)
        resolve = HttpPost(
            url, {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
        )
        if payload["event"] == "recovery":
            return [resolve]
        # A slow check is not a page, whatever the channel's severity says.
        severity = (
            "warning"
            if payload["event"] == "degraded"
            else self.config.get("severity") or "critical"
        )
        details = {
            name: bounded(str(value), MAX_DETAIL_CHARS) if isinstance(value, str) else value
            for name, value in payload.items()
            if name != "incident"
        }
        event = {
            "summary": bounded(summary_line(payload), MAX_SUMMARY_CHARS),
            "source": f"synmon/{payload.get('location') or '?'}",
            "severity": severity,
            "timestamp": payload.get("started_at"),
            "component": payload["check_id"],
            "group": ",".join(payload.get("failing_locations") or []) or None,
            "class": payload["event"],
            "custom_details": details,
        }
        trigger = HttpPost(
            url,
            {
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": key,
                "client": "synmon",
                # Optional fields are left out rather than sent as null.
                "payload": {name: value for name, value in event.items() if value is not None},
            },
        )
        # A failure that waited for a retry while its check recovered: trigger it for the
        # record, and resolve it at once, so no alert is left open.
        return [trigger, resolve] if closed_already(payload) else [trigger]

    def send(self, message: list[HttpPost]) -> None:
        for event in message:
            post(self, event)
