"""Where ``NotificationSender`` was imported from before the channels and the sender
were split (``app.alerts.channels``, ``app.alerts.sender``): ``app.cli.processes``
still imports it from here."""

from __future__ import annotations

from app.alerts.sender import NotificationSender

__all__ = ["NotificationSender"]
