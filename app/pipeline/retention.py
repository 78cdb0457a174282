"""Retention: raw runs, hourly and daily rollups removed once older than their settings.

``plan`` says what the next pass removes; ``prune`` removes it. Both take the same
``now``, so that a plan and the pass after it agree row for row.

What goes, each by its own setting:

- raw runs whose ``scheduled_at`` is older than ``SYNMON_RUNS_RETENTION``, whatever their
  state: a run scheduled a month ago is history, and a retry still awaited after that
  long will not come. (SQS keeps a message 14 days at most: with a longer retention no
  redelivery of a removed run can arrive and be stored, and counted, a second time.)
  Their artifacts go with them, in the batch's transaction: deleted from the store
  before the rows are committed. A failed store undoes the batch; a failed commit leaves
  expired rows whose artifacts are gone, which the next pass removes. So no artifact is
  ever left that no row names.
- hourly rollup rows whose hour ended before ``SYNMON_HOURLY_ROLLUPS_RETENTION`` ago, and
  only once their day is over (a short retention never empties the current day);
- daily rollup rows whose day ended before ``SYNMON_DAILY_ROLLUPS_RETENTION`` ago.

- notifications sent, and retries sent (run_outbox rows), longer ago than the raw runs'
  retention: the record of what went out lives as long as the runs that caused it.
  Pending and failed ones stay, whatever their age: they are work, not history.

How raw runs go depends on the database:

- On Postgres ``runs`` is partitioned by day of ``scheduled_at`` (migration 0007). A
  partition goes whole, by DROP TABLE, once its whole range is older than the retention:
  O(1), whatever it holds, after its artifacts are deleted from the store (found by a
  scan of the partition; a failed delete keeps the partition for the next pass, a
  failed drop leaves rows whose artifacts are gone, as below). Rows of the partition the
  cutoff falls into wait until all of it expires, a day at most. The legacy partition
  (the table of the releases before 0007) and the default one are not daily: their
  expired rows are deleted in batches, as on SQLite, until the legacy one has expired
  whole and is dropped too.
- The same pass first creates the partitions of the days ahead (``AHEAD_DAYS``), so that
  ingest never writes into the default partition but for a result scheduled far from
  now; rows the default partition holds for a day are moved into that day's partition
  when it is created. Creating and dropping a partition each wait at most
  ``LOCK_TIMEOUT`` for their locks (ingest transactions are short): a pass that cannot
  have them leaves the work to the next one.
- SQLite keeps a plain table: rows are deleted in batches.

Batches are of ``SYNMON_PRUNE_BATCH_SIZE`` rows, one short transaction each, so that
ingest never waits on a pass for long. On Postgres each batch locks its rows with SKIP
LOCKED: two passes at once (beat fired twice, or ``synmon prune`` beside the task) take
different rows and each row is removed, and counted, once. SQLite has one writer: its
batches take turns. The periodic task gives a pass a budget of time (it shares the
dispatch worker); the CLI's pass runs to the end. Runs are found by the index on
``scheduled_at``, oldest first, so a pass that finds nothing to remove reads one index
entry.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, column, delete, func, select, table, text, tuple_
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.execution.artifacts import ArtifactStore
from app.pipeline.rollups import DAY, HOUR, RUNS, day_start
from app.storage.bulk import is_postgres, table_of
from app.storage.models import (
    ARTIFACTS_PREDICATE,
    DAILY_ROLLUPS,
    HOURLY_ROLLUPS,
    ROLLUP_KEY,
    RUNS_TABLE,
    NotificationRow,
    OutboxRow,
)
from config.settings import Settings

log = logging.getLogger("synmon.retention")

# Days of partitions kept ready ahead of today: a maintenance pass that fails for a few
# days running still leaves ingest a partition for every result scheduled on time.
AHEAD_DAYS = 3
# How long creating or dropping a partition waits for its lock before it gives up for
# this pass (its statement queues every insert of the parent behind it while it waits).
LOCK_TIMEOUT = "1s"
# How far back a missing day's partition is still created: SQS keeps a message 14 days at
# most, so no result of an older run can still arrive on time.
LATE_DAYS = 14
COUNTED_UP_TO = 1_000_000  # rows of a partition that goes whole (see rows_of)
DEFAULT_PARTITION = f"{RUNS_TABLE}_default"
NOTIFICATIONS = table_of(NotificationRow)
OUTBOX = table_of(OutboxRow)
_DAILY = re.compile(rf"^{RUNS_TABLE}_p(\d{{8}})$")
_BOUND = re.compile(r"FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class Cutoffs:
    """The newest moment that goes: rows scheduled (runs) or starting (rollup buckets)
    before these are removed."""

    runs: datetime
    hourly: datetime
    daily: datetime

    @classmethod
    def of(cls, settings: Settings, now: datetime) -> Cutoffs:
        # A bucket goes when all of it is older than its retention: it starts one period
        # before that. An hour goes only once its day is over, too.
        hourly = min(now - settings.hourly_rollups_retention - HOUR, day_start(now))
        return cls(
            runs=now - settings.runs_retention,
            hourly=hourly,
            daily=now - settings.daily_rollups_retention - DAY,
        )


@dataclass
class Pruned:
    """Rows (and artifacts) a pass removes, or removed, per table."""

    runs: int = 0
    artifacts: int = 0
    hourly_rollups: int = 0
    daily_rollups: int = 0
    notifications: int = 0
    outbox: int = 0
    partitions: int = 0  # of the runs above, dropped whole with their partition

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Partition:
    """A partition of ``runs`` (Postgres) and the range of ``scheduled_at`` it holds:
    ``lower`` None from the beginning of time, both None for the default partition."""

    name: str
    lower: datetime | None
    upper: datetime | None

    @property
    def daily(self) -> bool:
        return bool(_DAILY.match(self.name))

    @property
    def default(self) -> bool:
        return self.upper is None

    def table(self) -> Any:
        return table(self.name, column("id"), column("scheduled_at"), column("artifacts"))


def _bound(value: str) -> datetime | None:
    if value.upper() == "MINVALUE":
        return None
    return datetime.fromisoformat(value.strip("'")).astimezone(UTC)


def partitions(session: Session) -> list[Partition]:
    """The partitions of ``runs`` in the order of their ranges (default last)."""
    # Bounds are written out in the session's time zone: UTC, to read them back exactly.
    session.execute(text("SET LOCAL TIME ZONE 'UTC'"))
    rows = session.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": RUNS_TABLE},
    )
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match is None:  # FOR VALUES DEFAULT
            found.append(Partition(name, None, None))
        else:
            found.append(Partition(name, _bound(match.group(1)), _bound(match.group(2))))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(found, key=lambda p: (p.upper or far, p.name))


def is_partitioned(session: Session) -> bool:
    return is_postgres(session)


def create_ahead(session: Session, now: datetime) -> list[str]:
    """Create the daily partitions from the end of the last one to ``AHEAD_DAYS`` after
    ``now``'s day, moving into each the rows the default partition holds for it; their
    names. A gap (maintenance stopped for a while) is filled too, back to ``LATE_DAYS``
    before ``now``, so that a late result of such a day finds its partition; older days
    stay in the default partition, whose expired rows retention deletes."""
    # One pass at a time (beat fired twice, a CLI beside the task): the other one is
    # creating these partitions, and this one would only fail on a name it took.
    if not session.scalar(
        text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": RUNS_TABLE}
    ):
        return []
    ranged = [p.upper for p in partitions(session) if not p.default and p.upper is not None]
    today = day_start(now)
    start = max([*ranged, today - timedelta(days=LATE_DAYS)])
    end = today + timedelta(days=AHEAD_DAYS + 1)
    created = []
    day = start
    while day < end:
        name = f"{RUNS_TABLE}_p{day:%Y%m%d}"
        _attach_day(session, name, day, day + DAY)
        created.append(name)
        day += DAY
    return created


def _attach_day(session: Session, name: str, lower: datetime, upper: datetime) -> None:
    # CREATE ... (LIKE) then ATTACH, rather than CREATE ... PARTITION OF: attaching takes
    # SHARE UPDATE EXCLUSIVE on runs, which ingest's inserts do not wait for, where
    # PARTITION OF takes ACCESS EXCLUSIVE. The new table is empty, so the scan that
    # ATTACH makes of it, and of the default partition, is short.
    session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    session.execute(
        text(f"CREATE TABLE {name} (LIKE {RUNS_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    )
    # The default partition is locked before its rows for the day are moved: a result
    # of that day committed into it between the move and the attach would fail the
    # attach's check of it, and with it every day of this pass. Fleets write into their
    # day's partition, so only stray results wait on this lock, for an instant.
    session.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE"))
    bounds = {"lower": lower, "upper": upper}
    session.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608 - names are ours
            "WHERE scheduled_at >= :lower AND scheduled_at < :upper RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        ),
        bounds,
    )
    session.execute(
        text(
            f"ALTER TABLE {RUNS_TABLE} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
        )
    )


def maintain_partitions(Session: sessionmaker[Session], now: datetime) -> list[str]:
    """Create the partitions ahead (a transaction of its own); the names created. A lock
    not had in time leaves them to the next pass."""
    try:
        with Session.begin() as session:
            if not is_partitioned(session):
                return []
            return create_ahead(session, now)
    except OperationalError as exc:
        log.warning("partitions ahead not created this pass: %s", exc.orig or exc)
        return []


def _old_buckets(table: Table, cutoff: datetime) -> ColumnElement[bool]:
    return table.c.bucket_start < cutoff


def _rollups(cutoffs: Cutoffs) -> tuple[tuple[str, Table, datetime], ...]:
    return (
        ("hourly_rollups", HOURLY_ROLLUPS, cutoffs.hourly),
        ("daily_rollups", DAILY_ROLLUPS, cutoffs.daily),
    )


def _sent_before(cutoffs: Cutoffs) -> tuple[tuple[str, Table, ColumnElement[bool]], ...]:
    return (
        (
            "notifications",
            NOTIFICATIONS,
            (NOTIFICATIONS.c.status == "sent") & (NOTIFICATIONS.c.sent_at < cutoffs.runs),
        ),
        ("outbox", OUTBOX, OUTBOX.c.sent_at < cutoffs.runs),
    )


def artifact_keys(artifacts: Any) -> list[str]:
    """The store keys of a run's ``artifacts`` column (entries without one are skipped)."""
    return [entry["key"] for entry in artifacts or () if isinstance(entry, dict) and "key" in entry]


def _expired(session: Session, cutoffs: Cutoffs) -> tuple[list[Partition], list[Any]]:
    """(the partitions that go whole, the tables whose expired rows go in batches)."""
    if not is_partitioned(session):
        return [], [RUNS]
    found = partitions(session)
    whole = [p for p in found if p.upper is not None and p.upper <= cutoffs.runs]
    batched = [p.table() for p in found if not p.daily and p not in whole]
    return whole, batched


def _partition_artifacts(session: Session, partition: Partition) -> Iterator[list[str]]:
    """The artifact keys of a partition's runs, a thousand rows at a time."""
    runs = partition.table()
    # The predicate of the partial index ix_runs_artifacts, word for word, so that the
    # planner reads that index: the few rows that name artifacts, not the partition.
    query = (
        select(runs.c.artifacts).where(text(ARTIFACTS_PREDICATE)).execution_options(yield_per=1000)
    )
    keys: list[str] = []
    for artifacts in session.scalars(query):
        keys.extend(artifact_keys(artifacts))
        if len(keys) >= 1000:
            yield keys
            keys = []
    if keys:
        yield keys


def rows_of(session: Session, partition: Partition) -> int:
    """The rows of a partition: counted while few, above ``COUNTED_UP_TO`` the planner's
    estimate (from the last ANALYZE), since counting a day of a large fleet (~144
    million rows) would read all of it, on the worker that also dispatches."""
    estimate = session.scalar(
        text("SELECT reltuples FROM pg_class WHERE oid = CAST(:name AS regclass)"),
        {"name": partition.name},
    )
    if estimate is not None and estimate > COUNTED_UP_TO:
        return int(estimate)
    return int(session.scalar(select(func.count()).select_from(partition.table())) or 0)


def plan(session: Session, settings: Settings, now: datetime) -> Pruned:
    """What a pass at ``now`` removes, counted; nothing is removed."""
    cutoffs = Cutoffs.of(settings, now)
    found = Pruned()
    whole, batched = _expired(session, cutoffs)
    for partition in whole:
        found.partitions += 1
        found.runs += rows_of(session, partition)
        found.artifacts += sum(len(keys) for keys in _partition_artifacts(session, partition))
    for runs in batched:
        old = runs.c.scheduled_at < cutoffs.runs
        found.runs += session.scalar(select(func.count()).select_from(runs).where(old)) or 0
        # Artifacts are counted from the rows' documents, a batch at a time, as a pass
        # reads them.
        found.artifacts += sum(
            len(artifact_keys(artifacts))
            for artifacts in session.scalars(
                select(runs.c.artifacts).where(old).execution_options(yield_per=1000)
            )
        )
    for name, table_, cutoff in _rollups(cutoffs):
        count = select(func.count()).select_from(table_).where(_old_buckets(table_, cutoff))
        setattr(found, name, session.scalar(count) or 0)
    for name, table_, condition in _sent_before(cutoffs):
        count = select(func.count()).select_from(table_).where(condition)
        setattr(found, name, session.scalar(count) or 0)
    return found


def prune(
    Session: sessionmaker[Session],
    settings: Settings,
    store: ArtifactStore,
    now: datetime,
    budget: float | None = None,
) -> Pruned:
    """Remove what ``plan`` at ``now`` counts, a batch per transaction; what it removed.

    With a ``budget`` (seconds), no batch starts after it is spent: the periodic task
    shares its worker with dispatch, and the next pass goes on where this one stopped.
    Rollups come first, so that a backlog of raw runs never starves them.
    Safe beside ingest and beside another pass: see the module's doc."""
    cutoffs = Cutoffs.of(settings, now)
    size = settings.prune_batch_size
    until = None if budget is None else time.monotonic() + budget
    done = Pruned()
    for name, table_, cutoff in _rollups(cutoffs):
        step = _rollup_step(table_, cutoff, size)
        setattr(done, name, sum(rows for rows, _ in _batches(Session, step, until)))
    for name, table_, condition in _sent_before(cutoffs):
        step = _sent_step(table_, condition, size)
        setattr(done, name, sum(rows for rows, _ in _batches(Session, step, until)))
    with Session() as session:
        whole, batched = _expired(session, cutoffs)
    for partition in whole:
        if until is not None and time.monotonic() >= until:
            break
        removed, artifacts = _drop(Session, partition, store)
        done.partitions += 1 if removed is not None else 0
        done.runs += removed or 0
        done.artifacts += artifacts
    for runs in batched:
        step = _runs_step(runs, cutoffs, size, store)
        for removed, artifacts in _batches(Session, step, until):
            done.runs += removed
            done.artifacts += artifacts
    return done


def _drop(
    Session: sessionmaker[Session], partition: Partition, store: ArtifactStore
) -> tuple[int | None, int]:
    """Delete the artifacts of a partition's runs, then drop it; (its rows, or None if
    it stays for the next pass, and the artifacts deleted)."""
    deleted = 0
    try:
        with Session.begin() as session:
            # Another pass dropping this partition (beat fired twice) does it alone, and
            # counts it alone.
            lock = text("SELECT pg_try_advisory_xact_lock(hashtext(:name))")
            if not session.scalar(lock, {"name": partition.name}):
                return None, 0
            if session.scalar(text("SELECT to_regclass(:name)"), {"name": partition.name}) is None:
                return None, 0  # dropped by that pass since this one listed it
            rows = rows_of(session, partition)
            for keys in _partition_artifacts(session, partition):
                # Before the drop: if the store fails, the partition stays for the next
                # pass; if the drop fails, its artifacts are gone and it is dropped next.
                store.delete(keys)
                deleted += len(keys)
            session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            session.execute(text(f"DROP TABLE {partition.name}"))
    except OperationalError as exc:
        log.warning("partition %s not dropped this pass: %s", partition.name, exc.orig or exc)
        return None, deleted
    return rows, deleted


Step = Callable[[Session], tuple[int, int]]


def _batches(
    Session: sessionmaker[Session], step: Step, until: float | None
) -> Iterator[tuple[int, int]]:
    """Run ``step`` (it says the rows and artifacts it removed) each time in a
    transaction of its own, until it removes nothing or the clock passes ``until``."""
    while until is None or time.monotonic() < until:
        with Session.begin() as session:
            removed = step(session)
        if not removed[0]:
            return
        yield removed


def _locked(session: Session, query: Any) -> Any:
    # Another pass's rows are skipped rather than waited for: that pass removes them.
    return query.with_for_update(skip_locked=True) if is_postgres(session) else query


def _runs_step(runs: Any, cutoffs: Cutoffs, size: int, store: ArtifactStore) -> Step:
    def step(session: Session) -> tuple[int, int]:
        # Oldest first, along the index on scheduled_at: a batch reads what it removes.
        old = runs.c.scheduled_at < cutoffs.runs
        ids = select(runs.c.id).where(old).order_by(runs.c.scheduled_at).limit(size)
        statement = delete(runs).where(runs.c.id.in_(_locked(session, ids).scalar_subquery()))
        removed = list(session.execute(statement.returning(runs.c.artifacts)).scalars())
        keys = [key for artifacts in removed for key in artifact_keys(artifacts)]
        if keys:
            # Before the commit: if the store fails, the rows stay and the next pass retries.
            store.delete(keys)
        return len(removed), len(keys)

    return step


def _rollup_step(table_: Table, cutoff: datetime, size: int) -> Step:
    key = tuple_(*(table_.c[name] for name in ROLLUP_KEY))
    keys = select(*(table_.c[name] for name in ROLLUP_KEY)).where(_old_buckets(table_, cutoff))

    def step(session: Session) -> tuple[int, int]:
        batch = _locked(session, keys.order_by(*key.clauses).limit(size))
        removed = session.execute(delete(table_).where(key.in_(batch)))
        return removed.rowcount, 0  # type: ignore[attr-defined] # a CursorResult

    return step


def _sent_step(table_: Table, condition: ColumnElement[bool], size: int) -> Step:
    def step(session: Session) -> tuple[int, int]:
        ids = _locked(session, select(table_.c.id).where(condition).order_by(table_.c.id))
        statement = delete(table_).where(table_.c.id.in_(ids.limit(size).scalar_subquery()))
        return session.execute(statement).rowcount, 0  # type: ignore[attr-defined]

    return step


def prune_now(
    Session: sessionmaker[Session],
    settings: Settings,
    store: ArtifactStore,
    budget: float | None = None,
) -> Pruned:
    """A pass at the current time (the task's, with a budget; the CLI's, without)."""
    return prune(Session, settings, store, datetime.now(UTC), budget)


def maintain_now(
    Session: sessionmaker[Session],
    settings: Settings,
    store: ArtifactStore,
    budget: float | None = None,
) -> Pruned:
    """The storage-maintenance pass of the periodic task: partitions ahead, then pruning."""
    now = datetime.now(UTC)
    maintain_partitions(Session, now)
    return prune(Session, settings, store, now, budget)


def plan_now(Session: sessionmaker[Session], settings: Settings) -> Pruned:
    with Session() as session:
        return plan(session, settings, datetime.now(UTC))
