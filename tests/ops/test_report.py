"""Reports: from the rollups to the hour boundary, and from raw runs in the current hour."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete

from app.execution.runs import RunResult
from app.ops.report import report, spans, uptimes
from app.ops.stats import percentile
from app.pipeline.rollups import bucket_of, hour_start
from app.storage.models import HOURLY_ROLLUPS
from tests.pipeline.test_ingest import NOW, definitions, prepare, result, store
from tests.pipeline.test_rollups import mixed_results

LATER = NOW + timedelta(minutes=30)  # "now" for the reports: half of the hour gone


def stored_history(database_url: str) -> tuple[Any, list[RunResult]]:
    """Three days of results, and some in the current hour; their rollup of the current
    hour removed, so that a report counts them only if it reads the raw runs."""
    settings, Session = prepare(database_url, definitions())
    results = mixed_results(120)
    current = [
        result("failed" if i % 3 else "passed", NOW + timedelta(minutes=i), duration_ms=40.0 + i)
        for i in range(1, 20)
    ]
    store(Session, settings, results + current, now=LATER)
    with Session.begin() as session:
        session.execute(delete(HOURLY_ROLLUPS).where(HOURLY_ROLLUPS.c.bucket_start >= NOW))
    return Session, results + current


def expected(results: list[RunResult], since: timedelta, key: str) -> dict[str, Counter[str]]:
    start = hour_start(LATER - since)
    counts: dict[str, Counter[str]] = {}
    for r in results:
        if r.scheduled_at >= start:
            counts.setdefault(getattr(r, key), Counter())[r.status] += 1
    return counts


@pytest.mark.parametrize("since", [timedelta(minutes=10), timedelta(hours=5), timedelta(days=2)])
def test_a_report_counts_exactly_the_runs_from_its_hour_boundary(
    database_url: str, since: timedelta
) -> None:
    Session, results = stored_history(database_url)
    with Session() as session:
        by_check = report(session, since, "check", now=LATER)
        by_location = report(session, since, "location", now=LATER)
        one = report(session, since, "check", check_id="api", now=LATER)
        none = report(session, since, "check", check_id="other", now=LATER)
    assert by_check.start == hour_start(LATER - since)
    for found, key in ((by_check, "check_id"), (by_location, "location")):
        assert {
            line.key: Counter(passed=line.passed, degraded=line.degraded, failed=line.failed)
            for line in found.lines
        } == expected(results, since, key)
    assert one.lines == by_check.lines and none.lines == []
    (line,) = by_check.lines
    assert line.uptime_pct == pytest.approx(100 * (line.passed + line.degraded) / line.runs)


def test_percentiles_of_a_report_are_within_one_bucket_of_the_exact_ones(
    database_url: str,
) -> None:
    Session, results = stored_history(database_url)
    with Session() as session:
        (line,) = report(session, timedelta(days=30), now=LATER).lines
    durations = sorted(r.duration_ms for r in results)
    for fraction, value in ((0.5, line.p50_ms), (0.95, line.p95_ms), (0.99, line.p99_ms)):
        assert value is not None
        assert abs(bucket_of(value) - bucket_of(percentile(durations, fraction))) <= 1


def test_uptime_over_24_hours_7_and_30_days(database_url: str) -> None:
    Session, results = stored_history(database_url)
    with Session() as session:
        found = uptimes(session, now=LATER)
    day = [r for r in results if r.scheduled_at >= hour_start(LATER - timedelta(hours=24))]
    up = sum(r.status != "failed" for r in day)
    assert set(found) == {"api"}
    assert found["api"]["24h"] == pytest.approx(100 * up / len(day), abs=1e-4)
    all_up = sum(r.status != "failed" for r in results)
    assert found["api"]["7d"] == found["api"]["30d"]
    assert found["api"]["30d"] == pytest.approx(100 * all_up / len(results), abs=1e-4)


def test_whole_days_come_from_the_daily_rollup_and_the_hours_around_them_from_the_hourly() -> None:
    start = hour_start(NOW - timedelta(days=3, hours=5))
    parts = [(s.table.name, s.start, s.end) for s in spans(start, hour_start(LATER))]
    first_day = start.replace(hour=0) + timedelta(days=1)
    assert parts == [
        ("check_rollups_hourly", start, first_day),
        ("check_rollups_daily", first_day, NOW.replace(hour=0)),
        ("check_rollups_hourly", NOW.replace(hour=0), NOW),
    ]
    assert [s.table.name for s in spans(NOW - timedelta(hours=3), NOW)] == ["check_rollups_hourly"]
