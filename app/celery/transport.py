"""kombu's SQS transport, with the one fix synmon's workers need to survive an outage.

When SQS times out or answers 5xx (or cannot be reached at all), kombu's async client
hands ``[]`` to ``Channel._on_messages_ready``, which calls ``.get`` on it; the
AttributeError stops the whole Celery worker. Here such a poll counts as an empty one,
and the next poll tries again. A test cuts the endpoint for 10 s and keeps this honest.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kombu.transport.SQS import Channel as SQSChannel
from kombu.transport.SQS import Transport as SQSTransport

log = logging.getLogger("synmon.worker")


class SynmonSQSChannel(SQSChannel):
    def _on_messages_ready(self, queue: str, qname: str, messages: Any) -> int:
        if not isinstance(messages, dict):
            return 0
        PollClock.heard()
        received: int = super()._on_messages_ready(queue, qname, messages)
        return received

    def _restore(
        self, message: Any, unwanted_delivery_info: Any = ("sqs_message", "sqs_queue")
    ) -> None:
        """Give an unacknowledged message back to SQS instead of sending a copy of it.

        kombu restores what a worker received and did not finish (at shutdown, or when a
        task is requeued) by publishing it again as a new message, while the original
        still comes back after its visibility timeout: the run would be done twice, and
        the copy's receive count starts afresh, so a poison message would never reach
        its DLQ. Making the original visible at once does neither.
        """
        info = message.delivery_info
        sqs_message, queue_url = info.get("sqs_message"), info.get("sqs_queue")
        if not sqs_message or not queue_url:
            super()._restore(message, unwanted_delivery_info)
            return
        queue = self.canonical_queue_name(info["routing_key"]) if "routing_key" in info else None
        try:
            self.sqs(queue=queue).change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=sqs_message["ReceiptHandle"], VisibilityTimeout=0
            )
        except Exception as exc:  # noqa: BLE001 - it still comes back, after its visibility timeout
            log.warning("could not hand an unfinished message back to SQS: %s", exc)


class SynmonSQSTransport(SQSTransport):
    Channel = SynmonSQSChannel


class PollClock:
    """When this process last heard from SQS (any answer to a receive, even empty)."""

    last_answer: float = 0.0

    @classmethod
    def heard(cls) -> None:
        cls.last_answer = time.monotonic()

    @classmethod
    def silent_for(cls) -> float:
        return time.monotonic() - cls.last_answer if cls.last_answer else float("inf")
