"""A run request SQS refuses for its content is set aside; the rest of the tick goes out.

Against moto's SQS server: moto, like SQS, refuses a message longer than its queue's
``MaximumMessageSize`` (and refuses the whole ``SendMessageBatch`` call for it, so the
sender has to find the culprit); a transient failure (the endpoint down) still rolls the
tick back so that nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from sqlalchemy import select, update

from app.definitions.loader import load_text
from app.execution.runs import RunResult
from app.pipeline import sync as sync_module
from app.pipeline.dispatch import dispatch_due
from app.pipeline.queues import queue_name
from app.pipeline.schedule import scheduled_run_id
from app.pipeline.sqs import (
    BatchSender,
    Outgoing,
    client,
    create_queues,
    queue_urls,
    split_failures,
)
from app.pipeline.wire import decode_result, decode_run_request, parse_body
from app.storage.db import sessions
from app.storage.models import CheckRow
from config.settings import Settings
from tests.support.dispatching import T0, checks_yaml
from tests.support.envelopes import run_request_of
from tests.support.processes import MotoServer, free_port, moto_server
from tests.support.settings import make_settings

pytestmark = pytest.mark.processes

QUEUE_LIMIT = 64 * 1024
# Far beyond the queue's limit once base64-encoded twice, far below the batch budget.
PADDING = "refused-padding-" * 6000


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


def sqs_settings(database_url: str, endpoint: str) -> Settings:
    return make_settings(
        SYNMON_DATABASE_URL=database_url, SYNMON_SQS_ENDPOINT=endpoint, SYNMON_LOCATIONS="eu-west-1"
    )


def prepare(database_url: str, moto: MotoServer, checks: int) -> tuple[Settings, Any, str]:
    """``checks`` good checks and ``huge``, whose stored definition is too long for SQS."""
    settings = sqs_settings(database_url, moto.endpoint)
    create_queues(settings)
    queue = queue_name(settings, "run", "eu-west-1", "http")
    client(settings).set_queue_attributes(
        QueueUrl=queue_urls(settings)(queue), Attributes={"MaximumMessageSize": str(QUEUE_LIMIT)}
    )
    Session = sessions(database_url)
    text = checks_yaml(checks).replace("checks:\n", "checks:\n" + huge_check_yaml(), 1)
    with Session() as session:
        definitions = load_text(text, "c.yaml", settings)
        with session.begin():
            plan = sync_module.plan(session, definitions)
            sync_module.apply(session, definitions, plan, now=T0)
    # Stored as an older release (or a looser limit) let it be: the dispatcher must cope.
    with Session.begin() as session:
        definition = dict(
            session.scalars(select(CheckRow.definition).where(CheckRow.id == "huge")).one()
        )
        definition["request"] = {**definition["request"], "body": PADDING}
        session.execute(update(CheckRow).where(CheckRow.id == "huge").values(definition=definition))
    return settings, Session, queue


def huge_check_yaml() -> str:
    return (
        "- id: huge\n  type: http\n  frequency: 10s\n  locations: [eu-west-1]\n"
        "  request: {url: 'https://x.example/huge'}\n"
    )


def received(settings: Settings, queue: str) -> list[Any]:
    sqs = client(settings)
    url = queue_urls(settings)(queue)
    requests: list[Any] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=600
        ).get("Messages", [])
        if not messages:
            return requests
        requests.extend(decode_run_request(run_request_of(m["Body"])) for m in messages)


def results_of(settings: Settings) -> list[RunResult]:
    sqs = client(settings)
    url = queue_urls(settings)(queue_name(settings, "results"))
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=600
    ).get("Messages", [])
    return [decode_result(parse_body(m["Body"])) for m in messages]


def next_runs(Session: Any) -> dict[str, datetime]:
    with Session() as session:
        return dict(session.execute(select(CheckRow.id, CheckRow.next_run_at)).all())


def refused_count(code: str = "InvalidParameterValue") -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "synmon_refused_runs_total", {"location": "eu-west-1", "kind": "http", "code": code}
    )
    return value or 0.0


def test_a_refused_run_request_is_set_aside_and_the_tick_goes_on(
    database_url: str, moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings, Session, queue = prepare(database_url, moto, checks=12)
    before = next_runs(Session)
    counted = refused_count()
    caplog.set_level(logging.WARNING, logger="synmon.dispatch")

    now = T0 + timedelta(seconds=11)
    report = dispatch_due(Session, settings, now=lambda: now)

    requests = received(settings, queue)
    assert sorted(r.check_id for r in requests) == sorted(f"c{i}" for i in range(12))
    assert report.checks == 13 and len(report.runs) == 12 and len(report.refused) == 1
    after = next_runs(Session)
    # Every check moved to its next slot, the refused one too (it is not retried each tick).
    assert all(after[check] > before[check] for check in before)
    assert after["huge"] > now
    assert refused_count() == counted + 1
    (warning,) = [r for r in caplog.records if "refused by SQS" in r.getMessage()]
    assert "huge" in warning.getMessage() and "InvalidParameterValue" in warning.getMessage()
    assert "refused-padding" not in caplog.text  # the body never reaches the log
    # The refused run still ends as one result: a failed one, of kind config, on the
    # results queue as a worker would send it.
    (unsent,) = results_of(settings)
    assert (unsent.check_id, unsent.status, unsent.error_kind) == ("huge", "failed", "config")
    assert unsent.run_id == scheduled_run_id("huge", "eu-west-1", unsent.scheduled_at)
    assert "SQS refused this run's request" in (unsent.error or "")

    # The next slot: the good checks go out again, the refused one is refused once more.
    later = T0 + timedelta(seconds=21)
    dispatch_due(Session, settings, now=lambda: later)
    assert sorted(r.check_id for r in received(settings, queue)) == sorted(
        f"c{i}" for i in range(12)
    )
    assert refused_count() == counted + 2


def test_a_transient_failure_still_rolls_the_tick_back(database_url: str, moto: MotoServer) -> None:
    settings, Session, queue = prepare(database_url, moto, checks=3)
    before = next_runs(Session)
    down = sqs_settings(database_url, f"http://127.0.0.1:{free_port()}")
    now = T0 + timedelta(seconds=11)
    # Nothing listens there: the send fails, and no check may count as dispatched.
    with pytest.raises(EndpointConnectionError):
        dispatch_due(Session, down, BatchSender(down).deliver, now=lambda: now)
    assert next_runs(Session) == before

    dispatch_due(Session, settings, now=lambda: now)
    assert sorted(r.check_id for r in received(settings, queue)) == ["c0", "c1", "c2"]


def test_a_message_past_the_batch_limit_goes_alone_and_is_refused_alone(moto: MotoServer) -> None:
    settings = sqs_settings("sqlite://", moto.endpoint)
    create_queues(settings)
    queue = queue_name(settings, "results")
    too_long = Outgoing(queue, "y" * (1024 * 1024 + 1))
    good = [Outgoing(queue, f"fine {i}") for i in range(15)]

    report = BatchSender(settings).deliver([*good[:7], too_long, *good[7:]])

    assert report.sent == 15
    assert [r.message for r in report.refused] == [too_long]
    assert report.refused[0].code in ("InvalidParameterValue", "BatchRequestTooLong")
    sqs = client(settings)
    url = queue_urls(settings)(queue)
    bodies: set[str] = set()
    for _ in range(10):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        bodies.update(m["Body"] for m in messages)
    assert bodies == {m.body for m in good}


def test_per_entry_failures_are_told_apart_by_sender_fault(moto: MotoServer) -> None:
    """SQS may answer a batch with per-entry failures instead: ``SenderFault`` entries are
    the content's fault (set aside), the others SQS's (retried). moto answers this way
    for a delay out of range."""
    settings = sqs_settings("sqlite://", moto.endpoint)
    create_queues(settings)
    queue = queue_name(settings, "results")
    chunk = [Outgoing(queue, "fine"), Outgoing(queue, "delayed too long")]
    response = client(settings).send_message_batch(
        QueueUrl=queue_urls(settings)(queue),
        Entries=[
            {"Id": "0", "MessageBody": "fine"},
            {"Id": "1", "MessageBody": "delayed too long", "DelaySeconds": 901},
        ],
    )
    refused, failed = split_failures(response, chunk)
    assert [r.message for r in refused] == [chunk[1]] and not failed
    assert refused[0].code == "InvalidParameterValue" and "DelaySeconds" in refused[0].reason
    refused, failed = split_failures(
        {"Failed": [{"Id": "0", "SenderFault": False, "Code": "InternalError"}]}, chunk
    )
    assert not refused and failed[0]["Code"] == "InternalError"


def test_send_does_not_split_a_refused_call(moto: MotoServer) -> None:
    """``send`` serves callers that roll back and try again (ingest's outbox): sending the
    rest of a refused call would send it again on every try."""
    settings = sqs_settings("sqlite://", moto.endpoint)
    create_queues(settings)
    queue = queue_name(settings, "results")
    url = queue_urls(settings)(queue)
    client(settings).set_queue_attributes(
        QueueUrl=url, Attributes={"MaximumMessageSize": str(QUEUE_LIMIT)}
    )
    messages = [Outgoing(queue, "fine 1"), Outgoing(queue, PADDING), Outgoing(queue, "fine 2")]
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        BatchSender(settings).send(messages)
    assert "Messages" not in client(settings).receive_message(QueueUrl=url, MaxNumberOfMessages=10)
