"""A retry that SQS refuses for its content is set aside; the retries beside it go out.

Against moto's SQS server, which refuses a message longer than its queue's
``MaximumMessageSize`` as SQS does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import select, update

from app.definitions.loader import load_text
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import relay_outbox, store_results
from app.pipeline.queues import queue_name
from app.pipeline.sqs import client, create_queues, queue_urls
from app.pipeline.sync import sync
from app.pipeline.wire import decode_result, decode_run_request, parse_body
from app.storage.db import sessions
from app.storage.models import CheckRow, CheckRunRow, OutboxRow
from tests.support.envelopes import run_request_of
from tests.support.processes import MotoServer, moto_server, wait_until
from tests.support.results import run_result
from tests.support.settings import make_settings

pytestmark = pytest.mark.processes

PADDING = "refused-padding-" * 6000  # far beyond the queue's limit below


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


def test_a_refused_retry_does_not_hold_up_the_others(
    database_url: str, moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        SYNMON_DATABASE_URL=database_url,
        SYNMON_SQS_ENDPOINT=moto.endpoint,
        SYNMON_LOCATIONS="eu-west-1",
    )
    create_queues(settings)
    queue = queue_name(settings, "run", "eu-west-1", "http")
    url = queue_urls(settings)(queue)
    client(settings).set_queue_attributes(
        QueueUrl=url, Attributes={"MaximumMessageSize": str(64 * 1024)}
    )
    checks = [
        {
            "id": check_id,
            "type": "http",
            "locations": ["eu-west-1"],
            "request": {"url": f"https://{check_id}.example"},
            "retry": {"strategy": "fixed", "max_retries": 1, "base_backoff": "1s"},
        }
        for check_id in ("small", "huge")
    ]
    Session = sessions(database_url)
    with Session() as session:
        sync(session, load_text(yaml.safe_dump({"checks": checks}), "c.yaml", settings))
    with Session.begin() as session:  # stored by a looser release: relay must cope
        definition = dict(
            session.scalars(select(CheckRow.definition).where(CheckRow.id == "huge")).one()
        )
        definition["request"] = {**definition["request"], "body": PADDING}
        session.execute(update(CheckRow).where(CheckRow.id == "huge").values(definition=definition))
    now = datetime.now(UTC)
    failures = [
        run_result(check_id=check_id, status="failed", error="boom", error_kind="network")
        for check_id in ("huge", "small")
    ]
    with Session.begin() as session:
        assert store_results(session, failures, settings, CheckCache(), now=now).retries == 2
    with caplog.at_level(logging.ERROR, logger="synmon.ingest"):
        assert relay_outbox(Session, settings) == 2
    assert relay_outbox(Session, settings) == 0  # both handled: nothing stalls the relay
    with Session() as session:
        assert all(row.sent_at is not None for row in session.scalars(select(OutboxRow)))
    messages = wait_until(  # sent with the retry's delay of 1 s
        lambda: (
            client(settings)
            .receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            .get("Messages")
        ),
        timeout=20,
        message="the retry of small",
    )
    assert [decode_run_request(run_request_of(m["Body"])).check["id"] for m in messages] == [
        "small"
    ]
    (record,) = [r for r in caplog.records if "refused a retry" in r.getMessage()]
    assert "huge" in record.getMessage() and PADDING[:100] not in record.getMessage()
    # The retry's run ends as one result all the same: failed, of kind config, final.
    results = client(settings).receive_message(
        QueueUrl=queue_urls(settings)(queue_name(settings, "results")), WaitTimeSeconds=1
    )["Messages"]
    (unsent,) = [decode_result(parse_body(m["Body"])) for m in results]
    huge = next(f for f in failures if f.check_id == "huge")
    assert (unsent.check_id, unsent.status, unsent.error_kind) == ("huge", "failed", "config")
    assert (unsent.attempt, unsent.root) == (2, huge.run_id)
    with Session.begin() as session:
        report = store_results(session, [unsent], settings, CheckCache())
    assert (report.inserted, report.retries) == (1, 0)  # final: a config failure is not retried
    with Session() as session:
        final = session.scalars(
            select(CheckRunRow.final).where(CheckRunRow.run_id == unsent.run_id)
        )
        assert final.one() is True
