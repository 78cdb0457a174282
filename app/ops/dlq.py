"""Dead-letter queues: look inside, replay, or drop (``synmon dlq show|redrive|purge``)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from app.pipeline.queues import DLQ_SUFFIX, all_queues
from app.pipeline.sqs import SEND_BATCH_SIZE, client_for, queue_urls
from config.errors import SynmonError
from config.settings import Settings

PEEK_VISIBILITY = 10  # seconds a listed message stays hidden, so that pages do not repeat
BODY_EXCERPT = 300


class UnknownQueue(SynmonError, LookupError):
    pass


def dead_letter_queues(settings: Settings) -> list[str]:
    return [spec.dead_letter for spec in all_queues(settings)]


def resolve(settings: Settings, name: str) -> tuple[str, str]:
    """(dead-letter queue, its source queue) for either name."""
    dlq = name if name.endswith(DLQ_SUFFIX) else name + DLQ_SUFFIX
    if dlq not in dead_letter_queues(settings):
        raise UnknownQueue(
            f"{name!r} is not a queue of this installation; dead-letter queues: "
            + ", ".join(dead_letter_queues(settings))
        )
    return dlq, dlq[: -len(DLQ_SUFFIX)]


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receive_count: int
    sent_at: str
    kind: str  # run request | result | celery task | unreadable
    summary: str
    body_excerpt: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _b64json(text: str) -> Any:
    try:
        return json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return None


def classify(body: str) -> tuple[str, str]:
    """What a message is, as far as it can be read: (kind, summary)."""
    envelope = _b64json(body)
    if isinstance(envelope, dict) and isinstance(envelope.get("headers"), dict):
        task = envelope["headers"].get("task", "?")
        args = _b64json(envelope.get("body", "")) if envelope.get("body") else None
        request = args[0][0] if isinstance(args, list) and args and args[0] else None
        if isinstance(request, dict):
            check: dict[str, Any] = (
                request["check"] if isinstance(request.get("check"), dict) else {}
            )
            return "run request", (
                f"task {task}, v{request.get('v')}, run {request.get('run_id')}, "
                f"check {check.get('id')}, location {request.get('location')}"
            )
        return "celery task", f"task {task}, unreadable arguments"
    try:
        document = json.loads(body)
    except ValueError:
        return "unreadable", "neither a Celery task nor JSON"
    if isinstance(document, dict) and "check_id" in document:
        get = document.get
        return "result", (
            f"v{get('v')}, run {get('run_id')}, check {get('check_id')}, status {get('status')}"
        )
    return "unreadable", f"JSON {type(document).__name__} that is no synmon message"


def show(settings: Settings, name: str, limit: int = 50) -> list[DeadLetter]:
    dlq, _ = resolve(settings, name)
    sqs, url = client_for(settings, dlq), queue_urls(settings)(dlq)
    letters: list[DeadLetter] = []
    receipts: list[str] = []
    while len(letters) < limit:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, limit - len(letters)),
            VisibilityTimeout=PEEK_VISIBILITY,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            attributes = message.get("Attributes", {})
            kind, summary = classify(message["Body"])
            sent = datetime.fromtimestamp(int(attributes.get("SentTimestamp", 0)) / 1000, UTC)
            letters.append(
                DeadLetter(
                    message_id=message["MessageId"],
                    receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
                    sent_at=sent.isoformat(timespec="seconds"),
                    kind=kind,
                    summary=summary,
                    body_excerpt=message["Body"][:BODY_EXCERPT],
                )
            )
            receipts.append(message["ReceiptHandle"])
    # Listing must not hide the messages from a redrive that follows.
    for start in range(0, len(receipts), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                for i, r in enumerate(receipts[start : start + 10])
            ],
        )
    return letters


def redrive(settings: Settings, name: str, limit: int | None = None) -> int:
    """Move messages back to the queue they came from, unchanged. Returns how many."""
    dlq, source = resolve(settings, name)
    sqs = client_for(settings, dlq)
    dlq_url, source_url = queue_urls(settings)(dlq), queue_urls(settings)(source)
    moved = 0
    while limit is None or moved < limit:
        wanted = SEND_BATCH_SIZE if limit is None else min(SEND_BATCH_SIZE, limit - moved)
        messages = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=wanted, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            break
        response = sqs.send_message_batch(
            QueueUrl=source_url,
            Entries=[{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)],
        )
        sent = {entry["Id"] for entry in response.get("Successful", [])}
        done = [m for i, m in enumerate(messages) if str(i) in sent]
        if done:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        moved += len(done)
        if len(done) < len(messages):
            raise RuntimeError(
                f"{len(messages) - len(done)} message(s) could not be sent back to {source}"
            )
    return moved


def purge(settings: Settings, name: str) -> int:
    """Drop every message of a dead-letter queue; returns about how many there were."""
    dlq, _ = resolve(settings, name)
    sqs, url = client_for(settings, dlq), queue_urls(settings)(dlq)
    count = int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    sqs.purge_queue(QueueUrl=url)
    return count
