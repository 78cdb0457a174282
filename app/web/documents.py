"""What the web product, the API and ``synmon runs --json`` say of checks and runs.

Plain functions over a database session, so that the HTTP layer, the CLI and the tests
read the same documents.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.definitions.durations import parse_duration
from app.execution.runs import result_fields
from app.ops.report import UPTIME_WINDOWS, Line, uptimes
from app.pipeline.rollups import Totals, hour_start, totals_of_rollups
from app.pipeline.state import location_states
from app.pipeline.state_store import stored_location_states
from app.storage.accounts import CheckPauseRow
from app.storage.models import HOURLY_ROLLUPS, CheckRow, CheckRunRow, CheckStateRow
from config.settings import Settings

# Further back than any retention: beyond it a window is a typo, and beyond datetime's
# range it would not even be a date.
MAX_WINDOW = timedelta(days=3660)
MAX_LIMIT = 1000
STATES = ("passing", "degraded", "failing", "unknown")
DAYS = re.compile(r"(\d{1,6})d")


def _columns(names: set[str]) -> tuple[str, ...]:
    """``names`` in the order of check_runs' columns, which the documents follow."""
    return tuple(c.name for c in CheckRunRow.__table__.columns if c.name in names)


# What a listing of runs shows, and what the full view of a run adds: what RunResult says
# of its fields, and the row's own ``final`` (ingest's decision, not the worker's).
RUN_FIELDS = _columns({*result_fields("summary"), "final"})
DETAIL_FIELDS = _columns(set(result_fields("detail")))


def run_document(row: CheckRunRow, full: bool = False) -> dict[str, Any]:
    document = {name: getattr(row, name) for name in RUN_FIELDS}
    if full:
        document.update({name: getattr(row, name) for name in DETAIL_FIELDS})
    return document


class BadParameter(ValueError):
    """A query parameter out of bounds; the message starts with the parameter's name."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def parse_since(raw: str | None, default: str = "1h", parameter: str = "since") -> datetime:
    """The moment ``raw`` (a duration such as ``10m``) ago; BadParameter out of bounds."""
    text = default if raw is None else raw
    if len(text) > 32:
        raise BadParameter(parameter, "a duration such as 10m, 24h or 7d")
    days = DAYS.fullmatch(text)
    try:
        # Days too, as windows of history are told (7d, 30d, 90d).
        seconds = int(days.group(1)) * 86400.0 if days else parse_duration(text)
    except ValueError as exc:
        raise BadParameter(parameter, f"{exc}, or days as 7d") from None
    if seconds > MAX_WINDOW.total_seconds():
        raise BadParameter(parameter, f"at most {MAX_WINDOW.days} days")
    return datetime.now(UTC) - timedelta(seconds=seconds)


def parse_limit(
    raw: str | None, default: int = 100, high: int = MAX_LIMIT, clamp: bool = False
) -> int:
    """A ``limit`` parameter; ``clamp`` brings a whole number into [1, high] (as the
    first API did) instead of refusing it."""
    if raw is None:
        return default
    if raw.isdigit() and len(raw) <= 6:
        if clamp:
            return max(1, min(high, int(raw)))
        if 1 <= int(raw) <= high:
            return int(raw)
    raise BadParameter("limit", f"must be a whole number from 1 to {high}")


@dataclass(frozen=True)
class CheckFilter:
    state: str | None = None
    kind: str | None = None
    tag: str | None = None
    location: str | None = None
    search: str | None = None


def _last_run_at() -> Any:
    # The state row names the run that last moved the state; the last run is newer
    # whenever the check kept its state since, so it comes from the runs themselves.
    return (
        select(func.max(CheckRunRow.started_at))
        .where(CheckRunRow.check_id == CheckRow.id)
        .correlate(CheckRow)
        .scalar_subquery()
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def check_documents(
    session: Session,
    settings: Settings,
    where: CheckFilter | None = None,
    after: str | None = None,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Checks in id order with their state, per-location states, uptime and last run.

    ``after`` and ``limit`` page by id (a cursor); the state, type and search filters
    run in SQL, tag and location (held in JSON documents) on the rows read.
    """
    where = where or CheckFilter()
    query = (
        select(CheckRow, CheckStateRow, _last_run_at(), CheckPauseRow.paused_at)
        .outerjoin(CheckStateRow, CheckStateRow.check_id == CheckRow.id)
        .outerjoin(CheckPauseRow, CheckPauseRow.check_id == CheckRow.id)
        .order_by(CheckRow.id)
    )
    if ids is not None:
        query = query.where(CheckRow.id.in_(list(ids)))
    if after is not None:
        query = query.where(CheckRow.id > after)
    if where.kind is not None:
        query = query.where(CheckRow.kind == where.kind)
    if where.state == "unknown":
        query = query.where(or_(CheckStateRow.status.is_(None), CheckStateRow.status == "unknown"))
    elif where.state is not None:
        query = query.where(CheckStateRow.status == where.state)
    if where.search:
        pattern = f"%{_escape_like(where.search.lower())}%"
        query = query.where(
            or_(
                func.lower(CheckRow.id).like(pattern, escape="\\"),
                func.lower(CheckRow.name).like(pattern, escape="\\"),
            )
        )
    json_filtered = where.tag is not None or where.location is not None
    if limit is not None and not json_filtered:
        query = query.limit(limit)
    rows = session.execute(query).all()
    if json_filtered:
        rows = [
            row
            for row in rows
            if (where.tag is None or where.tag in (row[0].definition.get("tags") or []))
            and (
                where.location is None or where.location in (row[0].locations or settings.locations)
            )
        ]
        if limit is not None:
            rows = rows[:limit]
    check_ids = [row[0].id for row in rows]
    by_location = stored_location_states(session, check_ids) if check_ids else {}
    # Every check (the first API's listing): one statement over all, no list of ids.
    every = ids is None and after is None and limit is None and where == CheckFilter()
    uptime = uptimes(session, check_ids=None if every else check_ids) if check_ids else {}
    p95 = p95_by_check(session, check_ids)
    no_runs = dict.fromkeys(UPTIME_WINDOWS)
    return [
        {
            "id": check.id,
            "name": check.name,
            "type": check.kind,
            "frequency_s": check.frequency_s,
            "locations": check.locations,
            "tags": list(check.definition.get("tags") or []),
            "enabled": check.enabled,
            "paused": paused_at is not None,
            "next_run_at": check.next_run_at,
            "state": state.status if state else "unknown",
            "last_status": state.last_status if state else None,
            "last_run_at": last_run_at,
            "consecutive_failures": state.consecutive_failures if state else 0,
            "location_states": location_states(
                check.locations, by_location.get(check.id, {}), settings.locations
            ),
            # Uptime % over 24h, 7d and 30d from the rollups (see app/ops/report.py);
            # null for a window without runs.
            "uptime": uptime.get(check.id, no_runs),
            "p95_ms_24h": p95.get(check.id),
        }
        for check, state, last_run_at, paused_at in rows
    ]


def p95_by_check(session: Session, check_ids: Sequence[str]) -> dict[str, float | None]:
    """Each check's 95th percentile of final runs' duration, in ms, over the hour under
    way and the 24 before it: from the hourly rollups' latency histograms (as ``synmon
    report`` reads them), in one statement for the checks of a page."""
    if not check_ids:
        return {}
    table = HOURLY_ROLLUPS
    since = hour_start(datetime.now(UTC) - UPTIME_WINDOWS["24h"])
    query = (
        select(*totals_of_rollups(table), table.c.check_id)
        .where(table.c.check_id.in_(list(check_ids)), table.c.bucket_start >= since)
        .group_by(table.c.check_id)
    )
    found = {row[-1]: Totals.of(row[:-1]) for row in session.execute(query)}
    return {check_id: Line.of(check_id, t).p95_ms for check_id, t in found.items() if t.runs}


def run_rows(
    session: Session,
    check_id: str | None,
    since: datetime,
    limit: int,
    before: tuple[datetime, int] | None = None,
    status: str | None = None,
    location: str | None = None,
) -> list[CheckRunRow]:
    """Runs newest first; ``before`` (a run's started_at and row id, the cursor) pages
    on without skipping or repeating a run that started at the same moment."""
    query = (
        select(CheckRunRow)
        .where(CheckRunRow.started_at >= since)
        .order_by(CheckRunRow.started_at.desc(), CheckRunRow.id.desc())
        .limit(limit)
    )
    if check_id is not None:
        query = query.where(CheckRunRow.check_id == check_id)
    if before is not None:
        started_at, row_id = before
        query = query.where(
            or_(
                CheckRunRow.started_at < started_at,
                and_(CheckRunRow.started_at == started_at, CheckRunRow.id < row_id),
            )
        )
    if status is not None:
        query = query.where(CheckRunRow.status == status)
    if location is not None:
        query = query.where(CheckRunRow.location == location)
    return list(session.scalars(query))


def runs(
    session: Session, check_id: str | None, since: datetime, limit: int
) -> list[dict[str, Any]]:
    """The documents of ``/api/runs`` and ``/api/checks/<id>/runs`` (full for one check)."""
    return [
        run_document(row, full=check_id is not None)
        for row in run_rows(session, check_id, since, limit)
    ]
