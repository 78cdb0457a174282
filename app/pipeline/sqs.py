"""SQS, as synmon uses it: clients, queue URLs, queue creation, batched sends.

Run requests are Celery task messages, but the dispatcher sends them itself with
``SendMessageBatch`` (10 a call) instead of one ``SendMessage`` per message through
kombu; ``celery_task_body`` builds exactly the body kombu's SQS transport would, and a
test keeps an unmodified Celery worker consuming it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.pipeline.queues import QueueSpec, all_queues, queue_region
from config.errors import RetryableError
from config.settings import Settings

SEND_BATCH_SIZE = 10
MAX_DELAY_SECONDS = 900
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
ORIGIN = f"synmon@{socket.gethostname()}"

_clients: dict[tuple[int, str | None, str], Any] = {}
_clients_lock = threading.Lock()


def client_for(settings: Settings, queue: str) -> Any:
    """The client for the region ``queue`` lives in."""
    return client(settings, queue_region(settings, queue))


def region_of_url(settings: Settings, url: str) -> str:
    """``sqs.<region>.amazonaws.com/...`` names its region; local endpoints have one."""
    match = re.match(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/", url)
    return match.group(1) if match and settings.sqs_endpoint is None else settings.sqs_region


def connection_pool_size(settings: Settings) -> int:
    """Connections a process keeps to SQS: one per check in flight (each publishes its
    result, a failed job shortens its redelivery) and some for the consumer itself.
    Fewer, and a threads pool discards and reopens connections under load."""
    return max(32, settings.http_concurrency + 10)


def client(settings: Settings, region: str | None = None) -> Any:
    """A boto3 SQS client for this process and region (a forked child makes its own)."""
    region = region or settings.sqs_region
    key = (os.getpid(), settings.sqs_endpoint, region)
    with _clients_lock:
        if key not in _clients:
            kwargs: dict[str, Any] = {
                "region_name": region,
                "config": Config(
                    connect_timeout=5,
                    read_timeout=max(10, settings.sqs_wait_time_seconds + 5),
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=connection_pool_size(settings),
                ),
            }
            if settings.sqs_endpoint:
                kwargs.update(
                    endpoint_url=settings.sqs_endpoint,
                    aws_access_key_id="test",
                    aws_secret_access_key="test",  # noqa: S106 - local endpoints take any key
                )
            _clients[key] = boto3.session.Session().client("sqs", **kwargs)
        return _clients[key]


class QueueUrls:
    """Queue name -> URL, from the configured prefix or asked of SQS once per name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._urls: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        url = self._urls.get(name)
        if url is None:
            region = queue_region(self.settings, name)
            if self.settings.sqs_queue_url_prefix:
                url = self.settings.sqs_queue_url_prefix.replace("{region}", region) + name
            else:
                url = client(self.settings, region).get_queue_url(QueueName=name)["QueueUrl"]
            self._urls[name] = url
        return url

    def all(self, names: Iterable[str]) -> dict[str, str]:
        return {name: self(name) for name in names}


_url_caches: dict[tuple[int, Settings], QueueUrls] = {}


def queue_urls(settings: Settings) -> QueueUrls:
    key = (os.getpid(), settings)
    if key not in _url_caches:
        _url_caches[key] = QueueUrls(settings)
    return _url_caches[key]


def _arn(attributes: dict[str, str]) -> str:
    return attributes["QueueArn"]


def create_queue(settings: Settings, spec: QueueSpec) -> str:
    """Create (or bring up to date) one queue and its dead-letter queue. Idempotent."""
    sqs = client_for(settings, spec.name)
    dlq_url = sqs.create_queue(
        QueueName=spec.dead_letter,
        Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
    )["QueueUrl"]
    dlq_arn = _arn(
        sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]
    )
    attributes = {
        "VisibilityTimeout": str(spec.visibility_timeout),
        "ReceiveMessageWaitTimeSeconds": str(settings.sqs_wait_time_seconds),
        "MessageRetentionPeriod": str(4 * 24 * 3600),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(spec.max_receive_count)}
        ),
    }
    try:
        url: str = sqs.create_queue(QueueName=spec.name, Attributes=attributes)["QueueUrl"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=spec.name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def create_queues(settings: Settings, locations: Sequence[str] | None = None) -> list[QueueSpec]:
    specs = all_queues(settings, tuple(locations) if locations else None)
    for spec in specs:
        create_queue(settings, spec)
    return specs


def celery_task_body(
    task_name: str,
    argument_json: str,
    queue: str,
    task_id: str | None = None,
    time_limits: tuple[float | None, float | None] = (None, None),
) -> str:
    """The SQS body kombu would write for ``task.apply_async((argument,), queue=queue)``.

    Celery protocol 2 (headers, then ``[args, kwargs, embed]`` as JSON), wrapped in
    kombu's virtual-transport envelope with a base64 body, the whole base64-encoded as
    kombu's SQS transport does by default. The task's one argument comes as JSON text,
    so that the dispatcher can splice in a check definition as the database holds it.
    """
    task_id = task_id or str(uuid.uuid4())
    body = (
        "[[" + argument_json + '],{},{"callbacks":null,"errbacks":null,"chain":null,"chord":null}]'
    )
    envelope = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task_name,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": list(time_limits),
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": f"({task_id},)",
            "kwargsrepr": "{}",
            "origin": ORIGIN,
            "ignore_result": True,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return base64.b64encode(json.dumps(envelope, separators=(",", ":")).encode()).decode()


@dataclass(frozen=True)
class Outgoing:
    queue: str
    body: str
    delay_seconds: int = 0


class SendFailed(RetryableError, RuntimeError):
    """SQS did not take some messages, for a reason that may pass (server fault,
    throttling), or a caller of ``send`` asked that none be refused."""


# SQS answers these when the content of a message is at fault: a retry would be
# refused again. ``SendMessageBatch`` may report them per entry (``SenderFault``) or for
# the whole call (moto and AWS refuse a batch in which one message is too long).
CONTENT_REFUSALS = frozenset(
    {
        "InvalidMessageContents",
        "InvalidParameterValue",
        "MessageTooLong",
        "BatchRequestTooLong",
        "InvalidAttributeName",
        "InvalidAttributeValue",
    }
)
# Whatever SQS says, a refusal reason is logged and stored bounded: never the message.
MAX_REASON_CHARS = 300
# Sum of the bodies of one call. SQS allows 1 MiB since 2025 (256 KiB before, and in
# some SQS-compatible servers still): a bigger message goes in a call of its own.
MAX_BATCH_BYTES = 256 * 1024


@dataclass(frozen=True)
class Refused:
    """A message SQS refused for its content; it was not sent and will not be."""

    message: Outgoing
    code: str
    reason: str


@dataclass
class SendReport:
    sent: int = 0
    refused: list[Refused] = field(default_factory=list)


def error_code(error: ClientError) -> str:
    """SQS's own code (``InvalidParameterValue``), whichever protocol carried it."""
    details = error.response.get("Error", {})
    code = str(details.get("QueryErrorCode") or details.get("Code") or "")
    return code.removeprefix("AWS.SimpleQueueService.")


def refuses_content(error: ClientError) -> bool:
    return error_code(error) in CONTENT_REFUSALS


def bounded_reason(text: object) -> str:
    return " ".join(str(text).split())[:MAX_REASON_CHARS]


def chunks(items: Sequence[Outgoing]) -> Iterator[list[Outgoing]]:
    """Consecutive runs of at most ten messages and ``MAX_BATCH_BYTES``."""
    chunk: list[Outgoing] = []
    size = 0
    for item in items:
        if chunk and (len(chunk) == SEND_BATCH_SIZE or size + len(item.body) > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.body)
    if chunk:
        yield chunk


class BatchSender:
    """Sends messages with ``SendMessageBatch``, grouped by queue, ten to a call.

    ``deliver`` sets aside what SQS refuses for its content and raises on anything else
    (``ClientError`` for throttling or a server fault, ``SendFailed`` for an entry SQS
    failed on its side, connection errors as they come), so that a caller can roll back
    and send the same messages again.

    ``send`` is for callers that cannot set a message aside: it raises on a refusal too,
    and does not split a refused call to send the rest, since a caller that rolls back
    and tries again would otherwise send the rest again and again.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.urls = queue_urls(settings)

    def send(self, messages: Iterable[Outgoing]) -> int:
        report = self.deliver(messages, isolate=False)
        if report.refused:
            reasons = "; ".join(f"{r.code}: {r.reason}" for r in report.refused[:3])
            raise SendFailed(f"{len(report.refused)} message(s) refused: {reasons}")
        return report.sent

    def deliver(self, messages: Iterable[Outgoing], isolate: bool = True) -> SendReport:
        by_queue: dict[str, list[Outgoing]] = defaultdict(list)
        for message in messages:
            by_queue[message.queue].append(message)
        report = SendReport()
        for queue, items in by_queue.items():
            sqs = client_for(self.settings, queue)
            url = self.urls(queue)
            for chunk in chunks(items):
                self._send_chunk(sqs, url, queue, chunk, report, isolate)
        return report

    def _send_chunk(
        self,
        sqs: Any,
        url: str,
        queue: str,
        chunk: list[Outgoing],
        report: SendReport,
        isolate: bool,
    ) -> None:
        entries = [
            {
                "Id": str(index),
                "MessageBody": item.body,
                **(
                    {"DelaySeconds": min(MAX_DELAY_SECONDS, item.delay_seconds)}
                    if item.delay_seconds > 0
                    else {}
                ),
            }
            for index, item in enumerate(chunk)
        ]
        try:
            response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        except ClientError as exc:
            if not (isolate and refuses_content(exc)):
                raise
            if len(chunk) == 1:
                report.refused.append(
                    Refused(
                        chunk[0],
                        error_code(exc),
                        bounded_reason(exc.response.get("Error", {}).get("Message", "")),
                    )
                )
                return
            # The call does not say which message is at fault: halve until it does, so
            # that the others still go out.
            middle = len(chunk) // 2
            self._send_chunk(sqs, url, queue, chunk[:middle], report, isolate)
            self._send_chunk(sqs, url, queue, chunk[middle:], report, isolate)
            return
        refused, failed = split_failures(response, chunk)
        report.refused.extend(refused)
        report.sent += len(chunk) - len(refused) - len(failed)
        if failed:
            reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed[:3])
            raise SendFailed(
                f"{len(failed)} message(s) not taken by {queue}: {bounded_reason(reasons)}"
            )


def split_failures(
    response: dict[str, Any], chunk: Sequence[Outgoing]
) -> tuple[list[Refused], list[dict[str, Any]]]:
    """The failed entries of a ``SendMessageBatch`` answer: (refused for their content,
    failed on SQS's side). ``SenderFault`` is how SQS tells them apart."""
    refused: list[Refused] = []
    failed: list[dict[str, Any]] = []
    for entry in response.get("Failed") or []:
        if entry.get("SenderFault"):
            refused.append(
                Refused(
                    chunk[int(entry["Id"])],
                    str(entry.get("Code") or "SenderFault"),
                    bounded_reason(entry.get("Message") or ""),
                )
            )
        else:
            failed.append(entry)
    return refused, failed
