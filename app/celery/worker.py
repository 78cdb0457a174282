"""Worker plumbing: what a synmon worker does beside running tasks.

* ``SynmonConsumer``: a message that cannot even be decoded is rejected, not
  acknowledged, so that it reaches the dead-letter queue instead of vanishing (Celery
  acknowledges, and thereby deletes, such a message by default); and events go to the
  side channel (app/celery/side_channel.py).
* ``receive_count`` and ``backoff_redelivery``: how often SQS delivered a task's
  message, and a failed job's shorter way back.
* ``HealthReporter``: the bootstep that keeps ``synmon health`` informed.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker.consumer import Consumer

from config.celery import JOB_BACKOFF_SECONDS
from config.settings import Settings

log = logging.getLogger("synmon.worker")


class SynmonConsumer(Consumer):  # type: ignore[misc]
    def connection_for_write(self, url: str | None = None, heartbeat: float | None = None) -> Any:
        """The side channel, when there is one: in Celery 5.x only the events bootstep
        asks for this connection, so events go to Redis while tasks stay on SQS."""
        from app.celery.side_channel import side_channel
        from config.settings import get_settings

        settings = get_settings()
        if url is None and settings.events_url is not None:
            return self.ensure_connected(side_channel(settings))
        return super().connection_for_write(url=url, heartbeat=heartbeat)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        log.error(
            "cannot decode a message (%s); leaving it to the dead-letter queue: %r",
            exc,
            (message.body or b"")[:200],
        )
        message.reject_log_error(log, self.connection_errors)


def _sqs_delivery(request: Any) -> dict[str, Any]:
    properties = getattr(request, "properties", None) or {}
    return dict(properties.get("delivery_info") or {})


def receive_count(request: Any) -> int:
    """How many times SQS has delivered the message of this task (1 the first time)."""
    sqs_message = _sqs_delivery(request).get("sqs_message") or {}
    try:
        return int(sqs_message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


def backoff_redelivery(request: Any, settings: Settings) -> None:
    """Make a failed job's message visible again after a delay that grows per delivery.

    The message is not deleted (acks_late, no ack on failure): SQS delivers it again
    when this visibility runs out, and moves it to the DLQ after maxReceiveCount.
    Without this a failed job would wait out the queue's whole visibility timeout.
    """
    from app.pipeline.sqs import client, region_of_url

    delivery = _sqs_delivery(request)
    receipt = (delivery.get("sqs_message") or {}).get("ReceiptHandle")
    queue_url = delivery.get("sqs_queue")
    if not receipt or not queue_url:
        return
    count = receive_count(request)
    delay = JOB_BACKOFF_SECONDS.get(count, max(JOB_BACKOFF_SECONDS.values()))
    try:
        client(settings, region_of_url(settings, queue_url)).change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=delay
        )
    except Exception as exc:  # noqa: BLE001 - the message still comes back, only later
        log.warning("could not shorten the redelivery of a failed job: %s", exc)


class HealthReporter(bootsteps.StartStopStep):  # type: ignore[misc]
    """Keeps ``synmon health`` informed: consuming while the consumer runs and SQS answers."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        self.reporter: Any = None
        super().__init__(c, **kwargs)

    def start(self, c: Any) -> None:
        from app.celery.transport import PollClock
        from app.ops.health import READY, Reporter
        from config.settings import get_settings

        PollClock.heard()  # connected just now
        queues = [queue.name for queue in c.task_consumer.queues] if c.task_consumer else []
        settings = get_settings()

        def state() -> str:
            return READY if PollClock.silent_for() < settings.sqs_silence else "sqs-unreachable"

        self.reporter = Reporter(settings, c.hostname, queues, state).start()

    def stop(self, c: Any) -> None:
        if self.reporter is not None:
            self.reporter.stop()
            self.reporter = None

    shutdown = stop
