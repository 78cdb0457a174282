"""History: questions about the past, answered from the rollups, at fleet size.

10,000 checks (one location each, one run a minute) x 90 days of hourly rollups and the
matching daily rollups, synthesised with COPY in the order ingest writes them (hour by
hour, every check), and the current hour's raw runs (half of it gone). Measured, each
the median of several runs after a warm-up, against a bare SQL aggregate of the daily
rollup in the same run (what Postgres takes at least to read the rows):

1. the 90-day uptime of every check (``uptimes``), goal under 200 ms;
2. one check's 90-day chart (``chart``), goal under 50 ms;
3. ``synmon report --since 30d`` for all checks (``report``), goal under 500 ms;
4. the uptime of ``/api/checks`` (24 h, 7 d, 30 d) for every check (``uptimes``).

Every answer is checked against the numbers the synthesis put in (a wrong one is a
failure, not a speed). Then storage: N results stored through the real store path
(``store_results``: runs, state, both rollups), the tables' total size scaled to a
million results.
"""

from __future__ import annotations

import io
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import text

from app.execution.runs import RunResult
from app.ops.report import chart, report, uptimes
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import store_results
from app.pipeline.rollups import DAY, HOUR, VALUES, Totals, day_start, hour_start
from app.storage.db import engine_for, sessions
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS, ROLLUP_KEY, RUNS_TABLE
from bench.common import Figure, Size, WrongResult
from config.settings import load_settings
from tests.support.databases import postgres_database

# (checks, days of history, results stored for the storage figures)
SIZES = {"tiny": (40, 3, 3_000), "full": (10_000, 90, 60_000)}
LOCATION = "eu-west-1"
RUNS_AN_HOUR = 60
GOALS_MS = {"uptime": 200.0, "chart": 50.0, "report": 500.0}
REPEATS = 5
SAMPLE = 25  # checks whose answers are compared with what the synthesis put in


def _totals(runs: list[tuple[str, float]]) -> Totals:
    totals = Totals()
    for status, duration in runs:
        totals.add_run(status, duration)
    return totals


def _hour_templates(rng: random.Random) -> list[Totals]:
    """Hours as a fleet has them: mostly all passed at a check's usual latency, some with
    a slow or a failed run, now and then an outage."""
    templates = []
    for index in range(16):
        failed = 0 if index < 10 else (1, 2, 3, 5, 30, RUNS_AN_HOUR)[index - 10]
        degraded = index % 3 if failed < RUNS_AN_HOUR else 0
        runs = [("failed", 10_000.0)] * failed + [("degraded", 2_500.0)] * degraded
        runs += [
            ("passed", round(rng.lognormvariate(4.8, 0.4), 3))
            for _ in range(RUNS_AN_HOUR - len(runs))
        ]
        templates.append(_totals(runs))
    return templates


# The current hour's runs of every check, half of the hour gone: minute 0 failed.
CURRENT_MINUTES = 30
CURRENT_RUNS = [("failed", 10_000.0)] + [("passed", 120.0)] * (CURRENT_MINUTES - 1)


@dataclass
class History:
    """What the synthesis puts in, to check the answers against."""

    checks: int
    days: int
    now: datetime
    templates: list[Totals]
    patterns: list[list[int]]  # a day's 24 hour templates

    @property
    def first_day(self) -> datetime:
        return day_start(self.now) - self.days * DAY

    def hours(self) -> Iterator[datetime]:
        """Every hour stored, oldest first, the current one included."""
        hour = self.first_day
        while hour <= hour_start(self.now):
            yield hour
            hour += HOUR

    def pattern(self, check: int, day: datetime) -> list[int]:
        number = (day - self.first_day) // DAY
        return self.patterns[(check * 31 + number * 7) % len(self.patterns)]

    def hour(self, check: int, hour: datetime) -> Totals:
        if hour == hour_start(self.now):
            return _totals(CURRENT_RUNS)
        return self.templates[self.pattern(check, day_start(hour))[hour.hour]]

    def since(self, check: int, start: datetime) -> Totals:
        """The check's totals from ``start`` (an hour) up to now, counted hour by hour."""
        found = Totals()
        for hour in self.hours():
            if hour >= start:
                found.merge(self.hour(check, hour))
        return found


def synthesise(checks: int, days: int, now: datetime) -> History:
    rng = random.Random(15)
    templates = _hour_templates(rng)
    weights = [30] * 10 + [4, 3, 2, 2, 1, 1]
    patterns = [rng.choices(range(len(templates)), weights, k=24) for _ in range(16)]
    return History(checks, days, now, templates, patterns)


def _values(totals: Totals) -> str:
    columns = totals.columns()
    return ",".join(repr(columns[name]) for name in VALUES)


class _Lines(io.RawIOBase):
    """A file over generated CSV lines, for COPY FROM STDIN without them all in memory."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.chunk = b""
        self.at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.at >= len(self.chunk):
            self.chunk = "".join(islice(self.lines, 20_000)).encode()
            self.at = 0
        size = min(len(buffer), len(self.chunk) - self.at)
        buffer[:size] = self.chunk[self.at : self.at + size]
        self.at += size
        return size


def _hourly_lines(history: History) -> Iterator[str]:
    tails = [_values(template) for template in history.templates]
    current_tail = _values(_totals(CURRENT_RUNS))
    count = len(history.patterns)
    for hour in history.hours():
        prefix = f",{LOCATION},{hour.isoformat()},"
        if hour == hour_start(history.now):
            yield from (f"c{check}{prefix}{current_tail}\n" for check in range(history.checks))
            continue
        shift = (hour - history.first_day) // DAY * 7
        by_pattern = [tails[pattern[hour.hour]] for pattern in history.patterns]
        yield from (
            f"c{check}{prefix}{by_pattern[(check * 31 + shift) % count]}\n"
            for check in range(history.checks)
        )


def _daily_lines(history: History) -> Iterator[str]:
    today = day_start(history.now)
    cache: dict[tuple[int, bool], str] = {}
    day = history.first_day
    while day <= today:
        stamp = day.isoformat()
        for check in range(history.checks):
            pattern = history.pattern(check, day)
            key = (id(pattern), day == today)
            tail = cache.get(key)
            if tail is None:
                found = Totals()
                hour = day
                while hour < day + DAY and hour <= hour_start(history.now):
                    found.merge(history.hour(check, hour))
                    hour += HOUR
                tail = cache.setdefault(key, _values(found))
            yield f"c{check},{LOCATION},{stamp},{tail}\n"
        day += DAY


def _raw_lines(history: History) -> Iterator[str]:
    """The current hour's runs of every check, as the runs table's columns (``RAW_COLUMNS``)."""
    current = hour_start(history.now)
    for minute, (status, duration) in enumerate(CURRENT_RUNS):
        at = (current + timedelta(minutes=minute)).isoformat()
        for check in range(history.checks):
            run = uuid.uuid4()
            yield (
                f"{run},{run},c{check},{LOCATION},http,{status},1,1,t,{at},{at},{at},"
                f'{duration},{{}},[],,,"{{""status_code"": 200}}",[],bench,bench,2,schedule,{at}\n'
            )


RAW_COLUMNS = (
    "run_id, root_run_id, check_id, location, kind, status, attempt, deliveries, final, "
    "scheduled_at, started_at, finished_at, duration_ms, timings, assertions, error, "
    "error_kind, response, artifacts, worker_version, worker_host, message_version, "
    "trigger, ingested_at"
)


def load(database_url: str, history: History) -> float:
    """COPY the history in; the seconds it took."""
    raw = engine_for(database_url).raw_connection()
    started = time.perf_counter()
    try:
        cursor = raw.cursor()
        columns = ", ".join((*ROLLUP_KEY, *VALUES))
        for table, lines in (
            (HOURLY_ROLLUPS.name, _hourly_lines(history)),
            (DAILY_ROLLUPS.name, _daily_lines(history)),
        ):
            cursor.copy_expert(
                f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", _Lines(lines), 1 << 20
            )
        cursor.copy_expert(
            f"COPY {RUNS_TABLE} ({RAW_COLUMNS}) FROM STDIN WITH (FORMAT csv)",
            _Lines(_raw_lines(history)),
            1 << 20,
        )
        raw.commit()
        raw.set_isolation_level(0)  # VACUUM runs outside a transaction
        # What autovacuum does to a table this size soon after: statistics for the
        # planner, and the visibility map that lets index scans skip the heap.
        cursor.execute(f"VACUUM ANALYZE {HOURLY_ROLLUPS.name}, {DAILY_ROLLUPS.name}, {RUNS_TABLE}")
    finally:
        raw.close()
    return time.perf_counter() - started


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """(median milliseconds of ``REPEATS`` calls after one to warm up, the last answer)."""
    answer = call()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        answer = call()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times), answer


BARE_UPTIME = (
    "SELECT check_id, sum(passed + degraded)::float8 / nullif(sum(passed + degraded + failed), 0) "
    "FROM check_rollups_daily WHERE bucket_start >= :start GROUP BY check_id"
)
BARE_CHART = (
    "SELECT bucket_start, passed, degraded, failed FROM check_rollups_daily "
    "WHERE check_id = :check AND bucket_start >= :start ORDER BY bucket_start"
)
BARE_REPORT = (
    f"SELECT check_id, {', '.join(f'sum({name})' for name in VALUES[:-2])}, "
    "min(duration_min_ms), max(duration_max_ms) "
    "FROM check_rollups_daily WHERE bucket_start >= :start GROUP BY check_id"
)
HOURLY_UPTIME = BARE_UPTIME.replace("check_rollups_daily", "check_rollups_hourly")


def _check(condition: bool, message: str, figures: list[Figure]) -> None:
    if not condition:
        raise WrongResult(message, figures)


def _sample(history: History) -> list[int]:
    step = max(1, history.checks // SAMPLE)
    return list(range(0, history.checks, step))[:SAMPLE]


def questions(database_url: str, history: History, size: Size) -> list[Figure]:
    now, figures = history.now, []
    Session = sessions(database_url)
    window = timedelta(days=history.days)
    start = hour_start(now - window)
    full = size == "full"

    def bare(statement: str, **params: Any) -> Callable[[], Any]:
        def call() -> Any:
            with Session() as session:
                return session.execute(text(statement), params).all()

        return call

    def answered(call: Callable[[Any], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with Session() as session:
                return call(session)

        return run

    windows = {"90d": window}
    ms, found = timed(answered(lambda s: uptimes(s, now, windows=windows)))
    base_ms, base = timed(bare(BARE_UPTIME, start=day_start(start)))
    # The same from the hourly rollup, once: at full size it reads every row of it.
    started = time.perf_counter()
    bare(HOURLY_UPTIME, start=start)()
    hourly_ms = 1000 * (time.perf_counter() - started)
    figures.append(
        Figure(
            "history",
            f"{history.days}-day uptime of {history.checks:,} checks",
            "ms",
            ms,
            base_ms,
            f"a bare GROUP BY of the daily rollup over {history.days} days",
            better="lower",
            goal=f"< {GOALS_MS['uptime']:.0f} ms",
            met=ms < GOALS_MS["uptime"] if full else None,
            notes=[
                "exact to the hour: the first day's edge hours from the hourly rollup",
                f"the same bare GROUP BY of the hourly rollup: {hourly_ms:,.0f} ms",
            ],
        )
    )
    _check(len(found) == history.checks and len(base) == history.checks, "uptime: checks", figures)
    for check in _sample(history):
        expected = history.since(check, start)
        assert expected.uptime is not None
        _check(
            found[f"c{check}"]["90d"] == round(100 * expected.uptime, 4),
            f"uptime of c{check}: {found[f'c{check}']} against {100 * expected.uptime}",
            figures,
        )

    check = _sample(history)[-1]
    ms, points = timed(answered(lambda s: chart(s, f"c{check}", history.days, now)))
    base_ms, _ = timed(bare(BARE_CHART, check=f"c{check}", start=day_start(now) - window))
    figures.append(
        Figure(
            "history",
            f"one check's {history.days}-day chart",
            "ms",
            ms,
            base_ms,
            "a bare SELECT of its daily rows",
            better="lower",
            goal=f"< {GOALS_MS['chart']:.0f} ms",
            met=ms < GOALS_MS["chart"] if full else None,
            notes=["a point a day: runs, failures, uptime and p95 from the daily histogram"],
        )
    )
    _check(len(points) == history.days, f"chart: {len(points)} points", figures)
    for point in points:
        day = Totals()
        hour = point.day
        while hour < point.day + DAY and hour <= hour_start(now):
            day.merge(history.hour(check, hour))
            hour += HOUR
        _check((point.runs, point.failed) == (day.runs, day.failed), "chart: a day", figures)

    since = timedelta(days=min(30, history.days))
    report_start = hour_start(now - since)
    ms, found_report = timed(answered(lambda s: report(s, since, now=now)))
    base_ms, _ = timed(bare(BARE_REPORT, start=day_start(report_start)))
    figures.append(
        Figure(
            "history",
            f"report --since {since.days}d, {history.checks:,} checks",
            "ms",
            ms,
            base_ms,
            f"a bare GROUP BY of every daily rollup column over {since.days} days",
            better="lower",
            goal=f"< {GOALS_MS['report']:.0f} ms",
            met=ms < GOALS_MS["report"] if full else None,
            notes=[
                "uptime, runs, failures, p50/p95/p99 and incidents; the current hour "
                f"({history.checks * CURRENT_MINUTES:,} runs) counted from raw runs"
            ],
        )
    )
    rolled_ms, _ = timed(answered(lambda s: report(s, since, now=now, current_from_runs=False)))
    figures[-1].notes.append(
        f"the same with the current hour from the rollups (kept by ingest): {rolled_ms:,.0f} ms"
    )
    lines = {line.key: line for line in found_report.lines}
    _check(len(lines) == history.checks, "report: checks", figures)
    for check in _sample(history):
        expected = history.since(check, report_start)
        line = lines[f"c{check}"]
        _check(
            (line.runs, line.failed, line.degraded)
            == (expected.runs, expected.failed, expected.degraded),
            f"report of c{check}: {line} against {expected.columns()}",
            figures,
        )

    ms, api = timed(answered(lambda s: uptimes(s, now)))
    base_ms, _ = timed(bare(BARE_UPTIME, start=day_start(now - timedelta(days=30))))
    figures.append(
        Figure(
            "history",
            f"/api/checks uptime 24h/7d/30d, {history.checks:,}",
            "ms",
            ms,
            base_ms,
            "a bare GROUP BY of the daily rollup over 30 days (one window)",
            better="lower",
            notes=["three windows in one statement, from the rollups alone (no raw runs)"],
        )
    )
    for check in _sample(history):
        for name, span in (("24h", timedelta(hours=24)), ("30d", timedelta(days=30))):
            expected = history.since(check, hour_start(now - span))
            assert expected.uptime is not None
            _check(
                api[f"c{check}"][name] == round(100 * expected.uptime, 4),
                f"/api/checks uptime {name} of c{check}",
                figures,
            )
    return figures


def _results(count: int, checks: int, since: datetime) -> list[RunResult]:
    """``count`` results of ``checks`` checks, one a minute each, as ingest stores them
    (the shape of bench/ingest.py's results)."""
    return [
        RunResult(
            run_id=uuid.uuid4(),
            check_id=f"s{i % checks}",
            kind="http",
            location=LOCATION,
            status="failed" if i % 97 == 0 else "passed",
            error="connection refused" if i % 97 == 0 else None,
            error_kind="network" if i % 97 == 0 else None,
            scheduled_at=since + timedelta(minutes=i // checks),
            started_at=since + timedelta(minutes=i // checks),
            finished_at=since + timedelta(minutes=i // checks, seconds=0.1234),
            duration_ms=80.0 + i % 300,
            timings={"dns_ms": 0.1, "connect_ms": 0.4, "total_ms": 123.4},
            assertions=[
                {
                    "source": "status_code",
                    "comparison": "equals",
                    "target": 200,
                    "actual": 200,
                    "passed": True,
                }
            ],
            response={
                "status_code": 200,
                "body_excerpt": "ok" * 100,
                "headers": {"Content-Type": "text/plain"},
            },
            worker_version="bench",
            worker_host="bench",
            trigger="schedule",
        )
        for i in range(count)
    ]


# A table's size with its indexes and TOAST, and its partitions' (runs is partitioned on
# Postgres: the parent itself stores nothing).
SIZE_OF = (
    "SELECT pg_total_relation_size(CAST(:name AS regclass)) + coalesce(("
    "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(CAST(:name AS regclass)) "
    "WHERE relid <> CAST(:name AS regclass)), 0)"
)


def storage(database_url: str, count: int) -> list[Figure]:
    """Bytes per million results in the runs and in each rollup, after storing
    ``count`` results through the store path, ten checks at one run a minute each."""
    settings = load_settings(
        {"SYNMON_ENV": "test", "SYNMON_DATABASE_URL": database_url, "SYNMON_LOCATIONS": LOCATION}
    )
    Session = sessions(database_url)
    checks = 10
    batch = _results(count, checks, day_start(datetime.now(UTC)) - 2 * DAY)
    cache = CheckCache()
    size = settings.ingest_batch_size
    for first in range(0, count, size):
        with Session.begin() as session:
            store_results(session, batch[first : first + size], settings, cache)
    sizes = {}
    with Session() as session:
        stored = session.execute(text(f"SELECT count(*) FROM {RUNS_TABLE}")).scalar_one()
        rolled = session.execute(
            text("SELECT sum(passed + degraded + failed) FROM check_rollups_daily")
        ).scalar_one()
    raw = engine_for(database_url).raw_connection()
    try:
        raw.set_isolation_level(0)  # VACUUM runs outside a transaction
        # Compacted: each batch's upsert leaves the row versions it replaced, which
        # (auto)vacuum makes room of for the next; what the data needs is measured.
        raw.cursor().execute(
            f"VACUUM FULL {RUNS_TABLE}, {HOURLY_ROLLUPS.name}, {DAILY_ROLLUPS.name}"
        )
    finally:
        raw.close()
    with Session() as session:
        for name in (RUNS_TABLE, HOURLY_ROLLUPS.name, DAILY_ROLLUPS.name):
            # float: a sum of bigints comes back as a Decimal, which JSON cannot write.
            sizes[name] = float(session.execute(text(SIZE_OF), {"name": name}).scalar_one())
    if stored != count or rolled != count:
        raise WrongResult(f"stored {stored} and rolled up {rolled} of {count} results")
    per_million = {name: bytes_ * 1_000_000 / count / 2**20 for name, bytes_ in sizes.items()}
    raw_mib = per_million[RUNS_TABLE]
    note = f"{count:,} results stored by store_results, {checks} checks at one run a minute"
    return [
        Figure(
            "history",
            "storage per 1 M results: raw runs",
            "MiB",
            raw_mib,
            better="lower",
            notes=[note, "its partitions, indexes and TOAST (pg_total_relation_size)"],
        ),
        Figure(
            "history",
            "storage per 1 M results: hourly rollup",
            "MiB",
            per_million[HOURLY_ROLLUPS.name],
            raw_mib,
            "raw runs (above)",
            better="lower",
            notes=["a row per check x location x hour: 60 runs a row at one a minute"],
        ),
        Figure(
            "history",
            "storage per 1 M results: daily rollup",
            "MiB",
            per_million[DAILY_ROLLUPS.name],
            raw_mib,
            "raw runs (above)",
            better="lower",
            notes=["a row per check x location x day: 1,440 runs a row at one a minute"],
        ),
    ]


def _per_million(bytes_a_row: float, runs_a_row: int) -> float:
    return bytes_a_row * 1_000_000 / runs_a_row / 2**20


def run(size: Size) -> list[Figure]:
    checks, days, stored_count = SIZES[size]
    now = hour_start(datetime.now(UTC)) + timedelta(minutes=CURRENT_MINUTES)
    history = synthesise(checks, days, now)
    with postgres_database() as database_url:
        seconds = load(database_url, history)
        figures = questions(database_url, history, size)
        with sessions(database_url)() as session:
            hourly_bytes = session.execute(
                text(SIZE_OF), {"name": HOURLY_ROLLUPS.name}
            ).scalar_one()
        rows = checks * (days * 24 + now.hour + 1)
        figures[0].notes.append(
            f"synthesised: {rows:,} hourly rows ({hourly_bytes / 2**30:.2f} GiB) and the "
            f"daily ones by COPY in {seconds:,.0f} s, then VACUUM ANALYZE"
        )
    with postgres_database() as database_url:
        stored = storage(database_url, stored_count)
    per_row = hourly_bytes / rows
    stored[1].notes.append(
        f"the {rows:,} synthesised rows: {per_row:,.0f} B a row with its indexes, "
        f"{_per_million(per_row, RUNS_AN_HOUR):,.1f} MiB a million results"
    )
    stored[2].notes.append(
        f"at the same bytes a row: {_per_million(per_row, 24 * RUNS_AN_HOUR):,.2f} MiB "
        "a million results (the measured figure is mostly the tables' first pages)"
    )
    return figures + stored


if __name__ == "__main__":
    import sys

    from bench.common import table

    print(table(run("full" if "--full" in sys.argv else "tiny")))
