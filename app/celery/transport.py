"""kombu's SQS transport, with what synmon's workers need from it.

* Surviving an outage: when SQS times out or answers 5xx (or cannot be reached at all),
  kombu's async client hands ``[]`` to ``Channel._on_messages_ready``, which calls
  ``.get`` on it; the AttributeError stops the whole Celery worker. Here such a poll
  counts as an empty one, and the next poll tries again. A test cuts the endpoint for
  10 s and keeps this honest.
* Handing back what a stopping worker took and did not start, visible at once.
* Knowing when SQS last answered (``PollClock``, read by the health report): a receive,
  even an empty one, or an ack, which deletes a message.
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
        """Hand an unfinished message back to SQS visible at once.

        kombu hands back what a worker received and did not start (at shutdown, or a
        requeue after a lost pool process) by setting the original's visibility to the
        long-poll wait (``wait_time_seconds``, up to 20 s): a threads worker stopped during
        a roll would leave the runs it had taken waiting that long before another worker
        could start them. The message itself comes back, so its receive count keeps rising
        towards the DLQ, as with kombu's own way.
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

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        # An ack deletes the message from SQS: a worker whose every slot is busy does not
        # poll, and each finished run is then what tells it that SQS still answers.
        super().basic_ack(delivery_tag, multiple)
        PollClock.heard()


class SynmonSQSTransport(SQSTransport):
    Channel = SynmonSQSChannel


class PollClock:
    """When this process last heard from SQS (an answer to a receive, even empty, or an ack)."""

    last_answer: float = 0.0

    @classmethod
    def heard(cls) -> None:
        cls.last_answer = time.monotonic()

    @classmethod
    def silent_for(cls) -> float:
        return time.monotonic() - cls.last_answer if cls.last_answer else float("inf")
