"""Opsgenie, through its Alert API: a failure creates an alert, a recovery closes it.

The alert's ``alias`` is the incident's key (``app.alerts.channels.incidents``):
Opsgenie keeps one open alert per alias (a second create adds to its count), and the
recovery closes it by alias. The API key is a ``{{NAME}}`` placeholder filled in at
send time; ``url`` selects the region (``https://api.eu.opsgenie.com``). Opsgenie
answers 202 when it took a request, 401/403/422 when it never will, 429 and 5xx when
it may later.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from app.alerts.channels.base import Notifier, NotifierError, summary_line
from app.alerts.channels.incidents import bounded, closed_already, incident_key
from app.alerts.channels.webhook import HttpPost, post

API_URL = "https://api.opsgenie.com"
# Limits of the Alert API.
MAX_MESSAGE_CHARS = 130
MAX_ALIAS_CHARS = 512
MAX_DESCRIPTION_CHARS = 15000
MAX_DETAIL_CHARS = 8000


class Opsgenie(Notifier[list[HttpPost]]):
    kind: ClassVar[str] = "opsgenie"

    def prepare(self, payload: dict[str, Any]) -> list[HttpPost]:
        api_key = self.fill(self.config["api_key"], "api_key").strip()
        if not api_key or not api_key.isprintable():
            raise NotifierError("api_key: the placeholder's value is not an API key")
        base = self.fill(self.config.get("url") or API_URL, "url").rstrip("/")
        headers = {"Authorization": f"GenieKey {api_key}"}
        alias = bounded(incident_key(payload), MAX_ALIAS_CHARS)
        summary = summary_line(payload)
        close = HttpPost(
            f"{base}/v2/alerts/{quote(alias, safe='')}/close?identifierType=alias",
            {"source": "synmon", "user": "synmon", "note": bounded(summary, 25000)},
            headers,
        )
        if payload["event"] == "recovery":
            return [close]
        priority = "P4" if payload["event"] == "degraded" else self.config.get("priority") or "P1"
        details = {
            name: bounded(str(value), MAX_DETAIL_CHARS)
            for name, value in payload.items()
            if name != "incident" and value is not None
        }
        create = HttpPost(
            f"{base}/v2/alerts",
            {
                "message": bounded(summary, MAX_MESSAGE_CHARS),
                "alias": alias,
                "description": bounded(summary, MAX_DESCRIPTION_CHARS),
                "source": "synmon",
                "entity": bounded(str(payload["check_id"]), 512),
                "priority": priority,
                "tags": ["synmon", payload["event"]],
                "details": details,
            },
            headers,
        )
        return [create, close] if closed_already(payload) else [create]

    def send(self, message: list[HttpPost]) -> None:
        for request in message:
            post(self, request)
