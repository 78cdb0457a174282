"""The incidents list (``synmon incidents``): each alerting period of a check, newest
first, from the incidents table (app/storage/incidents.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.storage.bulk import table_of
from app.storage.incidents import IncidentRow

INCIDENTS = table_of(IncidentRow)
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Incident:
    id: int
    check_id: str
    opened_at: datetime
    closed_at: datetime | None
    # Until it closed, or until the listing for one still open.
    duration_s: float
    locations: list[str]
    acknowledged_at: datetime | None
    acknowledged_by: str | None

    @property
    def open(self) -> bool:
        return self.closed_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check_id": self.check_id,
            "opened_at": self.opened_at.isoformat(),
            "closed_at": None if self.closed_at is None else self.closed_at.isoformat(),
            "open": self.open,
            "duration_s": self.duration_s,
            "locations": self.locations,
            "acknowledged_at": (
                None if self.acknowledged_at is None else self.acknowledged_at.isoformat()
            ),
            "acknowledged_by": self.acknowledged_by,
        }


def _locations(value: Any) -> list[str]:
    # A JSON column: whatever a row holds, only its strings are locations.
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def incidents(
    session: Session,
    since: timedelta | None = None,
    check_id: str | None = None,
    open_only: bool = False,
    now: datetime | None = None,
    limit: int = 100,
) -> list[Incident]:
    """The incidents that were open at any time in the last ``since`` (all, without it):
    opened in it, or opened before and not closed before it began; an open incident is
    always listed. Newest first, at most ``limit`` (1 to ``MAX_LIMIT``)."""
    now = now or datetime.now(UTC)
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(INCIDENTS).where(INCIDENTS.c.opened_at <= now)
    if since is not None:
        start = now - since
        query = query.where(or_(INCIDENTS.c.closed_at.is_(None), INCIDENTS.c.closed_at >= start))
    if check_id is not None:
        query = query.where(INCIDENTS.c.check_id == check_id)
    if open_only:
        query = query.where(INCIDENTS.c.closed_at.is_(None))
    query = query.order_by(INCIDENTS.c.opened_at.desc(), INCIDENTS.c.id.desc()).limit(limit)
    found = []
    for row in session.execute(query).mappings():
        until = row["closed_at"] or now
        found.append(
            Incident(
                id=row["id"],
                check_id=row["check_id"],
                opened_at=row["opened_at"],
                closed_at=row["closed_at"],
                duration_s=max(0.0, (until - row["opened_at"]).total_seconds()),
                locations=_locations(row["locations"]),
                acknowledged_at=row["acknowledged_at"],
                acknowledged_by=row["acknowledged_by"],
            )
        )
    return found
