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

check_runs is a plain table here (on both databases), so rows are deleted in batches of
``SYNMON_PRUNE_BATCH_SIZE``, one short transaction each, so that ingest never waits on a
pass for long. On Postgres each batch locks its rows with SKIP LOCKED: two passes at
once (beat fired twice, or ``synmon prune`` beside the task) take different rows and
each row is removed, and counted, once. SQLite has one writer: its batches take turns.
The periodic task gives a pass a budget of time (it shares the dispatch worker); the
CLI's pass runs to the end.

Runs are found by the index on ``scheduled_at`` (migration 0004), oldest first, so a pass
that finds nothing to remove reads one index entry. Partitioning check_runs by time
(issue #15's Postgres part) will drop whole partitions instead.
"""

from __future__ import annotations

import time
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
    for name, table, cutoff in _rollups(cutoffs):
        step = _rollup_step(table, cutoff, size)
        setattr(done, name, sum(rows for rows, _ in _batches(Session, step, until)))
    runs = _batches(Session, lambda s: _delete_runs(s, cutoffs, size, store), until)
    for removed, artifacts in runs:
        done.runs += removed
        done.artifacts += artifacts
    return done


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


def _delete_runs(
    session: Session, cutoffs: Cutoffs, size: int, store: ArtifactStore
) -> tuple[int, int]:
    # Oldest first, along the index on scheduled_at: a batch reads what it removes.
    ids = select(RUNS.c.id).where(_old_runs(cutoffs)).order_by(RUNS.c.scheduled_at).limit(size)
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


def prune_now(
    Session: sessionmaker[Session],
    settings: Settings,
    store: ArtifactStore,
    budget: float | None = None,
) -> Pruned:
    """A pass at the current time (the task's, with a budget; the CLI's, without)."""
    return prune(Session, settings, store, datetime.now(UTC), budget)


def plan_now(Session: sessionmaker[Session], settings: Settings) -> Pruned:
    with Session() as session:
        return plan(session, settings, datetime.now(UTC))
