"""Notification channels, one small ``Notifier`` class per channel type.

A channel *definition* (``app.definitions.models.Channel``, stored as ``ChannelRow``)
names its type; ``NOTIFIERS`` gives the class that delivers to it.
"""

from __future__ import annotations

from typing import Any

from app.alerts.channels.apprise import Apprise
from app.alerts.channels.base import Notifier, NotifierError, NotifierUnavailable
from app.alerts.channels.email import Email
from app.alerts.channels.opsgenie import Opsgenie
from app.alerts.channels.pagerduty import PagerDuty
from app.alerts.channels.slack import Slack
from app.alerts.channels.teams import Teams
from app.alerts.channels.webhook import Webhook

NOTIFIERS: dict[str, type[Notifier[Any]]] = {
    n.kind: n for n in (Webhook, Slack, Email, PagerDuty, Opsgenie, Teams, Apprise)
}

__all__ = [
    "NOTIFIERS",
    "Apprise",
    "Email",
    "Notifier",
    "NotifierError",
    "NotifierUnavailable",
    "Opsgenie",
    "PagerDuty",
    "Slack",
    "Teams",
    "Webhook",
]
