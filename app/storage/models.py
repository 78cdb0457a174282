"""The database schema as SQLAlchemy 2 typed models (Postgres in production, SQLite embedded).

The Alembic migrations in ``migrations/versions`` are the source of truth for the
deployed schema; a test compares them with these models on both databases.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware.

    SQLite has no time zones: without this, the same query would return aware datetimes
    on Postgres and naive ones on SQLite.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CheckRow(Base):
    __tablename__ = "checks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    definition_hash: Mapped[str] = mapped_column(String(64))
    frequency_s: Mapped[float] = mapped_column(Float)
    locations: Mapped[list[str]] = mapped_column(JSONDocument)
    run_mode: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the next location for round-robin checks.
    rr_cursor: Mapped[int] = mapped_column(Integer, default=0)
    source_file: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_checks_due", "enabled", "next_run_at"),)


# On Postgres, ``runs`` is range-partitioned by ``scheduled_at`` (migration 0007): daily
# partitions, the legacy partition (the table of the releases before, check_runs) and a
# default one. Partitions are created and dropped by app/pipeline/retention.py.
RUNS_TABLE = "runs"
ARTIFACTS_PREDICATE = "artifacts <> '[]'::jsonb"  # as migration 0007 writes it


class CheckRunRow(Base):
    """One stored result. Its key is ``(run_id, scheduled_at)``: a partitioned table needs
    the partition key in every unique key, and a run id always comes with the same
    ``scheduled_at`` (deterministic slots; retries keep their root's), so the pair is as
    unique as the run id. ``id`` orders rows (and pages through them); on Postgres it is
    filled by a sequence but holds no constraint of its own."""

    __tablename__ = RUNS_TABLE

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    check_id: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # Check attempt (1 = the scheduled run, 2.. = retries) and SQS deliveries of the job.
    attempt: Mapped[int] = mapped_column(SmallInteger, default=1)
    deliveries: Mapped[int] = mapped_column(SmallInteger, default=1)
    root_run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # True for the attempt that decided the check's state (no retry followed it).
    final: Mapped[bool] = mapped_column(Boolean, default=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float] = mapped_column(Float)
    timings: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    assertions: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    # network | timeout | assertion | response_time | forbidden_target | config | browser
    error_kind: Mapped[str | None] = mapped_column(String(32))
    response: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    worker_version: Mapped[str] = mapped_column(String(64))
    worker_host: Mapped[str] = mapped_column(String(255))
    message_version: Mapped[int] = mapped_column(SmallInteger)
    # schedule | manual | retry. Added by migration 0002 ("expand"): nullable, because
    # version 1 results do not carry it and the release before 0002 does not write it.
    trigger: Mapped[str | None] = mapped_column(String(16))
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("uq_runs_run_id_scheduled_at", "run_id", "scheduled_at", unique=True),
        Index("ix_runs_check_started", "check_id", "started_at"),
        Index("ix_runs_location_started", "location", "started_at"),
        Index("ix_runs_root", "root_run_id"),
        # What retention deletes in batches (the legacy and default partitions, SQLite).
        Index("ix_runs_scheduled", "scheduled_at"),
        # The few runs that name artifacts: what retention reads before it drops a
        # partition, rather than all of it.
        Index(
            "ix_runs_artifacts",
            "scheduled_at",
            postgresql_where=text(ARTIFACTS_PREDICATE),
            sqlite_where=text("artifacts != '[]'"),
        ),
    )


RUN_KEY = ("run_id", "scheduled_at")


class ChannelRow(Base):
    __tablename__ = "channels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CheckStateRow(Base):
    __tablename__ = "check_state"

    check_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # passing | degraded | failing | unknown
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    last_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # An alert went out and no recovery has followed yet.
    alerting: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CheckLocationStateRow(Base):
    """The state of one location of a check; the check's own state is derived from these."""

    __tablename__ = "check_location_state"

    check_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    location: Mapped[str] = mapped_column(String(40), primary_key=True)
    # passing | degraded | failing | unknown: the last final result at this location.
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    last_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationRow(Base):
    """The notification outbox: written with the result that caused it, sent afterwards."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    check_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))  # failure | recovery | degraded
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("run_id", "channel_id", "event"),
        Index("ix_notifications_pending", "status", "next_attempt_at"),
    )


class OutboxRow(Base):
    """Run requests (check retries) decided in an ingest transaction, sent after commit."""

    __tablename__ = "run_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    queue: Mapped[str] = mapped_column(String(200))
    body: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_run_outbox_unsent", "sent_at"),)


# The latency histogram of the rollups: bucket i holds the runs whose duration is above
# bound i-1 and at most bound i (ms); one more bucket holds those above the last bound.
# Round numbers, 1-1.5-2-3-5-7 per decade (each bound at most 1.67 times the one before),
# from 10 ms (nothing a network round trip does is faster) to 60 s (the longest timeout a
# check is given). Fixed for good: changing them means a new set of columns.
LATENCY_BOUNDS_MS = (
    *(10, 15, 20, 30, 50, 70),
    *(100, 150, 200, 300, 500, 700),
    *(1000, 1500, 2000, 3000, 5000, 7000),
    *(10000, 15000, 20000, 30000, 50000, 60000),
)
HISTOGRAM_COLUMNS = (
    *(f"ms_le_{bound}" for bound in LATENCY_BOUNDS_MS),
    f"ms_gt_{LATENCY_BOUNDS_MS[-1]}",
)
ROLLUP_KEY = ("check_id", "location", "bucket_start")
ROLLUP_COUNTS = ("passed", "degraded", "failed", *HISTOGRAM_COLUMNS)


def _rollup_table(name: str) -> Table:
    """A rollup of the final runs of each check x location per hour or day, by the start of
    the period their run was scheduled in (see app/pipeline/rollups.py)."""
    return Table(
        name,
        Base.metadata,
        Column("check_id", String(64), primary_key=True),
        Column("location", String(40), primary_key=True),
        Column("bucket_start", UTCDateTime, primary_key=True),  # start of the period
        *(Column(count, Integer, nullable=False) for count in ROLLUP_COUNTS),
        Column("duration_sum_ms", Float, nullable=False),
        Column("duration_min_ms", Float, nullable=False),
        Column("duration_max_ms", Float, nullable=False),
        # Questions about every check (a report, uptimes, retention) ask for some hours
        # or days of all of them (migration 0010).
        Index(f"ix_{name}_bucket_start", "bucket_start"),
    )


HOURLY_ROLLUPS = _rollup_table("check_rollups_hourly")
DAILY_ROLLUPS = _rollup_table("check_rollups_daily")
