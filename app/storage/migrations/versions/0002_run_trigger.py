"""Expand: check_runs.trigger (schedule, manual, retry), carried by version 2 results.

Expand-then-contract: this migration only adds a nullable column, so the release before
it keeps inserting rows (without the column) against the new schema, and version 1
results (which do not carry a trigger) are stored with NULL. The contract step, which
would backfill and make the column NOT NULL, belongs to a release after every producer
writes version 2; it is not part of this one.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("check_runs") as batch:
        batch.add_column(sa.Column("trigger", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("check_runs") as batch:
        batch.drop_column("trigger")
