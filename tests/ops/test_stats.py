"""``synmon stats``: counts and percentiles from known runs, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.ops.stats import percentile, run_stats
from app.storage.db import sessions
from tests.support.processes import Synmon
from tests.support.results import stored_run


def add_runs(
    database_url: str,
    location: str,
    check_id: str,
    durations: list[float],
    status: str,
    age: timedelta = timedelta(minutes=1),
) -> None:
    with sessions(database_url).begin() as session:
        for duration in durations:
            started = datetime.now(UTC) - age
            session.add(
                stored_run(
                    check_id=check_id,
                    location=location,
                    status=status,
                    scheduled_at=started,
                    started_at=started,
                    finished_at=started,
                    duration_ms=duration,
                )
            )


def test_percentiles_interpolate_like_postgres() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([], 0.5) == 0.0 and percentile([7.0], 0.99) == 7.0


def test_stats_by_location_and_by_check(database_url: str) -> None:
    add_runs(database_url, "eu-west-1", "a", [float(v) for v in range(1, 101)], "passed")
    add_runs(database_url, "eu-west-1", "b", [500.0] * 10, "failed")
    add_runs(database_url, "us-east-1", "a", [200.0, 400.0], "degraded")
    add_runs(
        database_url, "us-east-1", "a", [9999.0], "passed", age=timedelta(hours=2)
    )  # outside the window
    with sessions(database_url)() as session:
        by_location = {s.key: s for s in run_stats(session, timedelta(minutes=10), "location")}
        by_check = {s.key: s for s in run_stats(session, timedelta(minutes=10), "check")}
    eu, us = by_location["eu-west-1"], by_location["us-east-1"]
    assert (eu.runs, eu.passed, eu.failed, eu.degraded) == (110, 100, 10, 0)
    assert eu.success_ratio == pytest.approx(100 / 110)
    # 1..100 and ten 500s, sorted: the 55th/56th values straddle the median.
    expected = sorted([float(v) for v in range(1, 101)] + [500.0] * 10)
    for field, fraction in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        assert getattr(eu, field) == pytest.approx(round(percentile(expected, fraction), 1))
    assert (us.runs, us.degraded, us.p50_ms) == (2, 2, 300.0)
    assert us.success_ratio == 1.0
    assert by_check["a"].runs == 102 and by_check["b"].failed == 10


@pytest.mark.processes
def test_synmon_stats_command(postgres_url: str, tmp_path: object) -> None:
    add_runs(postgres_url, "eu-west-1", "a", [100.0, 200.0, 300.0], "passed")
    synmon = Synmon({"SYNMON_DATABASE_URL": postgres_url, "SYNMON_ENV": "test"}, tmp_path)  # type: ignore[arg-type]
    rows = json.loads(synmon.command("stats", "--since", "10m", "--json").stdout)
    assert rows == [
        {
            "key": "eu-west-1",
            "runs": 3,
            "passed": 3,
            "degraded": 0,
            "failed": 0,
            "p50_ms": 200.0,
            "p95_ms": 290.0,
            "p99_ms": 298.0,
            "success_ratio": 1.0,
        }
    ]
    table = synmon.command("stats", "--by", "check").stdout
    assert table.splitlines()[1].split()[:2] == ["a", "3"]
