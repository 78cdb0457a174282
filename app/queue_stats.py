"""What is in the queues: depth, in flight, delayed, per queue and dead-letter queue."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from app.sqs import client, queue_urls
from config.queues import all_queues
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


ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def stats_of(settings: Settings, name: str, dead_letter: bool) -> QueueStats:
    sqs = client(settings)
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_urls(settings)(name), AttributeNames=ATTRIBUTES
    )["Attributes"]
    return QueueStats(
        name=name,
        dead_letter=dead_letter,
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


def all_stats(settings: Settings) -> list[QueueStats]:
    stats = []
    for spec in all_queues(settings):
        stats.append(stats_of(settings, spec.name, False))
        stats.append(stats_of(settings, spec.dead_letter, True))
    return stats
