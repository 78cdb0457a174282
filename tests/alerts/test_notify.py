"""Notifications leave the outbox for real endpoints: a webhook and Slack on a local HTTP
server, email on a local SMTP server; failures retry, permanent ones stop."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.alerts.sender import NotificationSender
from app.storage.db import sessions
from app.storage.models import ChannelRow, NotificationRow
from tests.support.notifications import PAYLOAD, SMTPServer, smtp_server
from tests.support.servers import TargetServer, http_target
from tests.support.settings import make_settings


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def hooks() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


def queue(database_url: str, channels: dict[str, tuple[str, dict[str, Any]]]) -> None:
    now = datetime.now(UTC)
    with sessions(database_url).begin() as session:
        for channel_id, (kind, config) in channels.items():
            session.add(
                ChannelRow(id=channel_id, type=kind, config=config, created_at=now, updated_at=now)
            )
            session.add(
                NotificationRow(
                    check_id="api",
                    channel_id=channel_id,
                    event="failure",
                    run_id=uuid.UUID(PAYLOAD["run_id"]),
                    payload=PAYLOAD,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )


def notifications(database_url: str) -> dict[str, NotificationRow]:
    with sessions(database_url)() as session:
        return {row.channel_id: row for row in session.scalars(select(NotificationRow))}


def test_webhook_slack_and_email_are_delivered(
    database_url: str, hooks: TargetServer, smtp: SMTPServer
) -> None:
    queue(
        database_url,
        {
            "hook": (
                "webhook",
                {"url": hooks.url("/echo"), "headers": {"X-Token": "abc"}, "to": []},
            ),
            "chat": ("slack", {"url": hooks.url("/echo"), "headers": {}, "to": []}),
            "mail": ("email", {"url": None, "headers": {}, "to": ["oncall@example.com"]}),
        },
    )
    settings = make_settings(
        SYNMON_DATABASE_URL=database_url,
        SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{hooks.port},127.0.0.1:{smtp.server_address[1]}",
        SYNMON_SMTP_URL=f"smtp://127.0.0.1:{smtp.server_address[1]}",
    )
    assert NotificationSender(settings, sessions(database_url)).send_due() == 3
    rows = notifications(database_url)
    assert {k: r.status for k, r in rows.items()} == {
        "hook": "sent",
        "chat": "sent",
        "mail": "sent",
    }
    bodies = [json.loads(hit["body"]) for hit in hooks.hits]
    webhook = next(b for b in bodies if "check_id" in b)
    assert webhook["event"] == "failure" and webhook["error"] == "connection refused"
    assert "API is failing in eu-west-1" in webhook["text"]
    assert (
        next(h for h in hooks.hits if json.loads(h["body"]).get("check_id"))["headers"]["X-Token"]
        == "abc"
    )
    slack = next(b for b in bodies if set(b) == {"text"})
    assert slack["text"].startswith("🔴 API is failing in eu-west-1")
    (mail,) = smtp.messages
    assert "oncall@example.com" in mail and "connection refused" in mail
    # Sent once: nothing is pending any more.
    assert NotificationSender(settings, sessions(database_url)).send_due() == 0


def test_a_failing_endpoint_is_retried_and_a_refusing_one_is_not(
    database_url: str, hooks: TargetServer
) -> None:
    queue(
        database_url,
        {
            "flaky": ("webhook", {"url": hooks.url("/status/503"), "headers": {}, "to": []}),
            "wrong": ("webhook", {"url": hooks.url("/status/404"), "headers": {}, "to": []}),
            "private": ("webhook", {"url": "http://10.0.0.1/hook", "headers": {}, "to": []}),
        },
    )
    settings = make_settings(
        SYNMON_DATABASE_URL=database_url, SYNMON_ALLOWED_TARGETS=f"127.0.0.1:{hooks.port}"
    )
    NotificationSender(settings, sessions(database_url)).send_due()
    rows = notifications(database_url)
    assert rows["flaky"].status == "pending" and rows["flaky"].attempts == 1
    assert rows["flaky"].next_attempt_at > datetime.now(UTC) + timedelta(seconds=5)
    assert "503" in (rows["flaky"].last_error or "")
    assert rows["wrong"].status == "failed" and "refused the notification (404)" in (
        rows["wrong"].last_error or ""
    )
    # The target guard applies to notification endpoints too.
    assert rows["private"].status == "failed" and "not allowed" in (
        rows["private"].last_error or ""
    )
