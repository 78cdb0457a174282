"""Rollups: each final run counted once, equal to a recount from check_runs, on both databases."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete

from app.execution.runs import RunResult
from app.ops.stats import percentile
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import store_results
from app.pipeline.rollups import Totals, bucket_of, rebuild, recount, stored
from app.pipeline.schedule import retry_run_id
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS, LATENCY_BOUNDS_MS
from tests.pipeline.test_ingest import NOW, definitions, prepare, result, store

HOUR = timedelta(hours=1)


def mixed_results(count: int, seed: int = 1) -> list[RunResult]:
    """Results of two locations over three days, of every status and many durations."""
    rng = random.Random(seed)
    results = []
    for i in range(count):
        scheduled = NOW - timedelta(minutes=37 * i)
        results.append(
            result(
                rng.choice(["passed", "passed", "degraded", "failed"]),
                scheduled,
                location=("eu-west-1", "us-east-1")[i % 2],
                duration_ms=round(rng.lognormvariate(5, 1.5), 3),
            )
        )
    return results


def comparable(rollup: dict[Any, Totals]) -> dict[Any, dict[str, Any]]:
    # Sums of durations added up in another order differ in their last bits.
    return {
        key: {**t.columns(), "duration_sum_ms": round(t.duration_sum_ms, 6)}
        for key, t in rollup.items()
    }


def assert_rollups_equal_a_recount(Session: Any) -> None:
    with Session() as session:
        assert comparable(stored(session, HOURLY_ROLLUPS)) == comparable(recount(session, "hour"))
        assert comparable(stored(session, DAILY_ROLLUPS)) == comparable(recount(session, "day"))


def test_redeliveries_and_late_results_count_once(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    results = mixed_results(120)
    store(Session, settings, results[:60])
    # Redelivered (some twice in one batch), and the rest arriving late and out of order.
    store(Session, settings, [*results[:10], *results[:10], *results[60:][::-1]])
    store(Session, settings, results[30:90])
    assert_rollups_equal_a_recount(Session)
    with Session() as session:
        total = sum(t.runs for t in stored(session, DAILY_ROLLUPS).values())
    assert total == 120


def test_a_retried_attempt_does_not_count_and_its_retry_does_in_the_scheduled_hour(
    database_url: str,
) -> None:
    settings, Session = prepare(
        database_url, definitions(retry={"strategy": "fixed", "max_retries": 1})
    )
    scheduled = NOW - timedelta(minutes=1)
    first = result("failed", scheduled)
    store(Session, settings, [first])
    retry = result(
        "passed",
        scheduled,
        run_id=retry_run_id(first.run_id, 2),
        attempt=2,
        root_run_id=first.run_id,
        started_at=NOW + timedelta(minutes=2),  # the next hour; counted in the first
    )
    store(Session, settings, [retry], now=NOW + timedelta(minutes=3))
    with Session() as session:
        (hour,) = stored(session, HOURLY_ROLLUPS).items()
    assert hour[0][2] == scheduled.replace(minute=0)
    assert (hour[1].passed, hour[1].failed) == (1, 0)
    assert_rollups_equal_a_recount(Session)


def test_two_concurrent_ingest_passes_count_each_run_once(postgres_url: str) -> None:
    settings, Session = prepare(postgres_url, definitions())
    results = mixed_results(200, seed=2)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def ingest(batches: list[list[RunResult]]) -> None:
        try:
            barrier.wait(timeout=10)
            for batch in batches:
                with Session.begin() as session:
                    store_results(session, batch, settings, CheckCache(), now=NOW)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    # Both get every result, in batches that overlap differently: as after redeliveries.
    one = [results[i : i + 25] for i in range(0, 200, 25)]
    two = [results[i : i + 40][::-1] for i in range(0, 200, 40)][::-1]
    threads = [threading.Thread(target=ingest, args=(batches,)) for batches in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert_rollups_equal_a_recount(Session)
    with Session() as session:
        assert sum(t.runs for t in stored(session, HOURLY_ROLLUPS).values()) == 200


def test_rebuild_counts_runs_that_a_release_without_rollups_stored(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    results = mixed_results(100, seed=3)
    store(Session, settings, results)
    with Session.begin() as session:  # as if the release before 0004 had stored them
        session.execute(delete(HOURLY_ROLLUPS))
        session.execute(delete(DAILY_ROLLUPS))
    store(Session, settings, mixed_results(10, seed=4))
    with Session.begin() as session:
        rebuild(session, min(r.scheduled_at for r in results))
    assert_rollups_equal_a_recount(Session)
    with Session.begin() as session:  # a second rebuild, from the middle: the same again
        rebuild(session, NOW - timedelta(hours=20, minutes=17))
    assert_rollups_equal_a_recount(Session)


def test_percentiles_from_the_histogram_are_within_one_bucket_of_the_exact_ones() -> None:
    rng = random.Random(5)
    for spread in (0.3, 1.0, 2.5):
        durations = [rng.lognormvariate(5, spread) for _ in range(2000)]
        totals = Totals()
        for duration in durations:
            totals.add_run("passed", duration)
        ordered = sorted(durations)
        for fraction in (0.5, 0.95, 0.99):
            estimate = totals.percentile(fraction)
            assert estimate is not None
            exact = percentile(ordered, fraction)
            assert abs(bucket_of(estimate) - bucket_of(exact)) <= 1, (spread, fraction)
            assert min(durations) <= estimate <= max(durations)


@pytest.mark.parametrize(
    ("duration", "bucket"), [(0.0, 0), (10.0, 0), (10.01, 1), (60000.0, 23), (90000.0, 24)]
)
def test_a_bucket_holds_durations_up_to_its_bound(duration: float, bucket: int) -> None:
    assert bucket_of(duration) == bucket
    assert len(LATENCY_BOUNDS_MS) == 24


def test_no_runs_no_percentile() -> None:
    assert Totals().percentile(0.5) is None and Totals().uptime is None


def test_times_bucket_in_utc() -> None:
    from app.pipeline.rollups import day_start, hour_start

    moment = datetime(2026, 3, 1, 0, 30, tzinfo=UTC).astimezone()
    assert hour_start(moment) == datetime(2026, 3, 1, 0, tzinfo=UTC)
    assert day_start(moment + HOUR) == datetime(2026, 3, 1, tzinfo=UTC)
