"""What is in the queues: depth, in flight, delayed, and the age of the oldest message.

SQS does not say how old its oldest message is, short of receiving it (which counts as
a delivery). On AWS the age comes from CloudWatch (``ApproximateAgeOfOldestMessage``,
the metric the Terraform alarms watch); dead-letter queues are peeked, anywhere.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.pipeline.queues import all_queues, queue_region
from app.pipeline.sqs import client_for, queue_urls
from config.settings import Settings


@dataclass(frozen=True)
class QueueStats:
    name: str
    dead_letter: bool
    visible: int
    in_flight: int
    delayed: int
    oldest_age_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


log = logging.getLogger("synmon.queues")
ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def peek_oldest_age(settings: Settings, name: str, url: str) -> float | None:
    """Age of the oldest of up to 10 visible messages, read without consuming them.

    Only for dead-letter queues: a receive counts as a delivery, and on a queue with a
    redrive policy that would bring its messages closer to the DLQ. Nothing reads from
    a DLQ but an operator, so there it costs nothing.
    """
    messages = (
        client_for(settings, name)
        .receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["SentTimestamp"],
        )
        .get("Messages", [])
    )
    if not messages:
        return None
    oldest = min(int(m["Attributes"]["SentTimestamp"]) for m in messages) / 1000
    return max(0.0, time.time() - oldest)


def cloudwatch_oldest_age(settings: Settings, name: str) -> float | None:
    """SQS's own ApproximateAgeOfOldestMessage, from CloudWatch (AWS only)."""
    if settings.sqs_endpoint is not None:
        return None
    import boto3

    cloudwatch = boto3.session.Session().client(
        "cloudwatch", region_name=queue_region(settings, name)
    )
    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": name}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now,
        Period=60,
        Statistics=["Maximum"],
    ).get("Datapoints", [])
    if not points:
        return None
    return float(max(points, key=lambda p: p["Timestamp"])["Maximum"])


def stats_of(settings: Settings, name: str, dead_letter: bool) -> QueueStats:
    sqs = client_for(settings, name)
    url = queue_urls(settings)(name)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=ATTRIBUTES)["Attributes"]
    visible = int(attributes.get("ApproximateNumberOfMessages", 0))
    age: float | None = None
    try:
        if dead_letter and visible:
            age = peek_oldest_age(settings, name, url)
        elif not dead_letter:
            age = cloudwatch_oldest_age(settings, name)
    except Exception as exc:  # noqa: BLE001 - the age is a nicety; the counts stand without it
        log.debug("no oldest-message age for %s: %s", name, exc)
    return QueueStats(
        name=name,
        dead_letter=dead_letter,
        visible=visible,
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        oldest_age_s=None if age is None else round(age, 1),
    )


def all_stats(settings: Settings) -> list[QueueStats]:
    stats = []
    for spec in all_queues(settings):
        stats.append(stats_of(settings, spec.name, False))
        stats.append(stats_of(settings, spec.dead_letter, True))
    return stats
