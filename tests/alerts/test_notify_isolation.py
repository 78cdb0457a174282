"""Each notification is delivered on its own, outside any transaction: one that breaks
fails alone, a success is never sent again, a crashed sender's claim comes back after its
lease; and a check name or an error cannot add email headers or Slack mentions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_string
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import make_url

from app.alerts.channels import Notifier
from app.alerts.sender import NotificationSender, Outcome
from app.storage.db import sessions
from app.storage.models import NotificationRow
from config.settings import Settings
from tests.support.databases import sqlite_database
from tests.support.notifications import (
    PAYLOAD,
    SMTPServer,
    add_channel,
    add_notification,
    notification_rows,
    smtp_server,
)
from tests.support.processes import wait_until
from tests.support.servers import TargetHandler, TargetServer, http_target, serving
from tests.support.settings import make_settings


@pytest.fixture
def hooks() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with smtp_server() as server:
        yield server


def settings_for(database_url: str, *ports: int) -> Settings:
    return make_settings(
        SYNMON_DATABASE_URL=database_url,
        SYNMON_ALLOWED_TARGETS=",".join(f"127.0.0.1:{port}" for port in ports),
        SYNMON_SMTP_URL=f"smtp://127.0.0.1:{ports[-1]}",
    )


def hook_config(hooks: TargetServer, path: str = "/echo") -> dict[str, Any]:
    return {"url": hooks.url(path), "headers": {}, "to": []}


def delivered_run_ids(hooks: TargetServer) -> list[str]:
    return [json.loads(hit["body"])["run_id"] for hit in hooks.hits]


def make_due(database_url: str, notification_id: int) -> None:
    with sessions(database_url).begin() as session:
        session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == notification_id)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_an_unexpected_error_fails_that_notification_alone(
    database_url: str, hooks: TargetServer
) -> None:
    add_channel(database_url, "hook", "webhook", hook_config(hooks))
    add_channel(database_url, "odd", "webhook", ["not", "a", "mapping"])
    first = add_notification(database_url, "hook", {**PAYLOAD, "run_id": "first"})
    # Written by another release, say: no "event", so building the text raises KeyError.
    broken = add_notification(database_url, "hook", {"check_id": "api", "run_id": "broken"})
    odd = add_notification(database_url, "odd", {**PAYLOAD, "run_id": "odd"})
    last = add_notification(database_url, "hook", {**PAYLOAD, "run_id": "last"})
    sender = NotificationSender(settings_for(database_url, hooks.port), sessions(database_url))

    assert sender.send_due() == 4
    assert delivered_run_ids(hooks) == ["first", "last"]
    rows = notification_rows(database_url)
    assert rows[first].status == rows[last].status == "sent"
    assert rows[broken].status == "pending" and rows[broken].attempts == 1
    assert "KeyError" in (rows[broken].last_error or "")
    assert rows[broken].next_attempt_at > datetime.now(UTC)
    assert rows[odd].status == "pending" and "channel odd" in (rows[odd].last_error or "")

    # The broken ones come round again; the ones delivered are never sent a second time.
    make_due(database_url, broken)
    make_due(database_url, odd)
    assert sender.send_due() == 2
    assert delivered_run_ids(hooks) == ["first", "last"]
    rows = notification_rows(database_url)
    assert rows[broken].attempts == 2 and rows[first].attempts == rows[last].attempts == 1


def test_an_unreadable_channel_fails_its_notification_alone(
    tmp_path: Path, hooks: TargetServer
) -> None:
    with sqlite_database(tmp_path) as database_url:
        add_channel(database_url, "hook", "webhook", hook_config(hooks))
        add_channel(database_url, "garbled", "webhook", {})
        with sessions(database_url).begin() as session:  # not JSON: reading it raises
            session.execute(text("UPDATE channels SET config = '{oops' WHERE id = 'garbled'"))
        garbled = add_notification(database_url, "garbled", {**PAYLOAD, "run_id": "garbled"})
        good = add_notification(database_url, "hook", {**PAYLOAD, "run_id": "good"})
        sender = NotificationSender(settings_for(database_url, hooks.port), sessions(database_url))
        assert sender.send_due() == 2
        rows = notification_rows(database_url)
        assert rows[good].status == "sent" and delivered_run_ids(hooks) == ["good"]
        assert rows[garbled].status == "pending" and "JSONDecodeError" in (
            rows[garbled].last_error or ""
        )


def test_the_sender_loop_outlives_a_broken_notification(
    database_url: str, hooks: TargetServer
) -> None:
    add_channel(database_url, "hook", "webhook", hook_config(hooks))
    add_notification(database_url, "hook", {"run_id": "broken"})
    stop = threading.Event()
    sender = NotificationSender(
        settings_for(database_url, hooks.port), sessions(database_url), stop
    )
    loop = threading.Thread(target=sender.run_forever, kwargs={"interval": 0.05})
    loop.start()
    try:
        wait_until(lambda: notification_rows(database_url), message="first cycle")
        # Queued while the loop runs, after the broken one failed.
        add_notification(database_url, "hook", {**PAYLOAD, "run_id": "later"})
        wait_until(lambda: delivered_run_ids(hooks) == ["later"], message="later delivered")
    finally:
        stop.set()
        loop.join(timeout=30)
    assert not loop.is_alive()


class ObservingHandler(TargetHandler):
    """A webhook that, while it receives a notification, looks at the database from a
    connection of its own: is any session idle in a transaction, is the row locked?"""

    server: ObservingServer

    def do_POST(self) -> None:
        url = make_url(self.server.database_url)
        connection = psycopg2.connect(
            host=url.host, port=url.port, user=url.username, dbname=url.database
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()"
                )
                (idle_in_transaction,) = cursor.fetchone() or (None,)
                try:
                    cursor.execute("SELECT id FROM notifications FOR UPDATE NOWAIT")
                    locked = False
                except psycopg2.errors.LockNotAvailable:
                    locked = True
            connection.rollback()
        finally:
            connection.close()
        self.server.observations.append((idle_in_transaction, locked))
        self._route()


class ObservingServer(TargetServer):
    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.RequestHandlerClass = ObservingHandler
        self.database_url = database_url
        self.observations: list[tuple[int | None, bool]] = []


def test_no_transaction_is_open_while_delivering(postgres_url: str) -> None:
    with serving(ObservingServer(postgres_url)) as server:
        add_channel(postgres_url, "hook", "webhook", hook_config(server))
        ids = [
            add_notification(postgres_url, "hook", {**PAYLOAD, "run_id": f"n{i}"}) for i in range(3)
        ]
        sender = NotificationSender(settings_for(postgres_url, server.port), sessions(postgres_url))
        assert sender.send_due() == 3
    assert server.observations == [(0, False)] * 3
    assert {notification_rows(postgres_url)[i].status for i in ids} == {"sent"}


def test_a_crashed_senders_claim_is_retried_after_its_lease(
    database_url: str, hooks: TargetServer
) -> None:
    add_channel(database_url, "hook", "webhook", hook_config(hooks))
    notification = add_notification(database_url, "hook", {**PAYLOAD, "run_id": "once"})
    settings = settings_for(database_url, hooks.port)
    crashed = NotificationSender(settings, sessions(database_url), lease=timedelta(seconds=1))
    claim = crashed.claim(notification, 0)
    assert claim is not None  # ...and then its process died before delivering

    survivor = NotificationSender(settings, sessions(database_url))
    assert survivor.send_due() == 0  # still leased
    assert hooks.hits == []
    wait_until(lambda: survivor.send_due() == 1, timeout=15, message="claim after the lease")
    assert delivered_run_ids(hooks) == ["once"]
    row = notification_rows(database_url)[notification]
    assert row.status == "sent" and row.attempts == 2
    # The crashed sender, had it only stalled, cannot overwrite the newer outcome.
    assert not crashed.record(claim, Outcome("failed", "too late"))
    assert notification_rows(database_url)[notification].status == "sent"
    assert survivor.send_due() == 0 and len(hooks.hits) == 1


def test_email_headers_refuse_line_breaks(database_url: str, smtp: SMTPServer) -> None:
    add_channel(
        database_url, "mail", "email", {"url": None, "headers": {}, "to": ["oncall@example.com"]}
    )
    sneaky_to = "oncall@example.com\r\nBcc: evil@attacker.example"
    add_channel(database_url, "sneaky", "email", {"url": None, "headers": {}, "to": [sneaky_to]})
    add_channel(
        database_url,
        "listed",
        "email",
        {"url": None, "headers": {}, "to": ["a@x.example, evil@attacker.example"]},
    )
    hostile = {
        **PAYLOAD,
        "check_name": "API\r\nBcc: evil@attacker.example",
        "error": "refused\r\nX-Injected: yes\n\nforged body",
    }
    mail = add_notification(database_url, "mail", hostile)
    sneaky = add_notification(database_url, "sneaky", PAYLOAD)
    listed = add_notification(database_url, "listed", PAYLOAD)
    sender = NotificationSender(settings_for(database_url, smtp.port), sessions(database_url))

    assert sender.send_due() == 3
    rows = notification_rows(database_url)
    assert rows[mail].status == "sent"
    for refused in (sneaky, listed):
        assert rows[refused].status == "failed"
        assert "to: " in (rows[refused].last_error or "")
        assert "is not an email address" in (rows[refused].last_error or "")
    (envelope,) = smtp.envelopes
    assert envelope.recipients == ["<oncall@example.com>"]
    headers = message_from_string(envelope.data.split("\n\n", 1)[0] + "\n\n", policy=default_policy)
    assert headers["Bcc"] is None and headers["X-Injected"] is None
    assert headers["To"] == "oncall@example.com"
    assert str(headers["Subject"]).startswith("🔴 API Bcc: evil@attacker.example is failing")
    assert "refused X-Injected: yes forged body" in str(headers["Subject"])


def test_slack_text_is_escaped(database_url: str, hooks: TargetServer) -> None:
    add_channel(database_url, "chat", "slack", hook_config(hooks))
    add_channel(database_url, "hook", "webhook", hook_config(hooks))
    hostile = {
        **PAYLOAD,
        "check_name": "Shop & API",
        "error": "<!channel> see <https://evil.example|your bank> <@U123>",
    }
    add_notification(database_url, "chat", hostile)
    add_notification(database_url, "hook", hostile)
    sender = NotificationSender(settings_for(database_url, hooks.port), sessions(database_url))
    assert sender.send_due() == 2
    slack, webhook = (json.loads(hit["body"]) for hit in hooks.hits)
    assert slack == {
        "text": "🔴 Shop &amp; API is failing in eu-west-1: &lt;!channel&gt; see "
        "&lt;https://evil.example|your bank&gt; &lt;@U123&gt;"
    }
    # A webhook's consumer gets JSON, not mrkdwn: its text is left as it was.
    assert webhook["text"] == "🔴 Shop & API is failing in eu-west-1: " + hostile["error"]


def test_a_trickling_endpoint_cannot_hold_the_sender(
    database_url: str, hooks: TargetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read of /trickle comes well within the socket timeout; only a bound on the
    whole delivery stops it (1 s here instead of 10, to keep the test short)."""
    monkeypatch.setattr(Notifier, "timeout", 1)
    add_channel(database_url, "slow", "webhook", hook_config(hooks, "/trickle"))
    add_channel(database_url, "hook", "webhook", hook_config(hooks))
    slow = add_notification(database_url, "slow", {**PAYLOAD, "run_id": "slow"})
    good = add_notification(database_url, "hook", {**PAYLOAD, "run_id": "good"})
    sender = NotificationSender(settings_for(database_url, hooks.port), sessions(database_url))
    assert sender.send_due() == 2
    rows = notification_rows(database_url)
    assert rows[good].status == "sent"
    assert rows[slow].status == "pending"
    assert "no answer within 1s" in (rows[slow].last_error or "")
