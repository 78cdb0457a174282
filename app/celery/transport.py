"""kombu's SQS transport, with the one fix synmon's workers need to survive an outage.

When SQS times out or answers 5xx (or cannot be reached at all), kombu's async client
hands ``[]`` to ``Channel._on_messages_ready``, which calls ``.get`` on it; the
AttributeError stops the whole Celery worker. Here such a poll counts as an empty one,
and the next poll tries again. A test cuts the endpoint for 10 s and keeps this honest.
"""

from __future__ import annotations

import time
from typing import Any

from kombu.transport.SQS import Channel as SQSChannel
from kombu.transport.SQS import Transport as SQSTransport


class Channel(SQSChannel):
    def _on_messages_ready(self, queue: str, qname: str, messages: Any) -> int:
        if not isinstance(messages, dict):
            return 0
        PollClock.heard()
        received: int = super()._on_messages_ready(queue, qname, messages)
        return received


class Transport(SQSTransport):
    Channel = Channel


class PollClock:
    """When this process last heard from SQS (any answer to a receive, even empty)."""

    last_answer: float = 0.0

    @classmethod
    def heard(cls) -> None:
        cls.last_answer = time.monotonic()

    @classmethod
    def silent_for(cls) -> float:
        return time.monotonic() - cls.last_answer if cls.last_answer else float("inf")
