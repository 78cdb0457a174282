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
from concurrent.futures import ThreadPoolExecutor, wait
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
    envelope = _envelope(
        base64.b64encode(body.encode()).decode(),
        task_name,
        queue,
        task_id,
        time_limits,
        str(uuid.uuid4()),
    )
    return base64.b64encode(json.dumps(envelope, separators=(",", ":")).encode()).decode()


def _envelope(
    body: str,
    task_name: str,
    queue: str,
    task_id: str,
    time_limits: tuple[float | None, float | None],
    delivery_tag: str,
) -> dict[str, Any]:
    return {
        "body": body,
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
            "delivery_tag": delivery_tag,
        },
    }


class CeleryBodyTemplate:
    """``celery_task_body`` for many messages of one task and queue, at a fraction of its
    cost: the envelope is serialised once, with markers where the argument, the task id
    and the delivery tag go, and each message fills them in. The dispatcher writes
    thousands of run requests a second, and serialising the same headers each time was
    a third of its work.

    The markers cannot be mistaken for anything the envelope holds: they contain a NUL,
    which ``json.dumps`` always escapes. Whatever goes in their place is JSON-safe by
    construction: base64 text, and a task id that ``fill`` checks is a plain token.
    """

    _BODY = "\x00body\x00"
    _ID = "\x00id\x00"
    _TAG = "\x00tag\x00"

    def __init__(
        self,
        task_name: str,
        queue: str,
        time_limits: tuple[float | None, float | None] = (None, None),
    ) -> None:
        # The envelope celery_task_body builds, so that the two cannot drift apart.
        envelope = _envelope(self._BODY, task_name, queue, self._ID, time_limits, self._TAG)
        text = json.dumps(envelope, separators=(",", ":"))
        # The markers went through json.dumps: their NULs are escaped now.
        self._splice = Splice(
            text, [json.dumps(marker)[1:-1] for marker in (self._BODY, self._ID, self._TAG)]
        )
        self._prefix = "[["
        self._suffix = '],{},{"callbacks":null,"errbacks":null,"chain":null,"chord":null}]'

    def fill(self, argument_json: str, task_id: str) -> str:
        """The body ``celery_task_body(task_name, argument_json, queue, task_id, ...)``
        would give, but for its delivery tag, which is the task id: kombu's SQS transport
        replaces the tag with the message's receipt handle when it receives it
        (``Channel._envelope_payload``), so no consumer reads it, and a random one per
        message cost a tenth of the dispatcher's time."""
        if not _TOKEN.fullmatch(task_id):
            raise ValueError("a task id is a token of letters, digits and -")
        inner = base64.b64encode((self._prefix + argument_json + self._suffix).encode()).decode()
        return base64.b64encode(self._splice(inner, task_id, task_id).encode()).decode()


class Splice:
    """Text with holes where markers were, filled by joining its pieces: ``str.format``
    on a template of a kilobyte cost more than the rest of a message (it parses the
    template on every call). ``Splice(text, markers)(value, ...)``: each occurrence of
    ``markers[i]`` in ``text`` is replaced by the i-th value."""

    def __init__(self, text: str, markers: Sequence[str]) -> None:
        pattern = "|".join(re.escape(marker) for marker in markers)
        self._parts = re.split(f"({pattern})", text)
        # re.split with a group puts each separator at an odd index.
        self._holes = [
            (index, list(markers).index(part))
            for index, part in enumerate(self._parts)
            if index % 2 == 1
        ]

    def __call__(self, *values: str) -> str:
        parts = self._parts.copy()
        for index, which in self._holes:
            parts[index] = values[which]
        return "".join(parts)


# What a task id may be when it goes into a template unescaped.
_TOKEN = re.compile(r"[A-Za-z0-9-]{1,64}")


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


# SendMessageBatch calls a process keeps in flight (see BatchSender.deliver). Four
# keep a round's hundred calls from being a hundred round trips in a row without
# approaching SQS's per-queue limits or the client's connection pool.
SEND_THREADS = 4
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def send_pool(threads: int) -> ThreadPoolExecutor:
    """This process's sending threads (a forked child makes its own: threads do not
    survive a fork)."""
    key = (os.getpid(), threads)
    with _clients_lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="synmon-sqs-send")
        return _pools[key]


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

    def __init__(self, settings: Settings, parallel: int = SEND_THREADS) -> None:
        self.settings = settings
        self.urls = queue_urls(settings)
        self.parallel = max(1, parallel)

    def send(self, messages: Iterable[Outgoing]) -> int:
        report = self.deliver(messages, isolate=False)
        if report.refused:
            reasons = "; ".join(f"{r.code}: {r.reason}" for r in report.refused[:3])
            raise SendFailed(f"{len(report.refused)} message(s) refused: {reasons}")
        return report.sent

    def deliver(self, messages: Iterable[Outgoing], isolate: bool = True) -> SendReport:
        """Send ``messages``; with ``isolate`` (``deliver``'s callers), several calls at
        a time.

        A call to SQS is a round trip of some milliseconds that the dispatcher's thread
        spent waiting, one after another: a round of a thousand checks is a hundred
        calls. So ``deliver`` keeps up to ``parallel`` calls in flight, over the one
        client of the queue's region (botocore's clients are safe to share between
        threads, and their creation is guarded by a lock). When a call fails, the
        others in flight are waited for, and then the first failure (in message order)
        is raised: the caller rolls back and sends the same messages (the same run ids)
        again, as it would after a failure of sequential sends, which had sent the
        calls before the failed one too. ``send`` stays sequential: its callers
        retry a refused call, and should not send the calls after it each time.
        """
        by_queue: dict[str, list[Outgoing]] = defaultdict(list)
        for message in messages:
            by_queue[message.queue].append(message)
        calls = [
            (client_for(self.settings, queue), self.urls(queue), queue, chunk)
            for queue, items in by_queue.items()
            for chunk in chunks(items)
        ]
        report = SendReport()
        if not isolate or self.parallel == 1 or len(calls) == 1:
            for sqs, url, queue, chunk in calls:
                self._send_chunk(sqs, url, queue, chunk, report, isolate)
            return report
        reports = [SendReport() for _ in calls]
        futures = [
            send_pool(self.parallel).submit(self._send_chunk, *call, part, isolate)
            for call, part in zip(calls, reports, strict=True)
        ]
        wait(futures)
        for future in futures:
            if (error := future.exception()) is not None:
                raise error
        for part in reports:
            report.sent += part.sent
            report.refused.extend(part.refused)
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
