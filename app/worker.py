"""Worker plumbing: what a synmon worker does beside running tasks.

* ``SynmonConsumer``: a message that cannot even be decoded is rejected, not
  acknowledged, so that it reaches the dead-letter queue instead of vanishing (Celery
  acknowledges, and thereby deletes, such a message by default).
* Per-process resources, made after the fork: the target guard, and for browser
  workers the browser.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

from app.ssrf import TargetGuard
from config.settings import Settings

log = logging.getLogger("synmon.worker")


class SynmonConsumer(Consumer):  # type: ignore[misc]
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        log.error(
            "cannot decode a message (%s); leaving it to the dead-letter queue: %r",
            exc,
            (message.body or b"")[:200],
        )
        message.reject_log_error(log, self.connection_errors)


def receive_count(request: Any) -> int:
    """How many times SQS has delivered the message of this task (1 the first time)."""
    properties = getattr(request, "properties", None) or {}
    sqs_message = (properties.get("delivery_info") or {}).get("sqs_message") or {}
    try:
        return int(sqs_message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


_guards: dict[Settings, TargetGuard] = {}


def guard_for(settings: Settings) -> TargetGuard:
    if settings not in _guards:
        _guards[settings] = TargetGuard(settings.allow_private_targets, settings.allowed_targets)
    return _guards[settings]
