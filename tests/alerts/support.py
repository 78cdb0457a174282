"""A check that fails and recovers through the real ingest, and the sender that delivers
what it queued: the path a notification takes, from a run to a channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.alerts.sender import NotificationSender
from app.definitions.loader import load_text
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import store_results
from app.pipeline.sync import sync
from app.storage.db import sessions
from app.storage.incidents import IncidentRow
from app.storage.models import NotificationRow
from config.settings import Settings
from tests.support.results import run_result
from tests.support.settings import make_settings

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@dataclass
class Monitored:
    """Check ``api`` (one failure alerts, recoveries and degraded notices on) sending to
    ``channels``, synced into ``database_url``."""

    settings: Settings
    Session: sessionmaker[Session]
    minute: int = 0

    def run(self, *statuses: str) -> None:
        """Ingest one final result per status, a minute apart."""
        results = []
        for status in statuses:
            started = START + timedelta(minutes=self.minute)
            self.minute += 1
            results.append(
                run_result(
                    status=status,
                    scheduled_at=started,
                    started_at=started,
                    finished_at=started + timedelta(milliseconds=20),
                    duration_ms=20.0,
                    error="connection refused" if status == "failed" else None,
                    error_kind="network" if status == "failed" else None,
                )
            )
        for result in results:
            with self.Session.begin() as session:
                store_results(session, [result], self.settings, CheckCache(), now=START)

    def send(self) -> int:
        return NotificationSender(self.settings, self.Session).send_due()

    def notifications(self) -> list[NotificationRow]:
        with self.Session() as session:
            return list(session.scalars(select(NotificationRow).order_by(NotificationRow.id)))

    def incidents(self) -> list[IncidentRow]:
        with self.Session() as session:
            return list(session.scalars(select(IncidentRow).order_by(IncidentRow.id)))

    def make_due(self, notification_id: int) -> None:
        with self.Session.begin() as session:
            session.execute(
                update(NotificationRow)
                .where(NotificationRow.id == notification_id)
                .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            )


def monitored(
    database_url: str,
    channels: Sequence[dict[str, Any]],
    ports: Sequence[int] = (),
    **env: str,
) -> Monitored:
    settings = make_settings(
        SYNMON_DATABASE_URL=database_url,
        SYNMON_ALLOWED_TARGETS=",".join(f"127.0.0.1:{port}" for port in ports),
        **env,
    )
    text = yaml.safe_dump(
        {
            "channels": list(channels),
            "checks": [
                {
                    "id": "api",
                    "name": "API",
                    "type": "http",
                    "frequency": "1m",
                    "locations": ["eu-west-1"],
                    "request": {"url": "https://api.example.com"},
                    "alert": {
                        "after_failures": 1,
                        "channels": [channel["id"] for channel in channels],
                        "notify_recovery": True,
                        "notify_degraded": True,
                    },
                }
            ],
        }
    )
    Session = sessions(database_url)
    with Session() as session:
        sync(session, load_text(text, "channels.yaml", settings))
    return Monitored(settings, Session)
