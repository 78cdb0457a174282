"""Expand: ``runs``, the stored results, range-partitioned by ``scheduled_at`` on Postgres.

The release before inserts into ``check_runs`` with ``ON CONFLICT (run_id)``. A partitioned
table cannot have that unique key (every unique key must hold the partition key), so
``check_runs`` cannot itself become partitioned while that release runs. Instead:

- ``runs`` is a new partitioned table, and the old ``check_runs`` becomes its first
  partition (the *legacy* partition), covering every ``scheduled_at`` before a bound a
  week after the migration (``LEGACY_DAYS``; later if runs are scheduled later already,
  as after a rollback of this migration). Its rows are not moved: they are read
  through ``runs`` from the moment of the attach.
- The release before keeps inserting into ``check_runs`` by name, with its own unique
  index on ``run_id`` as the arbiter of its ``ON CONFLICT``; this release inserts into
  ``runs`` with ``ON CONFLICT (run_id, scheduled_at)``. A run id always comes with the
  same ``scheduled_at`` (deterministic slots; retries keep their root's), so a run
  stored by either release during the roll (scheduled before the bound) lands in the
  legacy partition, and both unique indexes there see every redelivery, whichever
  release stores it. The roll must therefore be over within ``LEGACY_DAYS``: after the
  bound, the release before can store nothing (its rows fail the partition's range).
- Days from the bound on get daily partitions, created ahead by the storage-maintenance
  pass (app/pipeline/retention.py); a ``runs_default`` partition holds anything outside
  every range (a worker's clock far ahead, a maintenance pass that did not run), and
  maintenance moves such rows into the partition it creates for them.

Nothing here holds a long lock on a large table: the unique index and the partial index of
the runs with artifacts are built on the legacy table CONCURRENTLY, its range CHECK is
added NOT VALID (an instant's ACCESS EXCLUSIVE) and validated under SHARE UPDATE
EXCLUSIVE (writes go on), and ATTACH PARTITION then
skips its scan because the valid CHECK proves the range; the attach itself takes ACCESS
EXCLUSIVE on ``check_runs`` for milliseconds, waiting at most ``lock_timeout`` for it.
A migration that times out there can simply be run again: each step is idempotent.

The contract step (a later release, once no release before this one runs): rename the
legacy partition out of the way and drop its index on ``run_id`` alone and its CHECK.
Retention drops the legacy partition whole once all of it is past ``runs_retention``.

The same migration leaves room on each page of the rollup tables (fillfactor 50): ingest
updates a check's hourly and daily row with each of its runs, and an update that finds
room on its page is HOT (no index entry, no new page); at Postgres's default of 100 none
was, and rollups cost ingest more than storing the runs (measured: a third less time per
batch of updates with room, see bench/ingest.py). It changes only the pages written from
now on, under SHARE UPDATE EXCLUSIVE: ingest goes on meanwhile.

SQLite, the embedded single-machine store, keeps a plain table: ``check_runs`` is
copied into ``runs`` (a file of one machine's history) with the key ``(run_id,
scheduled_at)``. All processes of ``synmon up`` run one release, so no release before
writes beside it there.

Revision ID: 0007
Revises: 0006
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LEGACY = "check_runs"
PARENT = "runs"
DEFAULT = "runs_default"
LEGACY_DAYS = 7
LEGACY_DAYS_AT_MOST = 60
LEGACY_KEY = "uq_check_runs_run_id_scheduled_at"
LEGACY_RANGE = "ck_check_runs_legacy_range"
# The indexes of runs, as the legacy table already has them (0001, 0004): ATTACH adopts
# an equal index of the partition instead of building one.
INDEXES = {
    "ix_runs_check_started": ("check_id", "started_at"),
    "ix_runs_location_started": ("location", "started_at"),
    "ix_runs_root": ("root_run_id",),
    "ix_runs_scheduled": ("scheduled_at",),
}
KEY = "uq_runs_run_id_scheduled_at"
# The runs that name artifacts, few of all (failed browser runs with screenshots): what
# retention reads before it drops a partition, instead of all of it.
WITH_ARTIFACTS = "ix_runs_artifacts"
LEGACY_WITH_ARTIFACTS = "ix_check_runs_artifacts"
ARTIFACTS_PREDICATE = "artifacts <> '[]'::jsonb"
COLUMNS = (
    "id, run_id, check_id, location, kind, status, attempt, deliveries, root_run_id, final, "
    "scheduled_at, started_at, finished_at, duration_ms, timings, assertions, error, "
    "error_kind, response, artifacts, worker_version, worker_host, message_version, "
    "trigger, ingested_at"
)


def _postgres() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")


def _scalar(statement: str, **parameters: object) -> object:
    return op.get_bind().execute(sa.text(statement), parameters).scalar()


ROLLUPS = ("check_rollups_hourly", "check_rollups_daily")
ROLLUP_FILLFACTOR = 50


def upgrade() -> None:
    if not _postgres():
        _sqlite_upgrade()
        return
    for name in ROLLUPS:
        op.execute(f"ALTER TABLE {name} SET (fillfactor = {ROLLUP_FILLFACTOR})")
    if _scalar("SELECT to_regclass(:name)", name=PARENT) is not None:
        return  # an earlier run of this migration attached already
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    bound = today + timedelta(days=LEGACY_DAYS)
    # Rows scheduled later already (this release ran before, and was rolled back) move
    # the bound past them, by the index on scheduled_at (0004); rows absurdly far ahead
    # (a worker's clock) are refused rather than made the legacy partition's range.
    newest = _scalar(f"SELECT max(scheduled_at) FROM {LEGACY}")  # noqa: S608
    if isinstance(newest, datetime) and newest >= bound:
        if newest > today + timedelta(days=LEGACY_DAYS_AT_MOST):
            raise RuntimeError(
                f"{LEGACY} holds a run scheduled at {newest.isoformat()}, more than "
                f"{LEGACY_DAYS_AT_MOST} days ahead: remove or correct it, then migrate again"
            )
        newest = newest.astimezone(UTC)
        bound = newest.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    with op.get_context().autocommit_block():
        invalid = _scalar(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND NOT i.indisvalid",
            name=LEGACY_KEY,
        )
        if invalid:  # left by an interrupted CREATE INDEX CONCURRENTLY
            op.execute(f"DROP INDEX CONCURRENTLY {LEGACY_KEY}")
        op.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {LEGACY_KEY} "
            f"ON {LEGACY} (run_id, scheduled_at)"
        )
        invalid = _scalar(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND NOT i.indisvalid",
            name=LEGACY_WITH_ARTIFACTS,
        )
        if invalid:
            op.execute(f"DROP INDEX CONCURRENTLY {LEGACY_WITH_ARTIFACTS}")
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {LEGACY_WITH_ARTIFACTS} "
            f"ON {LEGACY} (scheduled_at) WHERE {ARTIFACTS_PREDICATE}"
        )
        # Both take ACCESS EXCLUSIVE for an instant: behind a long reader (a report, a
        # pg_dump) they would queue every insert behind them, so they give up after 5 s
        # instead (the migration can run again).
        op.execute("SET lock_timeout = '5s'")
        op.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT IF EXISTS {LEGACY_RANGE}")
        op.execute(
            f"ALTER TABLE {LEGACY} ADD CONSTRAINT {LEGACY_RANGE} "
            f"CHECK (scheduled_at < '{bound.isoformat()}') NOT VALID"
        )
        op.execute("RESET lock_timeout")
        op.execute(f"ALTER TABLE {LEGACY} VALIDATE CONSTRAINT {LEGACY_RANGE}")
    # One short transaction (alembic's) from here: the attach waits at most this long for
    # the transactions using check_runs, rather than queueing every insert behind it.
    op.execute("SET LOCAL lock_timeout = '5s'")
    # The table's strongest lock first: taken later (after the sequence's, which inserts
    # need for nextval), an insert holding the table and waiting on the sequence would
    # deadlock with the attach. Held for the milliseconds the statements below take.
    op.execute(f"LOCK TABLE {LEGACY} IN ACCESS EXCLUSIVE MODE")
    op.execute(
        f"CREATE TABLE {PARENT} (LIKE {LEGACY} INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (scheduled_at)"
    )
    op.execute(f"CREATE UNIQUE INDEX {KEY} ON {PARENT} (run_id, scheduled_at)")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {PARENT} ({', '.join(columns)})")
    op.execute(
        f"CREATE INDEX {WITH_ARTIFACTS} ON {PARENT} (scheduled_at) WHERE {ARTIFACTS_PREDICATE}"
    )
    # The sequence must outlive the legacy table, which retention drops one day.
    sequence = _scalar("SELECT pg_get_serial_sequence(:t, 'id')", t=LEGACY)
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {PARENT}.id")
    op.execute(
        f"ALTER TABLE {PARENT} ATTACH PARTITION {LEGACY} "
        f"FOR VALUES FROM (MINVALUE) TO ('{bound.isoformat()}')"
    )
    op.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {PARENT} DEFAULT")


def downgrade() -> None:
    if not _postgres():
        _sqlite_downgrade()
        return
    op.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {LEGACY}")
    op.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT IF EXISTS {LEGACY_RANGE}")
    # Whatever the other partitions hold goes back into the plain table.
    op.execute(
        f"INSERT INTO {LEGACY} ({COLUMNS}) SELECT {COLUMNS} FROM {PARENT} "  # noqa: S608
        "ON CONFLICT DO NOTHING"
    )
    sequence = _scalar("SELECT pg_get_serial_sequence(:t, 'id')", t=PARENT)
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {LEGACY}.id")
    op.execute(f"DROP TABLE {PARENT}")
    op.execute(f"DROP INDEX IF EXISTS {LEGACY_KEY}")
    op.execute(f"DROP INDEX IF EXISTS {LEGACY_WITH_ARTIFACTS}")
    for name in ROLLUPS:
        op.execute(f"ALTER TABLE {name} RESET (fillfactor)")


JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _sqlite_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("location", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.Column("deliveries", sa.SmallInteger(), nullable=False),
        sa.Column("root_run_id", sa.Uuid(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        _ts("scheduled_at"),
        _ts("started_at"),
        _ts("finished_at"),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("timings", JSON, nullable=False),
        sa.Column("assertions", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("response", JSON, nullable=False),
        sa.Column("artifacts", JSON, nullable=False),
        sa.Column("worker_version", sa.String(64), nullable=False),
        sa.Column("worker_host", sa.String(255), nullable=False),
        sa.Column("message_version", sa.SmallInteger(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=True),
        _ts("ingested_at"),
    ]


def _sqlite_upgrade() -> None:
    op.create_table(PARENT, *_sqlite_columns(), sa.PrimaryKeyConstraint("id", name="pk_runs"))
    op.execute(f"INSERT INTO {PARENT} ({COLUMNS}) SELECT {COLUMNS} FROM {LEGACY}")  # noqa: S608
    op.drop_table(LEGACY)
    op.create_index(KEY, PARENT, ["run_id", "scheduled_at"], unique=True)
    for name, columns in INDEXES.items():
        op.create_index(name, PARENT, list(columns))
    op.create_index(
        WITH_ARTIFACTS, PARENT, ["scheduled_at"], sqlite_where=sa.text("artifacts != '[]'")
    )


def _sqlite_downgrade() -> None:
    op.create_table(
        LEGACY,
        *_sqlite_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_check_runs"),
        sa.UniqueConstraint("run_id", name="uq_check_runs_run_id"),
    )
    op.execute(f"INSERT INTO {LEGACY} ({COLUMNS}) SELECT {COLUMNS} FROM {PARENT}")  # noqa: S608
    op.drop_table(PARENT)
    op.create_index("ix_check_runs_check_started", LEGACY, ["check_id", "started_at"])
    op.create_index("ix_check_runs_location_started", LEGACY, ["location", "started_at"])
    op.create_index("ix_check_runs_root", LEGACY, ["root_run_id"])
    op.create_index("ix_check_runs_scheduled", LEGACY, ["scheduled_at"])
