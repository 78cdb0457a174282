"""Microsoft Teams: an incoming webhook (a Workflows "when a Teams webhook request is
received" flow, or a legacy connector), posted an Adaptive Card.

What a check author or a target controls (check names, errors, locations) goes only
into ``TextRun`` elements, which Teams shows as plain text: no Markdown, no links,
no mentions. Only synmon's own words go into the card's ``TextBlock`` heading, which
Teams reads as Markdown.
"""

from __future__ import annotations

from typing import Any, ClassVar

from app.alerts.channels.base import summary_line
from app.alerts.channels.incidents import bounded
from app.alerts.channels.webhook import HttpPost, Webhook

MAX_TEXT_CHARS = 1000
HEADINGS = {
    "failure": ("Check failing", "Attention"),
    "recovery": ("Check recovered", "Good"),
    "degraded": ("Check degraded", "Warning"),
}


def plain(label: str, value: object) -> dict[str, Any]:
    """One line ``label: value`` that Teams shows exactly as written."""
    return {
        "type": "RichTextBlock",
        "inlines": [
            {"type": "TextRun", "text": f"{label}: ", "weight": "Bolder"},
            {"type": "TextRun", "text": bounded(str(value), MAX_TEXT_CHARS)},
        ],
    }


def card(payload: dict[str, Any]) -> dict[str, Any]:
    heading, color = HEADINGS.get(payload["event"], ("Check event", "Default"))
    incident = payload.get("incident") or {}
    lines = [
        {
            "type": "TextBlock",
            "text": heading,
            "weight": "Bolder",
            "size": "Medium",
            "color": color,
            "wrap": True,
        },
        {
            "type": "RichTextBlock",
            "inlines": [
                {"type": "TextRun", "text": bounded(summary_line(payload), MAX_TEXT_CHARS)}
            ],
        },
        plain("Check", payload.get("check_name") or payload["check_id"]),
        plain("Location", payload.get("location") or "?"),
    ]
    if payload.get("error"):
        lines.append(plain("Error", payload["error"]))
    if isinstance(incident, dict) and incident.get("id") is not None:
        lines.append(plain("Incident", f"#{incident['id']} since {incident.get('opened_at')}"))
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "msteams": {"width": "Full"},
                    "body": lines,
                },
            }
        ],
    }


class Teams(Webhook):
    kind: ClassVar[str] = "teams"

    def prepare(self, payload: dict[str, Any]) -> HttpPost:
        return HttpPost(self.fill(self.config["url"], "url"), card(payload))
