"""The initial schema: checks, check runs, channels, check state, outboxes.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "checks",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("frequency_s", sa.Float(), nullable=False),
        sa.Column("locations", JSON, nullable=False),
        sa.Column("run_mode", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        ts("next_run_at"),
        sa.Column("rr_cursor", sa.Integer(), nullable=False),
        sa.Column("source_file", sa.String(500), nullable=True),
        ts("created_at"),
        ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_checks"),
    )
    op.create_index("ix_checks_due", "checks", ["enabled", "next_run_at"])

    op.create_table(
        "check_runs",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("location", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.Column("deliveries", sa.SmallInteger(), nullable=False),
        sa.Column("root_run_id", sa.Uuid(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        ts("scheduled_at"),
        ts("started_at"),
        ts("finished_at"),
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
        ts("ingested_at"),
        sa.PrimaryKeyConstraint("id", name="pk_check_runs"),
        sa.UniqueConstraint("run_id", name="uq_check_runs_run_id"),
    )
    op.create_index("ix_check_runs_check_started", "check_runs", ["check_id", "started_at"])
    op.create_index("ix_check_runs_location_started", "check_runs", ["location", "started_at"])
    op.create_index("ix_check_runs_root", "check_runs", ["root_run_id"])

    op.create_table(
        "channels",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("config", JSON, nullable=False),
        ts("created_at"),
        ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_channels"),
    )

    op.create_table(
        "check_state",
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_run_id", sa.Uuid(), nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        ts("last_run_at", nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("alerting", sa.Boolean(), nullable=False),
        ts("updated_at"),
        sa.PrimaryKeyConstraint("check_id", name="pk_check_state"),
    )

    op.create_table(
        "notifications",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        ts("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        ts("created_at"),
        ts("sent_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint(
            "run_id", "channel_id", "event", name="uq_notifications_run_id_channel_id_event"
        ),
    )
    op.create_index("ix_notifications_pending", "notifications", ["status", "next_attempt_at"])

    op.create_table(
        "run_outbox",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("body", JSON, nullable=False),
        ts("not_before"),
        ts("created_at"),
        ts("sent_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_run_outbox"),
        sa.UniqueConstraint("run_id", name="uq_run_outbox_run_id"),
    )
    op.create_index("ix_run_outbox_unsent", "run_outbox", ["sent_at"])


def downgrade() -> None:
    for table in ("run_outbox", "notifications", "check_state", "channels", "check_runs", "checks"):
        op.drop_table(table)
