"""Rollups: the final runs of each check x location counted per hour and per day.

Ingest adds every run it newly stores to both rollups in the transaction that stores
the run (``add_to_rollups``), so a run counts exactly once: a redelivered result is
recognised by its run id before this is called, and a late one adds to the hour it was
scheduled in, whenever it arrives. The bucket is the run's ``scheduled_at`` (the same
for every delivery and every attempt of a run), not when it ran or arrived.

Only final attempts count: a failed attempt that is retried decides nothing (as in
Checkly, where a retried run that then passes is one passed run and costs no uptime),
and the retry that ends it counts once, in the hour the run was scheduled.

Runs that a release without rollups stores (during a rolling update onto 0004, or
everything stored before it) are counted by ``rebuild``, a recount from check_runs.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Dialect,
    Table,
    and_,
    case,
    column,
    delete,
    func,
    insert,
    select,
    table,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.execution.runs import RunResult
from app.storage.bulk import is_postgres, table_of
from app.storage.models import (
    DAILY_ROLLUPS,
    HISTOGRAM_COLUMNS,
    HOURLY_ROLLUPS,
    LATENCY_BOUNDS_MS,
    ROLLUP_COUNTS,
    ROLLUP_KEY,
    CheckRunRow,
    UTCDateTime,
)

STATUSES = ("passed", "degraded", "failed")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
RUNS = table_of(CheckRunRow)
# The columns of a rollup row but its key, in the order Totals.of reads them.
VALUES = (*ROLLUP_COUNTS, "duration_sum_ms", "duration_min_ms", "duration_max_ms")


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(moment: datetime) -> datetime:
    return hour_start(moment).replace(hour=0)


def bucket_of(duration_ms: float) -> int:
    """The histogram bucket of a duration: the first whose bound it does not exceed."""
    return bisect_left(LATENCY_BOUNDS_MS, duration_ms)


@dataclass
class Totals:
    """What a rollup row holds, or a sum of rows: counts, durations and the histogram."""

    passed: int = 0
    degraded: int = 0
    failed: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_COLUMNS))
    duration_sum_ms: float = 0.0
    duration_min_ms: float = math.inf
    duration_max_ms: float = -math.inf

    @property
    def runs(self) -> int:
        return self.passed + self.degraded + self.failed

    @property
    def uptime(self) -> float | None:
        """Runs that passed or degraded (up, if slowly), of all; None without runs."""
        return (self.passed + self.degraded) / self.runs if self.runs else None

    def add_run(self, status: str, duration_ms: float) -> None:
        setattr(self, status, getattr(self, status) + 1)
        self.histogram[bucket_of(duration_ms)] += 1
        self.duration_sum_ms += duration_ms
        self.duration_min_ms = min(self.duration_min_ms, duration_ms)
        self.duration_max_ms = max(self.duration_max_ms, duration_ms)

    def merge(self, other: Totals) -> None:
        for status in STATUSES:
            setattr(self, status, getattr(self, status) + getattr(other, status))
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.duration_sum_ms += other.duration_sum_ms
        self.duration_min_ms = min(self.duration_min_ms, other.duration_min_ms)
        self.duration_max_ms = max(self.duration_max_ms, other.duration_max_ms)

    def columns(self) -> dict[str, Any]:
        """The values of a rollup row, but for its key."""
        counts = dict(zip(HISTOGRAM_COLUMNS, self.histogram, strict=True))
        return {
            **{status: getattr(self, status) for status in STATUSES},
            **counts,
            "duration_sum_ms": self.duration_sum_ms,
            "duration_min_ms": self.duration_min_ms,
            "duration_max_ms": self.duration_max_ms,
        }

    @classmethod
    def of(cls, values: Sequence[Any]) -> Totals:
        """From the values ``totals_of_rollups`` or ``totals_of_runs`` select, in order."""
        counts = [int(v or 0) for v in values[: len(ROLLUP_COUNTS)]]
        total, low, high = values[len(ROLLUP_COUNTS) :]
        return cls(
            passed=counts[0],
            degraded=counts[1],
            failed=counts[2],
            histogram=counts[3:],
            duration_sum_ms=float(total or 0.0),
            duration_min_ms=math.inf if low is None else float(low),
            duration_max_ms=-math.inf if high is None else float(high),
        )

    def percentile(self, fraction: float) -> float | None:
        """The duration below which ``fraction`` of the runs lie, read from the histogram:
        the bucket that holds that rank, interpolated linearly inside it (its edges
        narrowed to the smallest and largest duration seen). Never off by more than the
        bucket holding the exact value."""
        if not self.runs:
            return None
        rank = max(1.0, fraction * self.runs)
        seen = 0
        for index, count in enumerate(self.histogram):
            if count and seen + count >= rank:
                low = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
                high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else math.inf
                low = max(low, self.duration_min_ms)
                high = min(high, self.duration_max_ms)
                return low + (high - low) * (rank - seen) / count
            seen += count
        return self.duration_max_ms  # not reached: the counts add up to the runs


def _rows(buckets: dict[tuple[str, str, datetime], Totals]) -> list[dict[str, Any]]:
    # Sorted by key, so that two transactions lock the rows they share in the same order.
    return [
        {**dict(zip(ROLLUP_KEY, key, strict=True)), **totals.columns()}
        for key, totals in sorted(buckets.items())
    ]


def add_to_rollups(session: Session, runs: Sequence[RunResult]) -> None:
    """Add ``runs`` (final attempts, newly stored in this transaction) to the rollups.

    Hourly before daily in every transaction, each in the order of its keys: the same
    order of locks everywhere (the checks' state locks already keep two transactions
    off the same check's rows; this keeps it so without them)."""
    if not runs:
        return
    if is_postgres(session):
        # The batch travels as one JSON parameter of six values a run, and Postgres
        # counts it: sending counted rows of ~30 columns each cost several times more.
        document = orjson.dumps(
            [
                [
                    r.check_id,
                    r.location,
                    r.scheduled_at,
                    r.status,
                    r.duration_ms,
                    bucket_of(r.duration_ms),
                ]
                for r in runs
            ]
        )
        for target, unit in ((HOURLY_ROLLUPS, "hour"), (DAILY_ROLLUPS, "day")):
            session.execute(text(_postgres_upsert(target, unit)), {"rows": document.decode()})
        return
    for target, start in ((HOURLY_ROLLUPS, hour_start), (DAILY_ROLLUPS, day_start)):
        buckets: dict[tuple[str, str, datetime], Totals] = {}
        for run in runs:
            key = (run.check_id, run.location, start(run.scheduled_at))
            buckets.setdefault(key, Totals()).add_run(run.status, run.duration_ms)
        _add_on_sqlite(session, target, _rows(buckets))


def _add_on_sqlite(session: Session, target: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT rows, or add them to the row with their key: counts and sums add up, the
    minimum and maximum keep the smaller and the larger."""
    statement = sqlite_insert(target)
    new = statement.excluded
    updates: dict[str, Any] = {name: target.c[name] + new[name] for name in VALUES[:-2]}
    # SQLite's min() and max() with two arguments are its least and greatest.
    updates["duration_min_ms"] = func.min(target.c.duration_min_ms, new.duration_min_ms)
    updates["duration_max_ms"] = func.max(target.c.duration_max_ms, new.duration_max_ms)
    # Many rows to one statement: compiled once, executed for each row.
    session.execute(statement.on_conflict_do_update(index_elements=ROLLUP_KEY, set_=updates), rows)


POSTGRES: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call] # unannotated
# The runs of a batch as Postgres reads them from its one JSON parameter; ``bucket`` is
# the run's histogram bucket, found by ingest (``bucket_of``).
BATCH = table(
    "batch",
    *(
        column(name)
        for name in ("check_id", "location", "scheduled_at", "status", "duration_ms", "bucket")
    ),
)
# MATERIALIZED, so that each value is taken out of the document once: inlined, each of
# the ~30 aggregates below parsed its own, and counting cost more than storing.
_BATCH_SELECT = (
    "SELECT r->>0 AS check_id, r->>1 AS location, (r->>2)::timestamptz AS scheduled_at, "
    "r->>3 AS status, (r->>4)::float8 AS duration_ms, (r->>5)::int AS bucket "
    "FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r"
)


def _totals_of_batch() -> list[ColumnElement[Any]]:
    """``totals_of_runs`` for ``BATCH``, counting by its precomputed bucket: a comparison
    of integers per aggregate instead of two of durations."""
    duration = BATCH.c.duration_ms
    return [
        *(func.count().filter(BATCH.c.status == status) for status in STATUSES),
        *(func.count().filter(BATCH.c.bucket == i) for i in range(len(HISTOGRAM_COLUMNS))),
        func.sum(duration),
        func.min(duration),
        func.max(duration),
    ]


@cache
def _postgres_upsert(target: Table, unit: str) -> str:
    """Adds a batch of runs (``_BATCH_SELECT``) to ``target``: counted by Postgres, one
    row per key, in the order of the keys; then added to the rows stored."""
    bucket = func.date_trunc(unit, BATCH.c.scheduled_at, "UTC")
    keys = (BATCH.c.check_id, BATCH.c.location, bucket)
    query = select(*keys, *_totals_of_batch()).group_by(*keys).order_by(*keys)
    counted = query.compile(dialect=POSTGRES, compile_kwargs={"literal_binds": True})
    name = target.name
    sets = [f"{c} = {name}.{c} + EXCLUDED.{c}" for c in VALUES[:-2]] + [
        f"duration_min_ms = LEAST({name}.duration_min_ms, EXCLUDED.duration_min_ms)",
        f"duration_max_ms = GREATEST({name}.duration_max_ms, EXCLUDED.duration_max_ms)",
    ]
    return (
        f"WITH batch AS MATERIALIZED ({_BATCH_SELECT}) "
        f"INSERT INTO {name} ({', '.join((*ROLLUP_KEY, *VALUES))}) {counted} "
        f"ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET {', '.join(sets)}"
    )


def totals_of_rollups(table: Table) -> list[ColumnElement[Any]]:
    """The aggregates that sum rows of a rollup ``table`` into one (``Totals.of``)."""
    return [
        *(func.sum(table.c[name]) for name in ROLLUP_COUNTS),
        func.sum(table.c.duration_sum_ms),
        func.min(table.c.duration_min_ms),
        func.max(table.c.duration_max_ms),
    ]


def totals_of_runs(runs: Any = RUNS) -> list[ColumnElement[Any]]:
    """The aggregates that count rows of check_runs (or of ``runs``, with its columns) as
    a rollup row would (``Totals.of``); callers select only final runs."""
    duration = runs.c.duration_ms

    def count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((condition, 1), else_=0))

    bounds = [None, *LATENCY_BOUNDS_MS]
    histogram = [
        count(
            and_(
                *([] if low is None else [duration > low]),
                *([] if high is None else [duration <= high]),
            )
        )
        for low, high in zip(bounds, [*LATENCY_BOUNDS_MS, None], strict=True)
    ]
    return [
        *(count(runs.c.status == status) for status in STATUSES),
        *histogram,
        func.sum(duration),
        func.min(duration),
        func.max(duration),
    ]


def truncated(session: Session, moment: ColumnElement[Any], unit: str) -> ColumnElement[Any]:
    """``moment`` cut down to the start of its hour or day (``unit``), in UTC."""
    if is_postgres(session):
        return func.date_trunc(unit, moment, "UTC")
    # SQLite keeps times as UTC text, in the layout SQLAlchemy writes them in.
    layout = "%Y-%m-%d %H:00:00.000000" if unit == "hour" else "%Y-%m-%d 00:00:00.000000"
    return type_coerce(func.strftime(layout, moment), UTCDateTime)


def final_runs_scheduled(since: datetime) -> ColumnElement[bool]:
    """Final runs scheduled at ``since`` or later. A run starts after it was scheduled, so
    ``started_at`` (indexed) bounds them too; a minute allows for a worker's clock."""
    return and_(
        RUNS.c.final.is_(True),
        RUNS.c.scheduled_at >= since,
        RUNS.c.started_at >= since - timedelta(minutes=1),
    )


def rebuild(session: Session, since: datetime) -> None:
    """Recount the rollups from ``since`` on from check_runs: every hour from the one
    ``since`` falls in, from the final runs stored; then every day from the one ``since``
    falls in, from its hours. For the runs that a release without rollups stored.

    Ingest waits meanwhile (on Postgres, for the lock taken here; on SQLite, for the
    one writer), so that each run is counted either by this recount or by its ingest
    transaction, which adds to the recounted rows after this commits.
    """
    first_hour, first_day = hour_start(since), day_start(since)
    if is_postgres(session):
        session.execute(
            text(f"LOCK TABLE {HOURLY_ROLLUPS.name}, {DAILY_ROLLUPS.name} IN EXCLUSIVE MODE")
        )
    session.execute(delete(HOURLY_ROLLUPS).where(HOURLY_ROLLUPS.c.bucket_start >= first_hour))
    hour = truncated(session, RUNS.c.scheduled_at, "hour")
    recount = (
        select(RUNS.c.check_id, RUNS.c.location, hour, *totals_of_runs())
        .where(final_runs_scheduled(first_hour))
        .group_by(RUNS.c.check_id, RUNS.c.location, hour)
    )
    _insert_from(session, HOURLY_ROLLUPS, recount)
    session.execute(delete(DAILY_ROLLUPS).where(DAILY_ROLLUPS.c.bucket_start >= first_day))
    hours = HOURLY_ROLLUPS
    day = truncated(session, hours.c.bucket_start, "day")
    days = (
        select(hours.c.check_id, hours.c.location, day, *totals_of_rollups(hours))
        .where(hours.c.bucket_start >= first_day)
        .group_by(hours.c.check_id, hours.c.location, day)
    )
    _insert_from(session, DAILY_ROLLUPS, days)


def _insert_from(session: Session, table: Table, query: Any) -> None:
    session.execute(insert(table).from_select([*ROLLUP_KEY, *VALUES], query))


def recount(session: Session, unit: str) -> dict[tuple[str, str, datetime], Totals]:
    """What the rollup of ``unit`` (hour or day) should hold, counted afresh from
    check_runs (for tests and for checking an installation): by check, location, bucket."""
    bucket = truncated(session, RUNS.c.scheduled_at, unit)
    query = (
        select(RUNS.c.check_id, RUNS.c.location, bucket, *totals_of_runs())
        .where(RUNS.c.final.is_(True))
        .group_by(RUNS.c.check_id, RUNS.c.location, bucket)
    )
    return {(r[0], r[1], r[2]): Totals.of(r[3:]) for r in session.execute(query)}


def stored(session: Session, table: Table) -> dict[tuple[str, str, datetime], Totals]:
    """What the rollup ``table`` holds, by check, location and bucket."""
    query = select(*(table.c[k] for k in ROLLUP_KEY), *(table.c[name] for name in VALUES))
    return {(r[0], r[1], r[2]): Totals.of(r[3:]) for r in session.execute(query)}
