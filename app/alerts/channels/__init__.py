"""Notification channels, one small ``Notifier`` class per channel type.

A channel *definition* (``app.definitions.models.Channel``, stored as ``ChannelRow``)
names its type; ``NOTIFIERS`` gives the class that delivers to it.
"""

from __future__ import annotations

from typing import Any

from app.alerts.channels.base import Notifier, NotifierError, NotifierUnavailable
from app.alerts.channels.email import Email
from app.alerts.channels.slack import Slack
from app.alerts.channels.webhook import Webhook

NOTIFIERS: dict[str, type[Notifier[Any]]] = {n.kind: n for n in (Webhook, Slack, Email)}

__all__ = [
    "NOTIFIERS",
    "Email",
    "Notifier",
    "NotifierError",
    "NotifierUnavailable",
    "Slack",
    "Webhook",
]
