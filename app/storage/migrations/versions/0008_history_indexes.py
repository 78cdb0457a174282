"""Expand: an index on bucket_start of each rollup, for questions about every check.

A report, an uptime or a retention pass asks for the rows of some hours or days of
every check; the rollups' key (check_id, location, bucket_start) finds those only by
walking all of it: at 10,000 checks x 90 days, 21.6 million hourly rows, seconds a
question (measured by bench/history.py: a 30-day report went from 12 s to under one).

Expand only: two indexes. On Postgres they are built CONCURRENTLY, so ingest keeps
adding to the rollups while they are built, however large the tables; the release
before neither needs nor minds them. A concurrent build that fails leaves an invalid
index behind, so the upgrade drops an index of that name (valid or not) and builds it
again: running it a second time costs one more build, nothing else.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_check_rollups_hourly_bucket_start": "check_rollups_hourly",
    "ix_check_rollups_daily_bucket_start": "check_rollups_daily",
}


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, table in INDEXES.items():
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                op.create_index(name, table, ["bucket_start"], postgresql_concurrently=True)
    else:
        for name, table in INDEXES.items():
            op.create_index(name, table, ["bucket_start"])


def downgrade() -> None:
    for name, table in INDEXES.items():
        op.drop_index(name, table_name=table)
