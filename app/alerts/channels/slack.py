"""Slack: an incoming webhook, so a ``Webhook`` whose body is Slack's ``{"text": ...}``."""

from __future__ import annotations

from typing import Any, ClassVar

from app.alerts.channels.base import summary_line
from app.alerts.channels.webhook import HttpPost, Webhook


def slack_escape(text: str) -> str:
    """Slack's mrkdwn reads ``<...>`` as links and mentions (``<!channel>``); its docs
    ask for exactly these three characters to be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Slack(Webhook):
    kind: ClassVar[str] = "slack"

    def prepare(self, payload: dict[str, Any]) -> HttpPost:
        # An incoming webhook needs nothing but its URL: the channel's headers are not sent.
        url = self.fill(self.config["url"], "url")
        return HttpPost(url, {"text": slack_escape(summary_line(payload))})
