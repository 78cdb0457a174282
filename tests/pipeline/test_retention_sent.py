"""Retention of the outboxes: notifications sent, and retries sent, longer ago than the raw
runs' retention go, in batches; pending and failed ones stay whatever their age."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from app.execution.artifacts import FolderStore
from app.pipeline.retention import Pruned, plan, prune
from app.storage.bulk import table_of
from app.storage.models import NotificationRow, OutboxRow
from tests.pipeline.test_ingest import NOW, definitions, prepare

DAY = timedelta(days=1)
NOTIFICATIONS = table_of(NotificationRow)
OUTBOX = table_of(OutboxRow)


def notification(status: str, sent: datetime | None, created: datetime) -> dict[str, Any]:
    return {
        "check_id": "api",
        "channel_id": "hook",
        "event": "failure",
        "run_id": uuid.uuid4(),
        "payload": {"event": "failure"},
        "status": status,
        "attempts": 1,
        "next_attempt_at": created,
        "created_at": created,
        "sent_at": sent,
    }


def retry(sent: datetime | None, created: datetime) -> dict[str, Any]:
    return {
        "run_id": uuid.uuid4(),
        "queue": "synmon-test-run-eu-west-1-http",
        "body": {"v": 2},
        "not_before": created,
        "created_at": created,
        "sent_at": sent,
    }


def test_sent_notifications_and_retries_go_after_the_runs_retention(
    database_url: str, tmp_path: Path
) -> None:
    settings, Session = prepare(database_url, definitions())
    settings = settings.with_overrides(prune_batch_size=2)
    old, young = NOW - 31 * DAY, NOW - 29 * DAY
    notifications = {
        "sent-old": notification("sent", old, old),
        "sent-old-2": notification("sent", old + timedelta(hours=1), old),
        "sent-old-3": notification("sent", old + timedelta(hours=2), old),
        "sent-young": notification("sent", young, old),  # sent late: counts from sending
        "pending-old": notification("pending", None, old),
        "failed-old": notification("failed", None, old),
    }
    retries = {
        "sent-old": retry(old, old),
        "sent-old-2": retry(old - DAY, old - DAY),
        "sent-old-3": retry(old - 2 * DAY, old - 2 * DAY),
        "sent-young": retry(young, young),
        "unsent-old": retry(None, old),
    }
    with Session.begin() as session:
        session.execute(insert(NOTIFICATIONS), list(notifications.values()))
        session.execute(insert(OUTBOX), list(retries.values()))

    expected = Pruned(notifications=3, outbox=3)
    with Session() as session:
        assert plan(session, settings, NOW) == expected
    # Batches of two: three rows of each take two transactions, and each goes once.
    assert prune(Session, settings, FolderStore(tmp_path), NOW) == expected
    with Session() as session:
        kept_notifications = set(session.scalars(select(NOTIFICATIONS.c.run_id)))
        kept_retries = set(session.scalars(select(OUTBOX.c.run_id)))
        assert plan(session, settings, NOW) == Pruned()
    assert kept_notifications == {
        notifications[k]["run_id"] for k in ("sent-young", "pending-old", "failed-old")
    }
    assert kept_retries == {retries[k]["run_id"] for k in ("sent-young", "unsent-old")}


def test_a_pass_out_of_budget_leaves_the_outboxes_for_the_next(
    database_url: str, tmp_path: Path
) -> None:
    settings, Session = prepare(database_url, definitions())
    old = NOW - 40 * DAY
    with Session.begin() as session:
        session.execute(insert(NOTIFICATIONS), [notification("sent", old, old)])
    assert prune(Session, settings, FolderStore(tmp_path), NOW, budget=0.0) == Pruned()
    assert prune(Session, settings, FolderStore(tmp_path), NOW).notifications == 1
    with Session() as session:
        assert session.scalar(select(func.count()).select_from(NOTIFICATIONS)) == 0
