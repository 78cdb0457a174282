"""Retention: raw runs, hourly and daily rollups removed once older than their settings.

``plan`` says what the next pass removes; ``prune`` removes it. Both take the same
``now``, so that a plan and the pass after it agree row for row.

What goes, each by its own setting:

- raw runs whose ``scheduled_at`` is older than ``SYNMON_RUNS_RETENTION``, whatever their
  state: a run scheduled a month ago is history, and a retry still awaited that long ago
  will never come (its result, should it arrive, is stored again and pruned next pass).
  Their artifacts go with them, in the same transaction: deleted from the store before
  the rows are committed, so a failed store undoes the batch and nothing is orphaned.
- hourly rollup rows whose hour ended before ``SYNMON_HOURLY_ROLLUPS_RETENTION`` ago, and
  only once their day is over (a short retention never empties the current day);
- daily rollup rows whose day ended before ``SYNMON_DAILY_ROLLUPS_RETENTION`` ago.

check_runs is a plain table here (on both databases), so rows are deleted in batches of
``SYNMON_PRUNE_BATCH_SIZE``, one short transaction each, so that ingest never waits on a
pass for long. On Postgres each batch locks its rows with SKIP LOCKED: two passes at
once (beat fired twice, or ``synmon prune`` beside the task) take different rows and
each row is removed, and counted, once. SQLite has one writer: its batches take turns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from app.execution.artifacts import ArtifactStore
from app.pipeline.rollups import DAY, HOUR, RUNS, day_start
from app.storage.bulk import is_postgres
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS, ROLLUP_KEY
from config.settings import Settings


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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _old_runs(cutoffs: Cutoffs) -> ColumnElement[bool]:
    return RUNS.c.scheduled_at < cutoffs.runs


def _old_buckets(table: Table, cutoff: datetime) -> ColumnElement[bool]:
    return table.c.bucket_start < cutoff


def _rollups(cutoffs: Cutoffs) -> tuple[tuple[str, Table, datetime], ...]:
    return (
        ("hourly_rollups", HOURLY_ROLLUPS, cutoffs.hourly),
        ("daily_rollups", DAILY_ROLLUPS, cutoffs.daily),
    )


def artifact_keys(artifacts: Any) -> list[str]:
    """The store keys of a run's ``artifacts`` column (entries without one are skipped)."""
    return [entry["key"] for entry in artifacts or () if isinstance(entry, dict) and "key" in entry]


def plan(session: Session, settings: Settings, now: datetime) -> Pruned:
    """What a pass at ``now`` removes, counted; nothing is removed."""
    cutoffs = Cutoffs.of(settings, now)
    found = Pruned()
    old = _old_runs(cutoffs)
    found.runs = session.scalar(select(func.count()).select_from(RUNS).where(old)) or 0
    # Artifacts are counted from the rows' documents, a batch at a time, as a pass reads them.
    found.artifacts = sum(
        len(artifact_keys(artifacts))
        for artifacts in session.scalars(
            select(RUNS.c.artifacts).where(old).execution_options(yield_per=1000)
        )
    )
    for name, table, cutoff in _rollups(cutoffs):
        count = select(func.count()).select_from(table).where(_old_buckets(table, cutoff))
        setattr(found, name, session.scalar(count) or 0)
    return found


def prune(
    Session: sessionmaker[Session], settings: Settings, store: ArtifactStore, now: datetime
) -> Pruned:
    """Remove what ``plan`` at ``now`` counts, a batch per transaction; what it removed.

    Safe beside ingest and beside another pass: see the module's doc."""
    cutoffs = Cutoffs.of(settings, now)
    size = settings.prune_batch_size
    done = Pruned()
    for runs, artifacts in _batches(Session, lambda s: _delete_runs(s, cutoffs, size, store)):
        done.runs += runs
        done.artifacts += artifacts
    for name, table, cutoff in _rollups(cutoffs):
        step = _rollup_step(table, cutoff, size)
        setattr(done, name, sum(rows for rows, _ in _batches(Session, step)))
    return done


Step = Callable[[Session], tuple[int, int]]


def _batches(Session: sessionmaker[Session], step: Step) -> Iterator[tuple[int, int]]:
    """Run ``step`` (it says the rows and artifacts it removed) each time in a
    transaction of its own, until it removes nothing."""
    while True:
        with Session.begin() as session:
            removed = step(session)
        if not removed[0]:
            return
        yield removed


def _locked(session: Session, query: Any) -> Any:
    # Another pass's rows are skipped rather than waited for: that pass removes them.
    return query.with_for_update(skip_locked=True) if is_postgres(session) else query


def _delete_runs(
    session: Session, cutoffs: Cutoffs, size: int, store: ArtifactStore
) -> tuple[int, int]:
    # Oldest ids first: the rows ingested first are mostly the oldest scheduled, so the
    # primary key's order reaches them before the young rest of the table.
    ids = select(RUNS.c.id).where(_old_runs(cutoffs)).order_by(RUNS.c.id).limit(size)
    statement = delete(RUNS).where(RUNS.c.id.in_(_locked(session, ids).scalar_subquery()))
    removed = list(session.execute(statement.returning(RUNS.c.artifacts)).scalars())
    keys = [key for artifacts in removed for key in artifact_keys(artifacts)]
    if keys:
        # Before the commit: if the store fails, the rows stay and the next pass retries.
        store.delete(keys)
    return len(removed), len(keys)


def _rollup_step(table: Table, cutoff: datetime, size: int) -> Step:
    key = tuple_(*(table.c[name] for name in ROLLUP_KEY))
    keys = select(*(table.c[name] for name in ROLLUP_KEY)).where(_old_buckets(table, cutoff))

    def step(session: Session) -> tuple[int, int]:
        batch = _locked(session, keys.order_by(*key.clauses).limit(size))
        removed = session.execute(delete(table).where(key.in_(batch)))
        return removed.rowcount, 0  # type: ignore[attr-defined] # a CursorResult

    return step


def prune_now(Session: sessionmaker[Session], settings: Settings, store: ArtifactStore) -> Pruned:
    """A pass as the periodic task runs it: at the current time."""
    return prune(Session, settings, store, datetime.now(UTC))


def plan_now(Session: sessionmaker[Session], settings: Settings) -> Pruned:
    with Session() as session:
        return plan(session, settings, datetime.now(UTC))
