"""Incidents: opened and closed in the ingest transaction that moves a check's state.

A check's incident is its alerting period (see app.storage.incidents). Ingest moves a
check's state under the check's state lock, so two ingest processes never open two
incidents for one check; the partial unique index makes that a constraint as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from app.pipeline.state import CheckState
from app.storage.bulk import table_of
from app.storage.incidents import IncidentRow


@dataclass(frozen=True)
class IncidentChange:
    check_id: str
    opens: bool  # False: closes
    at: datetime
    run_id: uuid.UUID
    locations: tuple[str, ...] = ()


def incident_change(
    before: CheckState,
    after: CheckState,
    at: datetime,
    run_id: uuid.UUID,
    failing_locations: Iterable[str],
) -> IncidentChange | None:
    """The change to the check's incidents when its state moves from ``before`` to
    ``after``, if any."""
    if after.alerting == before.alerting:
        return None
    locations = tuple(failing_locations) if after.alerting else ()
    return IncidentChange(after.check_id, after.alerting, at, run_id, locations)


def apply_incident_changes(session: Session, changes: Iterable[IncidentChange]) -> None:
    """Apply ``changes`` in order: a batch can open and close one check's incident."""
    table = table_of(IncidentRow)
    for change in changes:
        if change.opens:
            # An incident still open here was left behind: its check was removed by a sync
            # (and its state with it) and added again, or the release before recovered it
            # without knowing incidents. It ends where the new one starts; inserting beside
            # it would break the one-open-incident index and fail the whole batch.
            session.execute(
                update(table)
                .where(table.c.check_id == change.check_id, table.c.closed_at.is_(None))
                .values(closed_at=change.at)
            )
            session.execute(
                insert(table).values(
                    check_id=change.check_id,
                    opened_at=change.at,
                    opened_by_run=change.run_id,
                    locations=list(change.locations),
                )
            )
        else:
            session.execute(
                update(table)
                .where(table.c.check_id == change.check_id, table.c.closed_at.is_(None))
                .values(closed_at=change.at, closed_by_run=change.run_id)
            )
