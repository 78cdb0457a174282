"""A rolling update onto 0004: runs that the release before stores count after a rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import store_results
from app.pipeline.rollups import rebuild, stored
from app.storage.db import migrate, sessions
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS
from tests.pipeline.test_rollups import assert_rollups_equal_a_recount
from tests.pipeline.test_versions import insert_like_the_old_release
from tests.support.databases import database
from tests.support.results import run_result
from tests.support.settings import make_settings


@pytest.fixture(params=["sqlite", "postgres"])
def schema_before_rollups(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path, migrated=False) as url:
        migrate(url, "0003")
        yield url


def test_runs_of_the_release_before_count_once_rebuilt(schema_before_rollups: str) -> None:
    url = schema_before_rollups
    insert_like_the_old_release(url)  # stored before the migration
    migrate(url, "0006")  # the roll onto 0004 (and the expand-only steps after it)
    insert_like_the_old_release(url)  # old code, new schema: during the roll
    migrate(url)  # and on, onto 0007 (runs), where this release's ingest writes
    Session = sessions(url)
    now = datetime.now(UTC)
    with Session.begin() as session:
        new = run_result(check_id="new", scheduled_at=now - timedelta(minutes=1))
        store_results(session, [new], make_settings(), CheckCache())
    with Session() as session:
        assert {key[0] for key in stored(session, HOURLY_ROLLUPS)} == {"new"}
    with Session.begin() as session:
        rebuild(session, now - timedelta(hours=2))
    assert_rollups_equal_a_recount(Session)
    with Session() as session:
        runs = {key[0]: totals.runs for key, totals in stored(session, DAILY_ROLLUPS).items()}
    assert runs == {"old": 2, "new": 1}
