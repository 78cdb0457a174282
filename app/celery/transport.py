"""kombu's SQS transport, with what synmon's workers need from it.

* Surviving an outage: when SQS times out or answers 5xx (or cannot be reached at all),
  kombu's async client hands ``[]`` to ``Channel._on_messages_ready``, which calls
  ``.get`` on it; the AttributeError stops the whole Celery worker. Here such a poll
  counts as an empty one, and the next poll tries again. A test cuts the endpoint for
  10 s and keeps this honest.
* Handing back what a stopping worker took and did not start, visible at once, and what
  its last receive brings: a receive still waiting on SQS when the worker stops is
  finished (at most the long-poll wait) instead of dropped with the event loop.
* Knowing when SQS last answered (``PollClock``, read by the health report): a receive,
  even an empty one, or an ack, which deletes a message.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.worker import state as worker_state
from kombu.transport.SQS import Channel as SQSChannel
from kombu.transport.SQS import Transport as SQSTransport
from vine import promise  # type: ignore[import-untyped]

log = logging.getLogger("synmon.worker")

# Beyond its long-poll wait, how long a stopping worker gives its last receive to answer.
RECEIVE_GRACE_SECONDS = 5.0


def _stopping_warm() -> bool:
    """Whether this process is a Celery worker in a warm shutdown (SIGTERM)."""
    stop, terminate = worker_state.should_stop, worker_state.should_terminate
    return stop is not None and stop is not False and (terminate is None or terminate is False)


class SynmonSQSChannel(SQSChannel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The promises of the receives sent; only the event loop's thread touches them.
        self._receives: list[Any] = []
        super().__init__(*args, **kwargs)

    @property
    def receives_in_flight(self) -> int:
        """Receives sent and not answered yet (one whose answer failed counts as answered)."""
        self._forget_answered()
        return len(self._receives)

    def _forget_answered(self) -> None:
        self._receives = [p for p in self._receives if not (p.ready or p.failed)]

    def _get_from_sqs(
        self, queue_name: str, queue_url: str, connection: Any, count: int = 1, callback: Any = None
    ) -> Any:
        receive = super()._get_from_sqs(queue_name, queue_url, connection, count, callback)
        if isinstance(receive, promise):
            self._forget_answered()
            self._receives.append(receive)
        return receive

    def _on_messages_ready(self, queue: str, qname: str, messages: Any) -> int:
        if not isinstance(messages, dict):
            return 0
        PollClock.heard()
        if messages.get("Messages") and self.connection._callbacks.get(qname) is None:
            # kombu makes them visible again at once; said here, where a roll can be read.
            log.info(
                "stopping: handing back %d message(s) received after the consumer stopped",
                len(messages["Messages"]),
            )
        received: int = super()._on_messages_ready(queue, qname, messages)
        return received

    def basic_cancel(self, consumer_tag: Any) -> Any:
        result = super().basic_cancel(consumer_tag)
        if not self._consumers and self.receives_in_flight and _stopping_warm():
            self._finish_receives()
        return result

    def _finish_receives(self) -> None:
        """Let the receives still waiting on SQS answer, before the event loop closes.

        An idle worker is always in a long poll. Stopped then, Celery closes the event
        loop with that request unanswered, but SQS still gives it the next message that
        arrives during the wait, and marks it in flight: nobody can run that message until
        its visibility timeout runs out (45 s for HTTP checks). The prefork pool happens to
        avoid this (it fires the loop's timers while its processes drain, which lets the
        receive finish); the threads pool does not. Answered now, with the consumer gone,
        kombu hands whatever the receive brings back to SQS visible at once.
        """
        hub = self.hub
        if hub is None or getattr(hub, "_poller", None) is None:
            return  # no event loop, or one already closed: nothing more can arrive
        deadline = time.monotonic() + self.wait_time_seconds + RECEIVE_GRACE_SECONDS
        log.debug("stopping: waiting for %d receive(s) still in flight", self.receives_in_flight)
        while self.receives_in_flight and time.monotonic() < deadline:
            try:
                hub.run_once()
            except Exception as exc:  # noqa: BLE001 - what it held comes back, only later
                log.warning("stopping: a receive in flight did not finish: %s", exc)
                return
        if self.receives_in_flight:
            log.warning(
                "stopping: %d receive(s) unanswered after %.0fs; what they took comes back "
                "after its visibility timeout",
                self.receives_in_flight,
                self.wait_time_seconds + RECEIVE_GRACE_SECONDS,
            )

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
