"""Incidents: one row per period in which a check alerts (migration 0006).

An incident opens when a check's derived state starts alerting (its failing locations
reach the quorum, each after its own ``after_failures``) and closes when it stops: the
same moments as the failure and the recovery notification, so one incident is one
failure notice and one recovery, whatever the locations do in between.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.models import Base, BigId, JSONDocument, UTCDateTime


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    check_id: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_by_run: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The locations failing when it opened.
    locations: Mapped[list[str]] = mapped_column(JSONDocument)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_run: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_incidents_check_id_opened_at", "check_id", "opened_at"),
        Index("ix_incidents_opened_at", "opened_at"),
        # At most one open incident per check, whatever two ingest processes do.
        Index(
            "uq_incidents_open",
            "check_id",
            unique=True,
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
    )
