"""The dispatcher's fast path writes exactly the messages of the general one, and its
parallel sends lose nothing and double nothing when one call fails.

The dispatcher writes run requests from templates (``RoundEncoder``, ``CeleryBodyTemplate``),
run ids without ``UUID`` objects and sends several ``SendMessageBatch`` calls at once; each
shortcut is compared here with the general code it stands in for, on hostile input.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from sqlalchemy import select

from app.definitions.loader import load_text
from app.execution.runs import RunRequest
from app.pipeline import sync as sync_module
from app.pipeline.dispatch import (
    RoundEncoder,
    dispatch_due,
    location_list,
    run_request_message,
)
from app.pipeline.queues import queue_name
from app.pipeline.schedule import advance, scheduled_run_id, scheduled_run_id_text, slot_text
from app.pipeline.sqs import (
    BatchSender,
    CeleryBodyTemplate,
    Outgoing,
    Splice,
    celery_task_body,
    client,
    create_queues,
    queue_urls,
)
from app.pipeline.wire import decode_run_request
from app.storage.db import sessions
from app.storage.models import CheckRow
from config.settings import Settings
from tests.support.dispatching import T0, checks_yaml
from tests.support.envelopes import envelope_of, run_request_of
from tests.support.processes import MotoServer, moto_server
from tests.support.settings import make_settings

# What a check author could put in a definition, or an operator in a name, to confuse a
# template: its markers, format fields, quotes, escapes, other scripts.
HOSTILE = [
    "plain",
    "\x00check\x00",
    "\\u0000check\\u0000",
    "{0}{1}%s%(x)s",
    '"quoted" \\ back',
    "5e5e5e5e-0000-4000-8000-5e5e5e5e5e5e",
    "1901-02-03T04:05:06.789012+00:00",
    "ünïcødé ✓ 日本",
    "line\nbreak\ttab",
]


def normalised(body: str) -> str:
    """A message body's envelope as text, its random delivery tag replaced."""
    text = base64.b64decode(body).decode()
    return re.sub(r'"delivery_tag":"[^"]*"', '"delivery_tag":"-"', text)


def inner(body: str) -> str:
    return base64.b64decode(envelope_of(body)["body"]).decode()


@pytest.mark.parametrize("queue", ["synmon-test-run-eu-west-1-http", 'q"{0}\\%s\x00'])
def test_a_body_template_writes_what_celery_task_body_writes(queue: str) -> None:
    template = CeleryBodyTemplate("synmon.run_http", queue, (43.0, 35.0))
    for argument in HOSTILE:
        argument_json = json.dumps({"x": argument, "raw": argument}, ensure_ascii=False)
        task_id = str(uuid.uuid4())
        fast = template.fill(argument_json, task_id)
        slow = celery_task_body(
            "synmon.run_http", argument_json, queue, task_id=task_id, time_limits=(43.0, 35.0)
        )
        assert normalised(fast) == normalised(slow)
        assert inner(fast) == inner(slow)
        assert envelope_of(fast)["properties"]["delivery_tag"] == task_id


@pytest.mark.parametrize("task_id", ["", "a" * 65, 'x","id":"y', "ab cd", "\x00", "ü"])
def test_a_body_template_refuses_a_task_id_that_is_not_a_token(task_id: str) -> None:
    with pytest.raises(ValueError):
        CeleryBodyTemplate("t", "q").fill("0", task_id)


def test_a_splice_fills_every_hole_and_leaves_values_alone() -> None:
    splice = Splice("a<1>b<2>c<1>d", ["<1>", "<2>"])
    assert splice("X", "Y") == "aXbYcXd"
    assert splice("<2>", "<1>") == "a<2>b<1>c<2>d"  # values are not scanned again
    assert Splice("no holes", ["<1>"])("X") == "no holes"


@pytest.mark.parametrize(
    "check_id", ["c0", "a|b", "ünï", "", "x" * 200, "5e5e5e5e-0000-4000-8000-5e5e5e5e5e5e"]
)
def test_run_ids_as_text_are_the_uuid5_run_ids(check_id: str) -> None:
    for slot in (T0, T0 + timedelta(microseconds=1), datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)):
        for location in ("eu-west-1", "ü|x"):
            expected = scheduled_run_id(check_id, location, slot)
            text = scheduled_run_id_text(check_id, location, slot_text(slot))
            assert text == str(expected) and uuid.UUID(text).version == 5


def request_of(check_id: str, kind: str, location: str, slot: datetime, now: datetime) -> Any:
    return RunRequest(
        run_id=scheduled_run_id(check_id, location, slot),
        check={"id": check_id, "type": kind},
        location=location,
        scheduled_at=slot,
        dispatched_at=now,
    )


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("kind", ["http", "browser"])
def test_the_round_encoder_writes_what_the_general_path_writes(version: int, kind: str) -> None:
    settings = make_settings(SYNMON_MESSAGE_VERSION=str(version))
    now = T0 + timedelta(seconds=3)
    encoder = RoundEncoder(settings, now)
    # A location that contains a marker cannot use a template: it takes the general path.
    for location in ("eu-west-1", "us-east-1", "5e5e5e5e-0000-4000-8000-5e5e5e5e5e5e"):
        for index, value in enumerate(HOSTILE):
            check_id = f"check-{index}"
            slot = T0 + timedelta(seconds=index, microseconds=index * 7)
            definition = json.dumps(
                {"id": check_id, "type": kind, "name": value, "tags": [value]}, ensure_ascii=False
            )
            run_id = scheduled_run_id_text(check_id, location, slot_text(slot))
            fast = encoder.message(
                check_id, kind, location, slot, slot_text(slot), run_id, definition
            )
            slow = run_request_message(
                request_of(check_id, kind, location, slot, now), settings, check_json=definition
            )
            assert fast.queue == slow.queue
            assert inner(fast.body) == inner(slow.body)
            assert normalised(fast.body) == normalised(slow.body)
            decoded = decode_run_request(run_request_of(fast.body))
            assert decoded.check["name"] == value and str(decoded.run_id) == run_id


@pytest.mark.parametrize(
    "stored", [None, "", "not json", '{"a": 1}', "[1, 2]", '"eu-west-1"', '["a", null]']
)
def test_stored_locations_that_are_not_a_list_of_names_dispatch_nothing(stored: Any) -> None:
    assert location_list(stored) == []


def test_stored_locations_are_read_as_written() -> None:
    assert location_list('["eu-west-1", "us-east-1"]') == ["eu-west-1", "us-east-1"]


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


def prepared(database_url: str, moto: MotoServer, checks: int) -> tuple[Settings, Any, str]:
    settings = make_settings(
        SYNMON_DATABASE_URL=database_url,
        SYNMON_SQS_ENDPOINT=moto.endpoint,
        SYNMON_LOCATIONS="eu-west-1",
    )
    create_queues(settings)
    Session = sessions(database_url)
    with Session() as session:
        definitions = load_text(checks_yaml(checks), "c.yaml", settings)
        with session.begin():
            plan = sync_module.plan(session, definitions)
            sync_module.apply(session, definitions, plan, now=T0)
    return settings, Session, queue_name(settings, "run", "eu-west-1", "http")


def drained(settings: Settings, queue: str) -> list[str]:
    """The run ids of every message on ``queue``, each delivery once."""
    sqs = client(settings)
    url = queue_urls(settings)(queue)
    run_ids: list[str] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=600
        ).get("Messages", [])
        if not messages:
            return run_ids
        run_ids.extend(run_request_of(m["Body"])["run_id"] for m in messages)


class FailingCall:
    """Fails the ``nth`` SendMessageBatch call a client makes, as an endpoint that drops
    the connection would, and counts the calls in flight at once."""

    def __init__(self, nth: int | None, pause: float = 0.0) -> None:
        self.nth = nth
        self.pause = pause
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def before_build(self, **_: Any) -> None:
        with self.lock:
            self.calls += 1
            fail = self.calls == self.nth
        if fail:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")

    def before_send(self, **_: Any) -> None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.pause)
        with self.lock:
            self.in_flight -= 1


def watched(settings: Settings, hook: FailingCall) -> Any:
    events = client(settings).meta.events
    events.register("before-parameter-build.sqs.SendMessageBatch", hook.before_build)
    events.register("before-send.sqs.SendMessageBatch", hook.before_send)
    return events


def unwatched(events: Any, hook: FailingCall) -> None:
    events.unregister("before-parameter-build.sqs.SendMessageBatch", hook.before_build)
    events.unregister("before-send.sqs.SendMessageBatch", hook.before_send)


def next_runs(Session: Any) -> dict[str, datetime]:
    with Session() as session:
        return dict(session.execute(select(CheckRow.id, CheckRow.next_run_at)).all())


@pytest.mark.processes
def test_a_failed_call_among_parallel_sends_loses_nothing_and_doubles_nothing(
    database_url: str, moto: MotoServer
) -> None:
    settings, Session, queue = prepared(database_url, moto, checks=95)
    before = next_runs(Session)
    now = T0 + timedelta(seconds=11)
    expected = {
        str(scheduled_run_id(c, "eu-west-1", advance(slot, 10.0, now)[0]))
        for c, slot in before.items()
    }
    assert len(expected) == 95 and all(slot <= now for slot in before.values())
    hook = FailingCall(nth=4, pause=0.05)
    events = watched(settings, hook)
    try:
        # Ten calls, four at a time; the fourth fails after others have gone out.
        with pytest.raises(EndpointConnectionError):
            dispatch_due(Session, settings, now=lambda: now)
        assert hook.calls == 10, "the calls beside the failed one were not all made"
        assert hook.most_in_flight >= 2, "the calls were not in flight at once"
        # Nothing counts as dispatched: every check is still due at the same slot.
        assert next_runs(Session) == before
        first = drained(settings, queue)
        assert len(first) == 85 and len(set(first)) == 85

        # The next tick sends the same slots under the same run ids: every run is on
        # the queue, and the ones sent twice carry one id (ingest keeps one result).
        hook.nth = None
        report = dispatch_due(Session, settings, now=lambda: now)
        second = drained(settings, queue)
    finally:
        unwatched(events, hook)
    assert len(report.runs) == 95 and len(second) == 95 and len(set(second)) == 95
    assert set(first) <= set(second) == expected
    assert all(after > now for after in next_runs(Session).values())
    # And a third tick has nothing left to send.
    assert not dispatch_due(Session, settings, now=lambda: now).runs
    assert drained(settings, queue) == []


@pytest.mark.processes
def test_parallel_deliver_reports_what_sequential_sends_report(moto: MotoServer) -> None:
    settings = make_settings(SYNMON_SQS_ENDPOINT=moto.endpoint, SYNMON_LOCATIONS="eu-west-1")
    create_queues(settings)
    queues = [queue_name(settings, "results"), queue_name(settings, "run", "eu-west-1", "http")]
    messages = [Outgoing(queues[i % 2], f"message {i}") for i in range(57)]
    parallel = BatchSender(settings).deliver(messages)
    sequential = BatchSender(settings, parallel=1).deliver(messages)
    assert parallel.sent == sequential.sent == 57
    assert parallel.refused == sequential.refused == []
    sqs = client(settings)
    bodies: list[str] = []
    for queue in queues:
        url = queue_urls(settings)(queue)
        while batch := sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", []):
            bodies.extend(m["Body"] for m in batch)
    assert sorted(bodies) == sorted([m.body for m in messages] * 2)


@pytest.mark.parametrize("pool", ["advance", "send"])
def test_a_forked_child_gets_helper_threads_of_its_own(pool: str) -> None:
    """A prefork worker's child inherits its parent's executors without their threads:
    work submitted there would wait forever."""
    from app.pipeline import dispatch
    from app.pipeline.sqs import send_pool

    def executor() -> Any:
        return dispatch._advancer() if pool == "advance" else send_pool(4)

    assert executor().submit(lambda: 1).result(5) == 1  # the parent's thread exists
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            ok = executor().submit(lambda: 2).result(5) == 2
        except BaseException:  # noqa: BLE001 - reported through the exit status
            ok = False
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    assert os.read(read, 1) == b"1" and status == 0
