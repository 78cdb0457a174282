"""Reports: from the rollups to the hour boundary, and from raw runs in the current hour;
each number recounted here from the results stored."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, insert, select

from app.execution.runs import RunResult
from app.ops.report import (
    chart,
    incident_counts,
    percentiles,
    report,
    spans,
    totals,
    uptimes,
    window_spans,
)
from app.ops.stats import percentile
from app.pipeline.rollups import (
    VALUES,
    Totals,
    bucket_of,
    day_start,
    hour_start,
    totals_of_rollups,
    truncated,
)
from app.storage.db import engine_for
from app.storage.incidents import IncidentRow
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS, ROLLUP_KEY
from tests.pipeline.test_ingest import NOW, definitions, prepare, result, rows, store
from tests.pipeline.test_rollups import mixed_results

LATER = NOW + timedelta(minutes=30)  # "now" for the reports: half of the hour gone
WINDOWS = [
    timedelta(minutes=10),  # the current hour alone
    timedelta(hours=5),  # today's hours themselves
    timedelta(hours=11, minutes=30),  # today's row less the hours before the window
    timedelta(hours=20),  # yesterday's last hours added, then today
    timedelta(days=2),  # the first day's hours added
    timedelta(days=2, hours=9),  # the first day less its hours before the window
    timedelta(days=30),  # further back than any run
]


def forget_current_hour(Session: Any) -> None:
    """Rollups that have not counted the current hour's runs (as those a release without
    rollups stores during a roll): the current hour's rows gone, today's rows recounted
    from the hours left."""
    today = day_start(NOW)
    with Session.begin() as session:
        session.execute(delete(HOURLY_ROLLUPS).where(HOURLY_ROLLUPS.c.bucket_start >= NOW))
        session.execute(delete(DAILY_ROLLUPS).where(DAILY_ROLLUPS.c.bucket_start >= today))
        hours = HOURLY_ROLLUPS
        day = truncated(session, hours.c.bucket_start, "day")
        recounted = (
            select(hours.c.check_id, hours.c.location, day, *totals_of_rollups(hours))
            .where(hours.c.bucket_start >= today)
            .group_by(hours.c.check_id, hours.c.location, day)
        )
        session.execute(insert(DAILY_ROLLUPS).from_select([*ROLLUP_KEY, *VALUES], recounted))


def stored_history(database_url: str, rolled_current: bool = False) -> tuple[Any, list[RunResult]]:
    """Three days of results of two checks, and some in the current hour; unless
    ``rolled_current``, the rollups have not counted the current hour's, so that a report
    counts them only if it reads the raw runs."""
    settings, Session = prepare(database_url, definitions())
    results = mixed_results(120)
    # A check that synmon's definitions do not know: its results are kept and counted.
    results += [
        result(("passed", "failed")[i % 2], NOW - timedelta(minutes=53 * i), check_id="web")
        for i in range(40)
    ]
    current = [
        result("failed" if i % 3 else "passed", NOW + timedelta(minutes=i), duration_ms=40.0 + i)
        for i in range(1, 20)
    ]
    store(Session, settings, results + current, now=LATER)
    if not rolled_current:
        forget_current_hour(Session)
    return Session, results + current


def expected(results: list[RunResult], start: datetime, key: str) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {}
    for r in results:
        if r.scheduled_at >= start:
            counts.setdefault(getattr(r, key), Counter())[r.status] += 1
    return counts


def test_a_report_counts_exactly_the_runs_from_its_hour_boundary(database_url: str) -> None:
    Session, results = stored_history(database_url)
    for since in WINDOWS:
        with Session() as session:
            by_check = report(session, since, "check", now=LATER)
            by_location = report(session, since, "location", now=LATER)
            one = report(session, since, "check", check_id="api", now=LATER)
            none = report(session, since, "check", check_id="other", now=LATER)
        start = hour_start(LATER - since)
        assert by_check.start == start
        for found, key in ((by_check, "check_id"), (by_location, "location")):
            counted = {
                line.key: Counter(passed=line.passed, degraded=line.degraded, failed=line.failed)
                for line in found.lines
                if line.runs
            }
            assert counted == expected(results, start, key), (since, key)
        assert one.lines == [line for line in by_check.lines if line.key == "api"]
        assert none.lines == []
        for line in by_check.lines:
            assert line.runs == line.passed + line.degraded + line.failed
            assert line.uptime_pct == pytest.approx(100 * (line.passed + line.degraded) / line.runs)


def test_every_window_reads_at_most_half_a_day_of_hourly_rows_per_edge() -> None:
    for since in WINDOWS[1:]:
        for now in (LATER, NOW.replace(hour=0, minute=5), NOW.replace(hour=23, minute=55)):
            start, current = hour_start(now - since), hour_start(now)
            for from_runs in (True, False):
                window = window_spans(start, current, from_runs)
                hours = sum(
                    (s.end - s.start) / timedelta(hours=1)
                    for s in window.spans
                    if s.table is HOURLY_ROLLUPS
                )
                assert hours <= 12 + 12 + 1, (since, now, from_runs, window)


def test_percentiles_of_a_report_are_within_one_bucket_of_the_exact_ones(
    database_url: str,
) -> None:
    Session, results = stored_history(database_url)
    for since in (timedelta(days=30), timedelta(days=2, hours=9), timedelta(hours=11)):
        with Session() as session:
            lines = report(session, since, now=LATER).lines
        start = hour_start(LATER - since)
        for line in lines:
            durations = sorted(
                r.duration_ms for r in results if r.check_id == line.key and r.scheduled_at >= start
            )
            for fraction, value in ((0.5, line.p50_ms), (0.95, line.p95_ms), (0.99, line.p99_ms)):
                assert value is not None
                exact = percentile(durations, fraction)
                assert abs(bucket_of(value) - bucket_of(exact)) <= 1, (since, line.key, fraction)


def test_uptime_of_every_window_from_the_rollups_alone(database_url: str) -> None:
    Session, results = stored_history(database_url, rolled_current=True)
    windows = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "2d9h": timedelta(hours=57)}
    with Session() as session:
        found = uptimes(session, now=LATER, windows=windows)
        default = uptimes(session, now=LATER)
        only = uptimes(session, now=LATER, check_ids=["web"])
    assert set(found) == {"api", "web"} and set(only) == {"web"}
    assert only["web"] == default["web"]
    for check_id in ("api", "web"):
        for name, since in windows.items():
            start = hour_start(LATER - since)
            chosen = [r for r in results if r.check_id == check_id and r.scheduled_at >= start]
            up = sum(r.status != "failed" for r in chosen)
            assert found[check_id][name] == pytest.approx(100 * up / len(chosen), abs=1e-4)
        assert default[check_id]["7d"] == found[check_id]["7d"]
        assert default[check_id]["30d"] == default[check_id]["7d"]  # nothing older


def test_uptime_reads_no_runs(database_url: str) -> None:
    """The JSON API's numbers come from the rollups: the current hour's runs that they
    have not counted are not counted (a report counts them from the runs)."""
    Session, results = stored_history(database_url)
    current = [r for r in results if r.check_id == "api" and r.scheduled_at >= NOW]
    with Session() as session:
        found = uptimes(session, now=LATER, windows={"1h": timedelta(minutes=30)})
        (line,) = report(session, timedelta(minutes=30), check_id="api", now=LATER).lines
    assert "api" not in found and line.runs == len(current) == 20


def test_uptime_of_many_checks_is_one_statement_over_the_rollups(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    at = NOW - timedelta(days=2)
    store(Session, settings, [result("passed", at, check_id=f"c{i}") for i in range(60)])
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = engine_for(database_url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with Session() as session:
            found = uptimes(session, now=LATER)
            _, _, rolled = totals(session, timedelta(days=3), now=LATER, current_from_runs=False)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(found) == 60 and found["c7"] == {"24h": None, "7d": 100.0, "30d": 100.0}
    assert len(rolled) == 60
    reads = [s for s in statements if "check_rollups" in s]
    assert len(reads) == 2  # one for each question, whatever the number of checks
    assert not any("check_runs" in s for s in statements)


def test_a_window_without_runs_is_none_and_a_check_without_any_is_left_out(
    database_url: str,
) -> None:
    Session, _ = stored_history(database_url, rolled_current=True)
    with Session() as session:
        found = uptimes(session, now=LATER + timedelta(days=3), windows={"1h": timedelta(hours=1)})
        later = uptimes(session, now=LATER + timedelta(days=5))
    assert found == {}
    # The results of "web" are over 3 days old by then: none in the last 24 hours.
    assert later["web"]["24h"] is None and later["web"]["7d"] is not None


def test_incidents_opened_in_the_window_by_check_and_by_location(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    eu, us = "eu-west-1", "us-east-1"
    old = [result("failed", NOW - timedelta(days=3, minutes=m)) for m in (2, 1)]
    old.append(result("passed", NOW - timedelta(days=3)))
    store(Session, settings, old)
    for minute in range(6):  # both locations down, then up: one incident naming both
        at = NOW + timedelta(minutes=minute)
        status = "failed" if minute < 4 else "passed"
        store(Session, settings, [result(status, at, location=eu)])
        store(Session, settings, [result(status, at + timedelta(seconds=5), location=us)])
    store(Session, settings, [result("failed", NOW + timedelta(minutes=m)) for m in (10, 11)])
    opened = sorted(r.opened_at for r in rows(Session, IncidentRow))
    assert len(opened) == 3
    with Session() as session:
        by_check = report(session, timedelta(days=1), now=LATER)
        by_location = report(session, timedelta(days=1), "location", now=LATER)
        everything = report(session, timedelta(days=30), now=LATER)
        counts = incident_counts(session, NOW, LATER, "location", check_id="api")
    ((line,), (all_time,)) = by_check.lines, everything.lines
    assert (line.key, line.incidents, all_time.incidents) == ("api", 2, 3)
    # The first incident named both locations, the second only eu-west-1.
    assert {ln.key: ln.incidents for ln in by_location.lines} == {eu: 2, us: 1}
    assert counts == {eu: 2, us: 1}


def test_a_chart_has_a_point_per_day_with_runs(database_url: str) -> None:
    Session, results = stored_history(database_url, rolled_current=True)
    with Session() as session:
        points = chart(session, "api", days=90, now=LATER)
        eu = chart(session, "api", days=2, now=LATER, location="eu-west-1")
    per_day: dict[datetime, Counter[str]] = {}
    for r in results:
        if r.check_id == "api":
            per_day.setdefault(day_start(r.scheduled_at), Counter())[r.status] += 1
    assert [p.day for p in points] == sorted(per_day)
    for point in points:
        counted = per_day[point.day]
        assert (point.passed, point.degraded, point.failed) == (
            counted["passed"],
            counted["degraded"],
            counted["failed"],
        )
        up = 100 * (point.runs - point.failed) / point.runs
        assert point.uptime_pct == pytest.approx(up, abs=1e-4)
        assert point.p95_ms is not None
    assert [p.day for p in eu] == [day_start(LATER) - timedelta(days=1), day_start(LATER)]
    assert sum(p.runs for p in eu) == sum(
        1
        for r in results
        if r.check_id == "api"
        and r.location == "eu-west-1"
        and r.scheduled_at >= day_start(LATER) - timedelta(days=1)
    )


def test_whole_days_come_from_the_daily_rollup_and_the_edge_hours_from_the_hourly() -> None:
    current = hour_start(LATER)
    start = hour_start(NOW - timedelta(days=3, hours=5))  # 07:00: 7 hours in, 17 to go
    parts = [(s.table.name, s.start, s.end, s.sign) for s in spans(start, current)]
    first_day = start.replace(hour=0)
    assert parts == [
        ("check_rollups_hourly", first_day, start, -1),
        ("check_rollups_daily", first_day, NOW.replace(hour=0) + timedelta(days=1), 1),
        ("check_rollups_hourly", current, current + timedelta(hours=1), -1),
    ]
    late = hour_start(NOW - timedelta(days=3, hours=-8))  # 20:00: 4 hours to go
    parts = [(s.table.name, s.start, s.sign) for s in spans(late, current)]
    assert parts[0] == ("check_rollups_hourly", late, 1)
    assert parts[1] == ("check_rollups_daily", late.replace(hour=0) + timedelta(days=1), 1)
    assert [s.table.name for s in spans(NOW - timedelta(hours=3), NOW)] == ["check_rollups_hourly"]
    assert list(spans(NOW, NOW)) == []  # the current hour: runs alone


def test_percentiles_in_one_pass_equal_those_read_one_at_a_time() -> None:
    rng = random.Random(7)
    for _ in range(300):
        found = Totals()
        for _ in range(rng.choice([1, 2, 5, 50, 400])):
            found.add_run("passed", rng.lognormvariate(rng.uniform(2, 9), rng.uniform(0.1, 2)))
        fractions = (0.5, 0.95, 0.99)
        assert percentiles(found, fractions) == [found.percentile(f) for f in fractions]
    assert percentiles(Totals(), (0.5,)) == [None]
