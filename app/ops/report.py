"""Uptime reports from the rollups (``synmon report``, and the uptime of ``/api/checks``).

A report's window starts at the hour boundary at or before ``now - since`` and ends
now: exact to the hour. Its whole hours are read from the rollups and its current hour,
which no rollup row has finished, from the final runs stored in it. Counted as in the
rollups (app/pipeline/rollups.py): final attempts, in the hour they were scheduled;
uptime is the share of them that passed or degraded.

Each question is one aggregate statement over all checks (never a query per check),
so that it reads one snapshot and its cost grows with the rows it needs, not with
round trips. The rows it needs are few: a day is one daily row, and the hours of the
window's first, partial day are read from the hourly rollup either as those hours
(added) or as the day less the hours before the window (subtracted), whichever reads
fewer rows: at most 12 hourly rows per check and location for that edge. Today is the
daily row of today (ingest adds each run to it in the transaction that stores the run,
so it holds the current hour too), less the current hour's hourly row, plus the
current hour counted from the runs: the same runs, the current hour from raw runs.
``uptimes`` (for the JSON API) reads the current hour from the rollups too, so that it
never scans runs.

Sums and counts are exact either way. The smallest and largest duration, which only
narrow a percentile inside its histogram bucket, are taken over the rows added, so a
subtracted hour can widen them to its day's: a percentile stays inside the bucket that
holds the exact value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from app.pipeline.rollups import (
    DAY,
    HOUR,
    RUNS,
    VALUES,
    Totals,
    day_start,
    final_runs_scheduled,
    hour_start,
    totals_of_runs,
)
from app.storage.bulk import table_of
from app.storage.incidents import IncidentRow
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS, ROLLUP_COUNTS

GroupBy = Literal["check", "location"]
UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
INCIDENTS = table_of(IncidentRow)
# The sums of a rollup row (counts and the duration sum) and its two extremes.
_SUMMED = VALUES[:-2]


@dataclass(frozen=True)
class Line:
    """One check's or one location's numbers over the report's window."""

    key: str
    runs: int
    passed: int
    degraded: int
    failed: int
    uptime_pct: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    # Incidents opened in the window (by location: those that named the location).
    incidents: int = 0

    @classmethod
    def of(cls, key: str, totals: Totals, incidents: int = 0) -> Line:
        def rounded(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        p50, p95, p99 = (rounded(totals.percentile(f), 1) for f in (0.5, 0.95, 0.99))
        return cls(
            key,
            totals.runs,
            totals.passed,
            totals.degraded,
            totals.failed,
            rounded(None if totals.uptime is None else 100 * totals.uptime, 4),
            p50,
            p95,
            p99,
            incidents,
        )


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    by: GroupBy
    lines: list[Line]

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "by": self.by,
            "lines": [vars(line) for line in self.lines],
        }


@dataclass(frozen=True)
class Span:
    """A part of the window read from one rollup table: buckets in [start, end), added
    (``sign`` 1) or subtracted (-1)."""

    table: Table
    start: datetime
    end: datetime
    sign: int = 1


@dataclass
class Window:
    """What one window reads: signed spans of the rollups, and the current hour from the
    runs or not."""

    spans: list[Span] = field(default_factory=list)
    runs_from: datetime | None = None


def _hours(start: datetime, end: datetime) -> int:
    return int((end - start) / HOUR)


def window_spans(start: datetime, current_hour: datetime, current_from_runs: bool) -> Window:
    """The rows that count every run scheduled in [start, end of the current hour), both
    hours: from the rollups, the current hour from the runs if ``current_from_runs``."""
    found = Window(runs_from=current_hour if current_from_runs else None)
    add = found.spans.append
    first_day, today = day_start(start), day_start(current_hour)
    # Hours counted by the rollups: [start, rolled_end).
    rolled_end = current_hour if current_from_runs else current_hour + HOUR
    if start >= rolled_end:
        return found
    if first_day == today:
        # One day: its hours themselves, or today's row less the hours around them.
        around = _hours(today, start) + (_hours(rolled_end, current_hour + HOUR))
        if _hours(start, rolled_end) <= 1 + around:
            add(Span(HOURLY_ROLLUPS, start, rolled_end))
            return found
        add(Span(DAILY_ROLLUPS, today, today + DAY))
        if today < start:
            add(Span(HOURLY_ROLLUPS, today, start, -1))
        if rolled_end <= current_hour:
            add(Span(HOURLY_ROLLUPS, current_hour, current_hour + HOUR, -1))
        return found
    whole_from = first_day
    if first_day < start:
        before, inside = _hours(first_day, start), _hours(start, first_day + DAY)
        if inside <= before:
            add(Span(HOURLY_ROLLUPS, start, first_day + DAY))
            whole_from = first_day + DAY
        else:
            add(Span(HOURLY_ROLLUPS, first_day, start, -1))
    # Whole days, today's row included: ingest keeps it up to date with every run.
    add(Span(DAILY_ROLLUPS, whole_from, today + DAY))
    if current_from_runs:
        add(Span(HOURLY_ROLLUPS, current_hour, current_hour + HOUR, -1))
    return found


def spans(start: datetime, current_hour: datetime) -> Iterator[Span]:
    """The rollup rows a report reads for [start, end of the current hour), the current
    hour from the runs (``window_spans``)."""
    yield from window_spans(start, current_hour, current_from_runs=True).spans


def _in(span: Span) -> ColumnElement[bool]:
    bucket = span.table.c.bucket_start
    return and_(bucket >= span.start, bucket < span.end)


def _weight(table: Table, window: Window) -> ColumnElement[Any] | None:
    """+1, -1 or 0 for each row of ``table``, as ``window`` counts it; None if it reads
    nothing of ``table``."""
    mine = [span for span in window.spans if span.table is table]
    if not mine:
        return None
    return case(*((_in(span), span.sign) for span in mine), else_=0)


def _rollup_part(
    table: Table,
    windows: Sequence[Window],
    key: str,
    check_ids: Sequence[str] | None,
    columns: Any,
) -> Select[Any] | None:
    """One scan of ``table`` for all ``windows``: the rows any of them reads, summed per
    key by ``columns(table, weights)``; None if none reads it."""
    weights = [_weight(table, window) for window in windows]
    wanted = [_in(span) for window in windows for span in window.spans if span.table is table]
    if not wanted:
        return None
    query = select(table.c[key].label("key"), *columns(table, weights)).where(or_(*wanted))
    if check_ids is not None:
        query = query.where(table.c.check_id.in_(check_ids))
    return query.group_by(table.c[key])


def _aggregate(session: Session, parts: Iterable[Select[Any] | None], names: Sequence[str]) -> Any:
    """The parts' rows summed per key (``min_``/``max_`` columns kept least and greatest):
    one statement."""
    chosen = [part for part in parts if part is not None]
    if not chosen:
        return []
    union = union_all(*chosen).subquery() if len(chosen) > 1 else chosen[0].subquery()

    def combined(name: str) -> ColumnElement[Any]:
        if name.startswith("min_"):
            return func.min(union.c[name])
        if name.startswith("max_"):
            return func.max(union.c[name])
        return func.sum(union.c[name])

    return session.execute(
        select(union.c.key, *(combined(n).label(n) for n in names)).group_by(union.c.key)
    )


_TOTAL_NAMES = [*_SUMMED, "min_duration", "max_duration"]


def _totals_columns(table: Table, weights: Sequence[ColumnElement[Any] | None]) -> list[Any]:
    (weight,) = weights
    assert weight is not None  # a part is built only for a table the window reads
    return [
        *(func.sum(weight * table.c[name]).label(name) for name in _SUMMED),
        func.min(case((weight > 0, table.c.duration_min_ms))).label("min_duration"),
        func.max(case((weight > 0, table.c.duration_max_ms))).label("max_duration"),
    ]


def totals(
    session: Session,
    since: timedelta,
    by: GroupBy = "check",
    check_id: str | None = None,
    now: datetime | None = None,
) -> tuple[datetime, datetime, dict[str, Totals]]:
    """(window start, end, the totals of each check or location in it)."""
    end = now or datetime.now(UTC)
    start, current_hour = hour_start(end - since), hour_start(end)
    window = window_spans(start, current_hour, current_from_runs=True)
    key = "check_id" if by == "check" else "location"
    check_ids = None if check_id is None else [check_id]
    parts: list[Select[Any] | None] = [
        _rollup_part(table, [window], key, check_ids, _totals_columns)
        for table in (HOURLY_ROLLUPS, DAILY_ROLLUPS)
    ]
    if window.runs_from is not None:
        values = totals_of_runs()
        raw = select(
            RUNS.c[key].label("key"),
            *(value.label(name) for value, name in zip(values, _TOTAL_NAMES, strict=True)),
        ).where(final_runs_scheduled(window.runs_from))
        if check_id is not None:
            raw = raw.where(RUNS.c.check_id == check_id)
        parts.append(raw.group_by(RUNS.c[key]))
    found = {row[0]: Totals.of(row[1:]) for row in _aggregate(session, parts, _TOTAL_NAMES)}
    # A key whose rows add up to nothing (an hour subtracted from a day that holds only
    # it) has no runs in the window.
    return start, end, {k: t for k, t in found.items() if t.runs}


def incident_counts(
    session: Session,
    start: datetime,
    end: datetime,
    by: GroupBy = "check",
    check_id: str | None = None,
) -> dict[str, int]:
    """Incidents opened in [start, end), by check, or by each location that they named
    as failing when they opened."""
    opened = and_(INCIDENTS.c.opened_at >= start, INCIDENTS.c.opened_at < end)
    if check_id is not None:
        opened = and_(opened, INCIDENTS.c.check_id == check_id)
    if by == "check":
        query = select(INCIDENTS.c.check_id, func.count()).where(opened)
        return {
            row[0]: int(row[1]) for row in session.execute(query.group_by(INCIDENTS.c.check_id))
        }
    counts: dict[str, int] = {}
    # The locations are a JSON list of each row: counted here, on either database.
    for locations in session.scalars(select(INCIDENTS.c.locations).where(opened)):
        for location in dict.fromkeys(locations if isinstance(locations, list) else ()):
            if isinstance(location, str):
                counts[location] = counts.get(location, 0) + 1
    return counts


def report(
    session: Session,
    since: timedelta,
    by: GroupBy = "check",
    check_id: str | None = None,
    now: datetime | None = None,
) -> Report:
    start, end, found = totals(session, since, by, check_id, now)
    incidents = incident_counts(session, start, end, by, check_id)
    keys = sorted(set(found) | set(incidents))
    return Report(
        start,
        end,
        by,
        [Line.of(key, found.get(key, Totals()), incidents.get(key, 0)) for key in keys],
    )


def _uptime_columns(table: Table, weights: Sequence[ColumnElement[Any] | None]) -> list[Any]:
    up = table.c.passed + table.c.degraded
    runs = up + table.c.failed
    columns = []
    for index, weight in enumerate(weights):
        w: Any = literal(0) if weight is None else weight
        columns += [
            func.sum(w * up).label(f"up_{index}"),
            func.sum(w * runs).label(f"runs_{index}"),
        ]
    return columns


def uptimes(
    session: Session,
    now: datetime | None = None,
    check_ids: Sequence[str] | None = None,
    windows: Mapping[str, timedelta] = UPTIME_WINDOWS,
) -> dict[str, dict[str, float | None]]:
    """Each check's uptime % over each of ``windows`` (by default 24 h, 7 d and 30 d),
    from the rollups alone, the current hour included: one statement for every check
    (or those of ``check_ids``). A check without runs in a window has None for it; a
    check without any is left out."""
    now = now or datetime.now(UTC)
    current_hour = hour_start(now)
    names = list(windows)
    chosen = [
        window_spans(hour_start(now - windows[name]), current_hour, current_from_runs=False)
        for name in names
    ]
    columns = [f"{kind}_{i}" for i in range(len(names)) for kind in ("up", "runs")]
    parts = [
        _rollup_part(table, chosen, "check_id", check_ids, _uptime_columns)
        for table in (HOURLY_ROLLUPS, DAILY_ROLLUPS)
    ]
    by_check: dict[str, dict[str, float | None]] = {}
    for row in _aggregate(session, parts, columns):
        values = row._mapping
        found: dict[str, float | None] = {}
        for index, name in enumerate(names):
            up, runs = int(values[f"up_{index}"] or 0), int(values[f"runs_{index}"] or 0)
            found[name] = round(100 * up / runs, 4) if runs > 0 else None
        if any(value is not None for value in found.values()):
            by_check[row[0]] = found
    return by_check


@dataclass(frozen=True)
class Point:
    """One day of a check's chart."""

    day: datetime
    runs: int
    passed: int
    degraded: int
    failed: int
    uptime_pct: float | None
    p95_ms: float | None


def chart(
    session: Session,
    check_id: str,
    days: int = 90,
    now: datetime | None = None,
    location: str | None = None,
) -> list[Point]:
    """One check's last ``days`` days (today included, as far as it has come), a point
    per day with runs, from the daily rollup (all locations, or one)."""
    now = now or datetime.now(UTC)
    first = day_start(now) - (max(1, days) - 1) * DAY
    table = DAILY_ROLLUPS
    query = (
        select(
            table.c.bucket_start,
            *(func.sum(table.c[name]) for name in ROLLUP_COUNTS),
            func.sum(table.c.duration_sum_ms),
            func.min(table.c.duration_min_ms),
            func.max(table.c.duration_max_ms),
        )
        .where(table.c.check_id == check_id, table.c.bucket_start >= first)
        .group_by(table.c.bucket_start)
        .order_by(table.c.bucket_start)
    )
    if location is not None:
        query = query.where(table.c.location == location)
    points = []
    for row in session.execute(query):
        day = Totals.of(row[1:])
        line = Line.of(check_id, day)
        points.append(
            Point(
                row[0], day.runs, day.passed, day.degraded, day.failed, line.uptime_pct, line.p95_ms
            )
        )
    return points
