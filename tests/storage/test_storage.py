"""The schema: migrations match the models, and both databases behave the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from app.storage.db import (
    alembic_config,
    current_revision,
    downgrade,
    engine_for,
    include_name,
    migrate,
    sessions,
)
from app.storage.models import Base, CheckRunRow
from tests.support.results import stored_run


def test_migrations_produce_exactly_the_models(database_url: str) -> None:
    with engine_for(database_url).connect() as connection:
        # Partitions of runs are left out (see partition_names); test_partitions checks them.
        opts = {"compare_type": True, "include_name": include_name(connection)}
        context = MigrationContext.configure(connection, opts=opts)
        assert compare_metadata(context, Base.metadata) == []


def test_the_migrations_have_one_head() -> None:
    # Two heads (two migrations naming the same parent) make `synmon migrate` fail.
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads


def test_migrate_is_idempotent_and_reversible(database_url: str) -> None:
    head = current_revision(database_url)
    migrate(database_url)
    assert current_revision(database_url) == head
    downgrade(database_url, "base")
    assert "runs" not in inspect(engine_for(database_url)).get_table_names()
    migrate(database_url)
    assert current_revision(database_url) == head


def test_run_ids_are_unique(database_url: str) -> None:
    """A run id comes with one scheduled_at, so (run_id, scheduled_at) is the key."""
    Session = sessions(database_url)
    row = stored_run()
    with Session.begin() as session:
        session.add(row)
    with pytest.raises(IntegrityError), Session.begin() as session:
        session.add(stored_run(run_id=row.run_id, scheduled_at=row.scheduled_at))


def test_times_come_back_aware_and_in_utc(database_url: str) -> None:
    local = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
    Session = sessions(database_url)
    with Session.begin() as session:
        session.add(stored_run(started_at=local))
    with Session() as session:
        stored = session.scalars(select(CheckRunRow.started_at)).one()
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == local


def test_naive_times_are_refused(database_url: str) -> None:
    with pytest.raises(Exception, match="naive"), sessions(database_url).begin() as session:
        session.add(stored_run(started_at=datetime(2026, 1, 1)))


def test_latest_runs_of_a_check_use_the_index(postgres_url: str) -> None:
    Session = sessions(postgres_url)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with Session.begin() as session:
        session.add_all(
            stored_run(
                check_id=f"c{i % 50}",
                location=("eu-west-1", "us-east-1")[i % 2],
                started_at=base + timedelta(seconds=i),
            )
            for i in range(5000)
        )
    with engine_for(postgres_url).connect() as connection:
        connection.exec_driver_sql("ANALYZE runs")
        plan = "\n".join(
            r[0]
            for r in connection.exec_driver_sql(
                "EXPLAIN SELECT * FROM runs WHERE check_id='c7' ORDER BY started_at DESC LIMIT 20"
            )
        )
        assert "check_id_started_at_idx" in plan or "ix_check_runs_check_started" in plan, plan
        plan = "\n".join(
            r[0]
            for r in connection.exec_driver_sql(
                "EXPLAIN SELECT count(*) FROM runs WHERE location='eu-west-1' "
                "AND started_at > '2026-01-01 01:20:00+00'"
            )
        )
        assert "location_started_at_idx" in plan or "ix_check_runs_location_started" in plan, plan
