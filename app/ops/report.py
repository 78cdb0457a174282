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

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from app.pipeline.rollups import (
    DAY,
    HOUR,
    RUNS,
    STATUSES,
    VALUES,
    Totals,
    day_start,
    final_runs_scheduled,
    hour_start,
)
from app.storage.bulk import is_postgres, table_of
from app.storage.incidents import IncidentRow
from app.storage.models import (
    DAILY_ROLLUPS,
    HISTOGRAM_COLUMNS,
    HOURLY_ROLLUPS,
    LATENCY_BOUNDS_MS,
    ROLLUP_COUNTS,
)

GroupBy = Literal["check", "location"]
UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
INCIDENTS = table_of(IncidentRow)
# The sums of a rollup row (counts and the duration sum) and its two extremes.
_SUMMED = VALUES[:-2]


def percentiles(totals: Totals, fractions: Sequence[float]) -> list[float | None]:
    """``totals.percentile`` of each of ``fractions``, found by bisecting the running
    counts of the histogram (a report of 10,000 checks spent most of its Python time
    walking the buckets three times each)."""
    runs = totals.runs
    if not runs:
        return [None] * len(fractions)
    running = list(accumulate(totals.histogram))
    found: list[float | None] = []
    for fraction in fractions:
        rank = max(1.0, fraction * runs)
        # The first bucket whose running count reaches the rank: it holds runs.
        index = bisect_left(running, rank)
        seen = running[index - 1] if index else 0
        low = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
        high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else math.inf
        low = max(low, totals.duration_min_ms)
        high = min(high, totals.duration_max_ms)
        found.append(low + (high - low) * (rank - seen) / (running[index] - seen))
    return found


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

        p50, p95, p99 = (rounded(value, 1) for value in percentiles(totals, (0.5, 0.95, 0.99)))
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


Columns = Callable[[Table, int], list[Any]]


def _rollup_parts(
    windows: Sequence[Window], key: str, check_ids: Sequence[str] | None, columns: Columns
) -> Iterator[Select[Any]]:
    """For each window, table and sign, the rows it reads summed per key (multiplied by
    the sign): a plain aggregate each, no expression evaluated per row and column."""
    for index, window in enumerate(windows):
        for table in (HOURLY_ROLLUPS, DAILY_ROLLUPS):
            for sign in (1, -1):
                chosen = [s for s in window.spans if s.table is table and s.sign == sign]
                if not chosen:
                    continue
                query = select(
                    table.c[key].label("key"), literal(index).label("w"), *columns(table, sign)
                ).where(or_(*(_in(span) for span in chosen)))
                if check_ids is not None:
                    query = query.where(table.c.check_id.in_(check_ids))
                yield query.group_by(table.c[key])


def _aggregate(session: Session, parts: Iterable[Select[Any]], names: Sequence[str]) -> Any:
    """The parts' rows summed per key and window (``min_``/``max_`` columns kept least and
    greatest): one statement."""
    chosen = list(parts)
    if not chosen:
        return []
    union = union_all(*chosen).subquery() if len(chosen) > 1 else chosen[0].subquery()

    def combined(name: str) -> ColumnElement[Any]:
        if name.startswith("min_"):
            return func.min(union.c[name])
        if name.startswith("max_"):
            return func.max(union.c[name])
        return func.sum(union.c[name])

    statement = select(union.c.key, union.c.w, *(combined(n).label(n) for n in names))
    return session.execute(statement.group_by(union.c.key, union.c.w))


_TOTAL_NAMES = [*_SUMMED, "min_duration", "max_duration"]
_NO_DURATION = cast(null(), Float)


def _summed(sign: int, total: ColumnElement[Any]) -> ColumnElement[Any]:
    """A part's sum as a double: summed again across the parts, a bigint would become a
    numeric, several times slower to add; a double is exact for any count of runs."""
    return cast(sign * total, Float)


def _totals_columns(table: Table, sign: int) -> list[Any]:
    # A subtracted row's extremes cannot be taken out of its day's: left out (see above).
    extremes = (
        (func.min(table.c.duration_min_ms), func.max(table.c.duration_max_ms))
        if sign > 0
        else (_NO_DURATION, _NO_DURATION)
    )
    return [
        *(_summed(sign, func.sum(table.c[name])).label(name) for name in _SUMMED),
        extremes[0].label("min_duration"),
        extremes[1].label("max_duration"),
    ]


def _histogram_bucket(duration: ColumnElement[Any]) -> ColumnElement[Any]:
    """The histogram bucket of a duration, as ``bucket_of`` finds it: evaluated once per
    run, where a sum per bucket would test every bound for every run."""
    return case(
        *((duration <= bound, index) for index, bound in enumerate(LATENCY_BOUNDS_MS)),
        else_=len(LATENCY_BOUNDS_MS),
    )


def _runs_part(key: str, since: datetime, check_id: str | None) -> Select[Any]:
    """The final runs scheduled from ``since`` on, counted as a rollup row per key: first
    per key, status and histogram bucket, then those few rows into the columns."""
    bucket = _histogram_bucket(RUNS.c.duration_ms)
    grouped = select(
        RUNS.c[key].label("key"),
        RUNS.c.status.label("status"),
        bucket.label("bucket"),
        func.count().label("runs"),
        func.sum(RUNS.c.duration_ms).label("total"),
        func.min(RUNS.c.duration_ms).label("low"),
        func.max(RUNS.c.duration_ms).label("high"),
    ).where(final_runs_scheduled(since))
    if check_id is not None:
        grouped = grouped.where(RUNS.c.check_id == check_id)
    counted = grouped.group_by(RUNS.c[key], RUNS.c.status, bucket).subquery()

    def runs_where(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return _summed(1, func.sum(case((condition, counted.c.runs), else_=0)))

    return select(
        counted.c.key,
        literal(0).label("w"),
        *(runs_where(counted.c.status == status).label(status) for status in STATUSES),
        *(
            runs_where(counted.c.bucket == index).label(name)
            for index, name in enumerate(HISTOGRAM_COLUMNS)
        ),
        func.sum(counted.c.total).label("duration_sum_ms"),
        func.min(counted.c.low).label("min_duration"),
        func.max(counted.c.high).label("max_duration"),
    ).group_by(counted.c.key)


def totals(
    session: Session,
    since: timedelta,
    by: GroupBy = "check",
    check_id: str | None = None,
    now: datetime | None = None,
    *,
    current_from_runs: bool = True,
) -> tuple[datetime, datetime, dict[str, Totals]]:
    """(window start, end, the totals of each check or location in it). The current
    hour is counted from the raw runs, or with ``current_from_runs=False`` from the
    rollups like the rest (which ingest keeps up to date: what a page that must not
    scan runs asks for)."""
    end = now or datetime.now(UTC)
    start, current_hour = hour_start(end - since), hour_start(end)
    window = window_spans(start, current_hour, current_from_runs)
    key = "check_id" if by == "check" else "location"
    check_ids = None if check_id is None else [check_id]
    parts = list(_rollup_parts([window], key, check_ids, _totals_columns))
    if window.runs_from is not None:
        parts.append(_runs_part(key, window.runs_from, check_id))
    with _without_jit(session):
        found = {row[0]: Totals.of(row[2:]) for row in _aggregate(session, parts, _TOTAL_NAMES)}
    # A key whose rows add up to nothing (an hour subtracted from a day that holds only
    # it) has no runs in the window.
    return start, end, {k: t for k, t in found.items() if t.runs}


@contextmanager
def _without_jit(session: Session) -> Iterator[None]:
    """Postgres's JIT compiles these wide aggregates for longer than they run (over a
    second, measured, for a statement that runs in a fraction of one): off for the
    statement, then as it was (a failed statement leaves the transaction to roll back,
    which undoes the setting)."""
    if not is_postgres(session):
        yield
        return
    before = session.execute(text("SELECT current_setting('jit')")).scalar_one()
    session.execute(text("SELECT set_config('jit', 'off', true)"))
    yield
    session.execute(text("SELECT set_config('jit', :before, true)"), {"before": before})


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
    *,
    current_from_runs: bool = True,
) -> Report:
    start, end, found = totals(
        session, since, by, check_id, now, current_from_runs=current_from_runs
    )
    incidents = incident_counts(session, start, end, by, check_id)
    keys = sorted(set(found) | set(incidents))
    return Report(
        start,
        end,
        by,
        [Line.of(key, found.get(key, Totals()), incidents.get(key, 0)) for key in keys],
    )


def _uptime_columns(table: Table, sign: int) -> list[Any]:
    up = func.sum(table.c.passed + table.c.degraded)
    runs = up + func.sum(table.c.failed)
    return [_summed(sign, up).label("up"), _summed(sign, runs).label("runs")]


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
    parts = _rollup_parts(chosen, "check_id", check_ids, _uptime_columns)
    by_check: dict[str, dict[str, float | None]] = {}
    with _without_jit(session):
        rows = _aggregate(session, parts, ["up", "runs"]).all()
    for check_id, index, up, runs in rows:
        if runs:
            found = by_check.setdefault(check_id, dict.fromkeys(names))
            found[names[index]] = round(100 * int(up) / int(runs), 4)
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
