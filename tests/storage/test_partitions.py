"""runs partitioned by scheduled_at on Postgres (migration 0007): the release before keeps
writing during the roll, rows stored before stay readable, partitions are created ahead
and dropped whole with their artifacts, and each run is stored once wherever it lands."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select, text

from app.execution.artifacts import FolderStore
from app.execution.runs import RunResult
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import run_row, store_results
from app.pipeline.retention import (
    LATE_DAYS,
    Partition,
    maintain_partitions,
    partitions,
    plan,
    prune,
)
from app.pipeline.rollups import recount, stored
from app.storage.bulk import insert_ignoring_conflicts, table_of
from app.storage.db import current_revision, downgrade, engine_for, migrate, sessions
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS, CheckRunRow
from tests.support.databases import database
from tests.support.results import run_result
from tests.support.settings import make_settings

DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgres"])
def before_0007(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at the schema of the release before 0007."""
    with database(request.param, tmp_path, migrated=False) as url:
        migrate(url, "0006")
        yield url


@pytest.fixture
def pg_before_0007(tmp_path: Path) -> Iterator[str]:
    with database("postgres", tmp_path, migrated=False) as url:
        migrate(url, "0006")
        yield url


# The table as the release before declared it: the same columns, named check_runs.
RELEASE_BEFORE = table_of(CheckRunRow).to_metadata(sa.MetaData(), name="check_runs")


def insert_like_the_release_before(url: str, result: RunResult) -> set[str]:
    """The release before's insert, as its ingest makes it: into check_runs, skipping a
    run id stored already (ON CONFLICT (run_id)); the run ids it took for duplicates."""
    old = RELEASE_BEFORE
    row = run_row(result, True, datetime.now(UTC))
    with sessions(url).begin() as session:
        return insert_ignoring_conflicts(session, old, [row], ["run_id"], report_skipped="run_id")


def store_like_this_release(url: str, results: list[RunResult]) -> Any:
    with sessions(url).begin() as session:
        return store_results(session, results, make_settings(), CheckCache())


def stored_runs(url: str) -> dict[uuid.UUID, int]:
    """How many rows each run id has, read through runs."""
    with sessions(url)() as session:
        query = select(CheckRunRow.run_id, func.count()).group_by(CheckRunRow.run_id)
        return {run_id: count for run_id, count in session.execute(query)}


def where_stored(url: str) -> dict[uuid.UUID, str]:
    with engine_for(url).connect() as connection:
        rows = connection.execute(text("SELECT run_id, tableoid::regclass::text FROM runs"))
        return {uuid.UUID(str(run_id)): name for run_id, name in rows}


def test_rows_stored_before_0007_stay_readable(before_0007: str) -> None:
    before = [run_result(check_id=f"c{i}", started_at=datetime.now(UTC)) for i in range(5)]
    for result in before:
        assert insert_like_the_release_before(before_0007, result) == set()
    migrate(before_0007)
    assert current_revision(before_0007) not in (None, "0006")
    assert stored_runs(before_0007) == {r.run_id: 1 for r in before}
    with sessions(before_0007)() as session:
        rows = {r.run_id: r for r in session.scalars(select(CheckRunRow))}
        # Rollups rebuilt from raw runs read the rows of before too.
        assert recount(session, "hour") and recount(session, "day")
    assert {r.check_id for r in rows.values()} == {f"c{i}" for i in range(5)}
    # Stored once more (a late redelivery) through this release: recognised.
    report = store_like_this_release(before_0007, [before[0]])
    assert (report.inserted, report.duplicates) == (0, 1)
    # A rollback keeps every row, those this release stored included.
    new = run_result(check_id="new")
    store_like_this_release(before_0007, [new])
    downgrade(before_0007, "0006")
    with engine_for(before_0007).connect() as connection:
        run_ids = set(connection.execute(select(RELEASE_BEFORE.c.run_id)).scalars())
    assert run_ids == {r.run_id for r in [*before, new]}


def test_the_release_before_keeps_writing_during_the_roll(pg_before_0007: str) -> None:
    url = pg_before_0007
    existing = run_result(check_id="existing")
    insert_like_the_release_before(url, existing)
    migrate(url)

    # The release before stores a result; its redelivery reaches this release.
    by_old = run_result(check_id="old-first", status="failed")
    assert insert_like_the_release_before(url, by_old) == set()
    report = store_like_this_release(url, [by_old])
    assert (report.inserted, report.duplicates) == (0, 1)
    # This release stores a result; its redelivery reaches the release before, which
    # takes it for the duplicate it is (and so moves no state of its own with it).
    by_new = run_result(check_id="new-first")
    assert store_like_this_release(url, [by_new]).inserted == 1
    assert insert_like_the_release_before(url, by_new) == {str(by_new.run_id)}
    # And each release recognises its own redeliveries.
    assert insert_like_the_release_before(url, by_old) == {str(by_old.run_id)}
    assert store_like_this_release(url, [by_new]).duplicates == 1

    assert stored_runs(url) == {r.run_id: 1 for r in (existing, by_old, by_new)}
    # All scheduled before the legacy partition's bound: where both releases see them.
    assert set(where_stored(url).values()) == {"check_runs"}
    with sessions(url)() as session:
        # This release's rollups count what it stored; a rebuild counts the rest.
        assert stored(session, HOURLY_ROLLUPS).keys() <= recount(session, "hour").keys()


def layout(url: str) -> list[Partition]:
    with sessions(url).begin() as session:
        return partitions(session)


def test_partitions_ahead_default_and_moved_rows(postgres_url: str) -> None:
    legacy, default = layout(postgres_url)
    assert (legacy.name, legacy.lower, default.name) == ("check_runs", None, "runs_default")
    assert legacy.upper is not None and default.default
    bound = legacy.upper

    # A result scheduled beyond every partition lands in the default partition.
    far = run_result(check_id="far", scheduled_at=bound + 5 * DAY, started_at=bound + 5 * DAY)
    assert store_like_this_release(postgres_url, [far]).inserted == 1
    assert where_stored(postgres_url)[far.run_id] == "runs_default"

    Session = sessions(postgres_url)
    created = maintain_partitions(Session, bound + 2 * DAY)
    days = [f"runs_p{bound + i * DAY:%Y%m%d}" for i in range(6)]
    assert created == days  # up to AHEAD_DAYS after the day of "now", from the bound on
    # ... and the default partition's row moved into its day's partition.
    assert where_stored(postgres_url)[far.run_id] == days[5]
    assert maintain_partitions(Session, bound + 2 * DAY) == []  # nothing twice

    # A redelivery of it is recognised in its new place; a late result finds its day.
    assert store_like_this_release(postgres_url, [far]).duplicates == 1
    late = run_result(check_id="late", scheduled_at=bound + DAY, started_at=bound + DAY)
    assert store_like_this_release(postgres_url, [late]).inserted == 1
    assert where_stored(postgres_url)[late.run_id] == days[1]
    assert stored_runs(postgres_url) == {far.run_id: 1, late.run_id: 1}
    with Session() as session:
        assert stored(session, HOURLY_ROLLUPS) == recount(session, "hour")
        assert stored(session, DAILY_ROLLUPS) == recount(session, "day")

    # The partitions hold the parent's indexes (the comparison with the models leaves
    # partitions out: this is what it would have to check).
    with engine_for(postgres_url).connect() as connection:
        indexes = connection.execute(
            text("SELECT count(*) FROM pg_indexes WHERE tablename = :t"), {"t": days[5]}
        ).scalar()
        parent = connection.execute(
            text("SELECT count(*) FROM pg_indexes WHERE tablename = 'runs'")
        ).scalar()
    assert indexes == parent == 6


def test_expired_partitions_are_dropped_whole_with_their_artifacts(
    postgres_url: str, tmp_path: Path
) -> None:
    Session = sessions(postgres_url)
    legacy, _ = layout(postgres_url)
    assert legacy.upper is not None
    bound = legacy.upper
    maintain_partitions(Session, bound + 3 * DAY)
    folder = FolderStore(tmp_path / "artifacts")

    def at(moment: datetime, name: str) -> RunResult:
        run = run_result(check_id=name, scheduled_at=moment, started_at=moment)
        key = f"{name}/{run.run_id}/00-shot.png"
        url = folder.put(key, b"png", "image/png")
        run.artifacts.append({"name": "shot", "key": key, "url": url, "content_type": "png"})
        return run

    in_legacy = at(bound - DAY, "legacy")
    first_day = [at(bound + timedelta(hours=h), f"day0-{h}") for h in (1, 23)]
    second_day = at(bound + DAY + timedelta(hours=2), "day1")
    store_like_this_release(postgres_url, [in_legacy, *first_day, second_day])

    # 30 days of retention (the default): the cutoff falls inside the second day.
    settings = make_settings()
    now = bound + DAY + timedelta(hours=5) + settings.runs_retention
    with Session() as session:
        planned = plan(session, settings, now)
    assert (planned.runs, planned.artifacts, planned.partitions) == (3, 3, 2)
    done = prune(Session, settings, folder, now)
    assert done == planned
    names = [p.name for p in layout(postgres_url)]
    assert "check_runs" not in names and f"runs_p{bound:%Y%m%d}" not in names
    # The day the cutoff falls in stays whole until all of it has expired.
    assert stored_runs(postgres_url) == {second_day.run_id: 1}
    left = [p.relative_to(folder.root) for p in folder.root.rglob("*") if p.is_file()]
    assert left == [Path(second_day.artifacts[0]["key"])]
    with Session() as session:
        assert plan(session, settings, now) == type(planned)()
    # The sequence of ids outlived the legacy table it came with.
    assert store_like_this_release(postgres_url, [run_result(check_id="after")]).inserted == 1


def test_two_maintenance_passes_at_once_create_each_partition_once(postgres_url: str) -> None:
    legacy, _ = layout(postgres_url)
    assert legacy.upper is not None
    later = legacy.upper + 20 * DAY
    Session = sessions(postgres_url)
    created: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run_pass() -> None:
        try:
            barrier.wait(timeout=10)
            created.append(maintain_partitions(Session, later))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    made = sorted(name for names in created for name in names)
    assert len(made) == len(set(made)) > 0
    # The pass that found the other at work left it alone; the next one has nothing to do.
    days = [p for p in layout(postgres_url) if p.daily]
    assert [p.name for p in days] == made
    assert maintain_partitions(Session, later) == []
    # A gap of more than LATE_DAYS is not filled back to the bound: those days would only
    # ever receive results older than SQS keeps a message.
    assert days[0].lower == later - LATE_DAYS * DAY


def test_rollup_pages_keep_room_for_updates(postgres_url: str) -> None:
    """Each run updates its check's hourly and daily row: with room on the page the update
    is HOT and stays off the indexes (what it saves is measured by bench/ingest.py; a
    table this small has room on its pages whatever their fillfactor)."""
    with engine_for(postgres_url).connect() as connection:
        options = dict(
            connection.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class "
                    "WHERE relname IN ('check_rollups_hourly', 'check_rollups_daily')"
                )
            ).all()
        )
    assert options == {
        "check_rollups_hourly": ["fillfactor=50"],
        "check_rollups_daily": ["fillfactor=50"],
    }


def test_a_rollback_brings_every_partition_back_into_check_runs(postgres_url: str) -> None:
    legacy, _ = layout(postgres_url)
    assert legacy.upper is not None
    maintain_partitions(sessions(postgres_url), legacy.upper)
    spread = [
        run_result(check_id="legacy"),
        run_result(check_id="daily", scheduled_at=legacy.upper + DAY),
        run_result(check_id="default", scheduled_at=legacy.upper + 30 * DAY),
    ]
    store_like_this_release(postgres_url, spread)
    assert sorted(where_stored(postgres_url).values()) == sorted(
        ["check_runs", f"runs_p{legacy.upper + DAY:%Y%m%d}", "runs_default"]
    )
    downgrade(postgres_url, "0006")
    with engine_for(postgres_url).connect() as connection:
        run_ids = set(connection.execute(select(RELEASE_BEFORE.c.run_id)).scalars())
    assert run_ids == {r.run_id for r in spread}
    migrate(postgres_url)  # and forward again, the rows going back into the legacy range
    assert stored_runs(postgres_url) == {r.run_id: 1 for r in spread}
