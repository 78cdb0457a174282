"""Faults inside an ingest transaction, after the rollups were added: the transaction is
undone, the batch is stored again, and the rollups still equal a recount from raw runs
(each result counted once), with the states and the stored rows as without the fault."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app.pipeline import ingest
from app.pipeline.ingest import Ingestor
from app.pipeline.retention import maintain_partitions, partitions
from app.pipeline.rollups import stored
from app.storage.models import HOURLY_ROLLUPS, CheckRunRow
from tests.pipeline.test_ingest import definitions, prepare, result
from tests.pipeline.test_rollups import assert_rollups_equal_a_recount, mixed_results


class DatabaseGone:
    """``_move_states`` that fails like a lost connection the first ``times`` calls,
    after the batch's runs and rollups were written in its transaction."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.real = ingest._move_states

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.times:
            self.times -= 1
            raise OperationalError("UPDATE ...", {}, Exception("server closed the connection"))
        return self.real(*args, **kwargs)


def run_count(Session: Any) -> int:
    with Session() as session:
        return int(session.scalar(select(func.count()).select_from(CheckRunRow)))


def test_a_database_fault_after_the_rollups_counts_nothing_twice(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, Session = prepare(database_url, definitions())
    results = mixed_results(60, seed=7)
    ingestor = Ingestor(settings, Session)
    monkeypatch.setattr(ingest, "_move_states", DatabaseGone(times=2))
    report, refused = ingestor._store(results[:30])  # waits out the fault, then stores
    assert refused == {} and report.inserted == 30
    # A redelivery of half of them beside the rest, with one more fault on the way.
    monkeypatch.setattr(ingest, "_move_states", DatabaseGone(times=1))
    report, refused = ingestor._store(results[15:])
    assert (report.inserted, report.duplicates) == (30, 15)
    assert run_count(Session) == 60
    assert_rollups_equal_a_recount(Session)
    with Session() as session:
        assert sum(t.runs for t in stored(session, HOURLY_ROLLUPS).values()) == 60


def test_rows_moved_out_of_the_default_partition_stay_counted_once(postgres_url: str) -> None:
    settings, Session = prepare(postgres_url, definitions())
    with Session.begin() as session:
        bound = partitions(session)[0].upper
    assert bound is not None
    ahead = [result("failed", bound + timedelta(days=9, minutes=i)) for i in range(5)]
    ingestor = Ingestor(settings, Session)
    assert ingestor._store(ahead)[0].inserted == 5  # into the default partition
    maintain_partitions(Session, bound + 7 * timedelta(days=1))  # moved into their day's
    assert ingestor._store(ahead)[0].duplicates == 5
    assert run_count(Session) == 5
    assert_rollups_equal_a_recount(Session)
