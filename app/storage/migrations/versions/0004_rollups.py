"""Expand: check_rollups_hourly and check_rollups_daily, the history of every check, and
an index on check_runs.scheduled_at, by which retention finds what has expired.

Expand only: two new tables and an index. On Postgres the index is built CONCURRENTLY,
so the release before keeps inserting runs while it is built, however large the table.
The release before never reads or writes the new tables and keeps
writing check_runs as it did; this release adds each final run it stores to both in the
same transaction. The runs that the release before stores during the roll (and every
run stored before this migration) are counted afterwards by ``synmon rollups --rebuild
--since ...``, which recounts them from check_runs (see app/pipeline/rollups.py).

The histogram bounds are written out here rather than imported, so that this migration
creates the same columns whatever app/ says later.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BOUNDS_MS = [10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700]
BOUNDS_MS += [1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000, 20000, 30000, 50000, 60000]
HISTOGRAM = [f"ms_le_{bound}" for bound in BOUNDS_MS] + ["ms_gt_60000"]
TABLES = ("check_rollups_hourly", "check_rollups_daily")
RUNS_SCHEDULED = "ix_check_runs_scheduled"


def upgrade() -> None:
    for name in TABLES:
        op.create_table(
            name,
            sa.Column("check_id", sa.String(64), nullable=False),
            sa.Column("location", sa.String(40), nullable=False),
            sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
            *(
                sa.Column(count, sa.Integer(), nullable=False)
                for count in ["passed", "degraded", "failed", *HISTOGRAM]
            ),
            sa.Column("duration_sum_ms", sa.Float(), nullable=False),
            sa.Column("duration_min_ms", sa.Float(), nullable=False),
            sa.Column("duration_max_ms", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("check_id", "location", "bucket_start", name=f"pk_{name}"),
        )

    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                RUNS_SCHEDULED, "check_runs", ["scheduled_at"], postgresql_concurrently=True
            )
    else:
        op.create_index(RUNS_SCHEDULED, "check_runs", ["scheduled_at"])


def downgrade() -> None:
    op.drop_index(RUNS_SCHEDULED, table_name="check_runs")
    for name in TABLES:
        op.drop_table(name)
