"""Uptime reports from the rollups (``synmon report``, and the uptime of ``/api/checks``).

A report covers whole hours up to the current one, read from the rollups (whole days
from the daily rollup, the hours at either end from the hourly one), and the current
hour, which no rollup row has finished, from the final runs stored in it. Its window
starts at the hour boundary at or before ``now - since``: exact to the hour, never a
scan of raw runs beyond the current hour.

Counted as in the rollups (app/pipeline/rollups.py): final attempts, in the hour they
were scheduled; uptime is the share of them that passed or degraded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from app.pipeline.rollups import (
    DAY,
    RUNS,
    Totals,
    day_start,
    final_runs_scheduled,
    hour_start,
    totals_of_rollups,
    totals_of_runs,
)
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS

GroupBy = Literal["check", "location"]
UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


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

    @classmethod
    def of(cls, key: str, totals: Totals) -> Line:
        def rounded(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        return cls(
            key,
            totals.runs,
            totals.passed,
            totals.degraded,
            totals.failed,
            rounded(None if totals.uptime is None else 100 * totals.uptime, 4),
            *(rounded(totals.percentile(f), 1) for f in (0.5, 0.95, 0.99)),
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
    """A part of the window read from one rollup table: buckets in [start, end)."""

    table: Table
    start: datetime
    end: datetime


def spans(start: datetime, current_hour: datetime) -> Iterator[Span]:
    """The rollup rows that cover [start, current_hour), both on an hour boundary:
    whole days from the daily rollup, the hours around them from the hourly one."""
    first_day = day_start(start) + (DAY if day_start(start) < start else timedelta(0))
    last_day = day_start(current_hour)
    if first_day >= last_day:
        yield Span(HOURLY_ROLLUPS, start, current_hour)
        return
    yield Span(HOURLY_ROLLUPS, start, first_day)
    yield Span(DAILY_ROLLUPS, first_day, last_day)
    yield Span(HOURLY_ROLLUPS, last_day, current_hour)


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
    found: dict[str, Totals] = {}

    def gather(query: Any, table: Table) -> None:
        key = table.c.check_id if by == "check" else table.c.location
        if check_id is not None:
            query = query.where(table.c.check_id == check_id)
        for row in session.execute(query.add_columns(key).group_by(key)):
            found.setdefault(row[-1], Totals()).merge(Totals.of(row[:-1]))

    for span in spans(start, current_hour):
        if span.start < span.end:
            bucket = span.table.c.bucket_start
            query = select(*totals_of_rollups(span.table)).where(
                bucket >= span.start, bucket < span.end
            )
            gather(query, span.table)
    # The current hour, which the rollups hold too but are not finished with.
    gather(select(*totals_of_runs()).where(final_runs_scheduled(current_hour)), RUNS)
    return start, end, found


def report(
    session: Session,
    since: timedelta,
    by: GroupBy = "check",
    check_id: str | None = None,
    now: datetime | None = None,
) -> Report:
    start, end, found = totals(session, since, by, check_id, now)
    return Report(start, end, by, [Line.of(key, found[key]) for key in sorted(found)])


def uptimes(session: Session, now: datetime | None = None) -> dict[str, dict[str, float | None]]:
    """Each check's uptime % over 24 h, 7 d and 30 d (``UPTIME_WINDOWS``); a check
    without runs in a window has None for it, a check without any is left out."""
    now = now or datetime.now(UTC)
    by_check: dict[str, dict[str, float | None]] = {}
    for name, window in UPTIME_WINDOWS.items():
        for check_id, found in totals(session, window, now=now)[2].items():
            line = Line.of(check_id, found)
            by_check.setdefault(check_id, dict.fromkeys(UPTIME_WINDOWS))[name] = line.uptime_pct
    return by_check
