"""Expand: check_location_state, one state per (check, location).

Expand only: a new table. The release before never reads or writes it and keeps writing
check_state as it did; this release derives check_state from the location states. A
location whose state row does not exist yet starts from its check's state (see
app/state_store.py), so an alert that the release before opened stays open.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "check_location_state",
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("location", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_run_id", sa.Uuid(), nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("check_id", "location", name="pk_check_location_state"),
    )


def downgrade() -> None:
    op.drop_table("check_location_state")
