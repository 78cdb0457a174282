"""Dispatcher: due checks selected, advanced and encoded into batched run requests.

Sends into a sink, to measure synmon and not the queue. Baseline: the same selection
and update in bare SQL (one FOR UPDATE SKIP LOCKED select and one UPDATE per batch,
with the definitions serialised), on the same rows of the same database.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text, update

from app.ops.stats import percentile
from app.pipeline.dispatch import advance_rows, dispatch_due
from app.pipeline.schedule import first_run_after
from app.pipeline.sqs import Outgoing
from app.storage.db import sessions
from app.storage.models import CheckRow
from bench.common import Figure, Size, WrongResult
from config.settings import load_settings
from tests.support.databases import postgres_database
from tests.support.envelopes import run_request_of

SIZES = {"tiny": (2_000, 4.0), "full": (100_000, 60.0)}
TRIALS = {"tiny": 2, "full": 3}
FREQUENCY = 60.0
GOAL_RATE = 5_000.0
NEEDED_RATE = 100_000 / 60


def definition(index: int) -> dict[str, object]:
    return {
        "id": f"check-{index:06d}",
        "name": f"Check {index}",
        "type": "http",
        "frequency": FREQUENCY,
        "locations": ["eu-west-1"],
        "run_mode": "parallel",
        "enabled": True,
        "request": {
            "method": "GET",
            "url": f"https://api.example.com/items/{index}",
            "headers": {"Accept": "application/json"},
            "query": {},
            "body": None,
            "follow_redirects": True,
            "timeout": 10.0,
            "basic_auth": None,
            "skip_tls_verify": False,
        },
        "degraded_response_time": 2.0,
        "max_response_time": 5.0,
        "assertions": [
            {"source": "status_code", "property": None, "comparison": "equals", "target": 200}
        ],
        "retry": {
            "strategy": "none",
            "max_retries": 2,
            "base_backoff": 5.0,
            "max_duration": 120.0,
            "same_region": True,
            "network_only": False,
        },
        "alert": {
            "after_failures": 1,
            "channels": [],
            "notify_recovery": True,
            "notify_degraded": False,
        },
        "tags": [],
    }


def seed(database_url: str, count: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"check-{i:06d}",
            "name": f"Check {i}",
            "kind": "http",
            "definition": definition(i),
            "definition_hash": uuid.uuid4().hex,
            "frequency_s": FREQUENCY,
            "locations": ["eu-west-1"],
            "run_mode": "parallel",
            "enabled": True,
            "next_run_at": now,
            "rr_cursor": 0,
            "source_file": None,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    with sessions(database_url).begin() as session:
        for start in range(0, count, 10_000):
            session.execute(insert(CheckRow), rows[start : start + 10_000])
    with sessions(database_url)() as session:
        session.execute(text("ANALYZE checks"))


def make_all_due(database_url: str) -> None:
    with sessions(database_url).begin() as session:
        session.execute(
            update(CheckRow).values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def bare_sql(database_url: str, batch: int) -> int:
    """The database's share of the work, without synmon: select, lock, advance, serialise."""
    done = 0
    with sessions(database_url)() as session:
        while True:
            with session.begin():
                rows = session.execute(
                    text(
                        "SELECT id, definition, frequency_s FROM checks WHERE enabled AND next_run_at <= now() "
                        "ORDER BY next_run_at LIMIT :batch FOR UPDATE SKIP LOCKED"
                    ),
                    {"batch": batch},
                ).all()
                if not rows:
                    return done
                [json.dumps(row.definition) for row in rows]
                session.execute(
                    text(
                        "UPDATE checks SET next_run_at = next_run_at + make_interval(secs => frequency_s) "
                        "WHERE id = ANY(:ids)"
                    ),
                    {"ids": [row.id for row in rows]},
                )
            done += len(rows)


def fixed(at: datetime) -> Callable[[], datetime]:
    return lambda: at


def discard(messages: Sequence[Outgoing]) -> None:
    del messages


def run(size: Size) -> list[Figure]:
    count, steady_seconds = SIZES[size]
    figures: list[Figure] = []
    with postgres_database() as database_url:
        settings = load_settings(
            {
                "SYNMON_ENV": "test",
                "SYNMON_DATABASE_URL": database_url,
                "SYNMON_LOCATIONS": "eu-west-1",
            }
        )
        seed(database_url, count)
        factory = sessions(database_url)

        # Burst: every check due at once. Synmon and the baseline take turns, and each
        # keeps its best trial: on a shared machine one figure of each, measured once,
        # moved by a third from run to run.
        def synmon_burst() -> float:
            sent: list[Outgoing] = []

            def sink(messages: Sequence[Outgoing]) -> None:
                sent.extend(messages)

            make_all_due(database_url)
            started = time.perf_counter()
            dispatch_due(factory, settings, sink)
            while len(sent) < count:  # a tick dispatches at most 50 rounds; keep ticking
                more = dispatch_due(factory, settings, sink)
                if not more.runs:
                    break
            seconds = time.perf_counter() - started
            run_ids = {run_request_of(m.body)["run_id"] for m in sent}
            if len(sent) != count or len(run_ids) != count:
                raise WrongResult(
                    f"dispatcher sent {len(sent)} runs ({len(run_ids)} distinct) for {count} due checks"
                )
            return seconds

        def bare_burst() -> float:
            make_all_due(database_url)
            started = time.perf_counter()
            bare = bare_sql(database_url, settings.dispatch_batch_size)
            seconds = time.perf_counter() - started
            if bare != count:
                raise WrongResult(f"bare SQL advanced {bare} of {count} checks")
            return seconds

        synmon_times: list[float] = []
        bare_times: list[float] = []
        for trial in range(TRIALS[size]):
            if trial % 2:
                bare_times.append(bare_burst())
                synmon_times.append(synmon_burst())
            else:
                synmon_times.append(synmon_burst())
                bare_times.append(bare_burst())
        synmon_seconds, bare_seconds = min(synmon_times), min(bare_times)
        rate = count / synmon_seconds
        figures.append(
            Figure(
                "dispatcher",
                f"{count:,} due checks dispatched",
                "runs/s",
                rate,
                count / bare_seconds,
                "bare SQL: SKIP LOCKED select + UPDATE per batch, definitions serialised",
                notes=[
                    f"best of {TRIALS[size]} turns each; synmon "
                    + ", ".join(f"{count / t:,.0f}" for t in synmon_times)
                    + ", bare "
                    + ", ".join(f"{count / t:,.0f}" for t in bare_times)
                ],
                goal=f">= {GOAL_RATE:,.0f} runs/s (3x the {NEEDED_RATE:,.0f}/s of 100,000 checks a minute)",
                met=rate >= GOAL_RATE if size == "full" else None,
            )
        )

        # Steady state: each check on its lattice from a few seconds ahead (so that
        # nothing is overdue when the clock starts), a tick every dispatch_interval.
        base = datetime.now(UTC) + timedelta(seconds=5)
        with factory.begin() as session:
            advance_rows(
                session,
                [
                    {
                        "id": f"check-{i:06d}",
                        "next_run_at": first_run_after(f"check-{i:06d}", FREQUENCY, base),
                        "rr_cursor": 0,
                    }
                    for i in range(count)
                ],
            )
        lags: list[float] = []
        dispatched = 0
        interval = settings.dispatch_interval
        time.sleep(max(0.0, (base - datetime.now(UTC)).total_seconds()))
        deadline = time.monotonic() + steady_seconds
        last_tick = base
        while time.monotonic() < deadline:
            tick = time.monotonic()
            last_tick = datetime.now(UTC)
            result = dispatch_due(factory, settings, discard, now=fixed(last_tick))
            lags.extend(r.lag_s for r in result.runs)
            dispatched += len(result.runs)
            time.sleep(max(0.0, interval - (time.monotonic() - tick)))
        # Exactly the slots in (base, last tick]: one per check, the window being shorter
        # than the period.
        expected = sum(
            1
            for i in range(count)
            if first_run_after(f"check-{i:06d}", FREQUENCY, base) <= last_tick
        )
        if dispatched != expected:
            raise WrongResult(f"dispatched {dispatched} runs, but {expected} slots came due")
        lags.sort()
        p99 = percentile(lags, 0.99)
        figures.append(
            Figure(
                "dispatcher",
                f"lag p50, {count:,} checks at 1/min",
                "s",
                percentile(lags, 0.5),
                interval,
                "the tick interval (SYNMON_DISPATCH_INTERVAL)",
                better="lower",
                notes=[f"{dispatched:,} runs over {steady_seconds:g}s of real time"],
            )
        )
        figures.append(
            Figure(
                "dispatcher",
                f"lag p99, {count:,} checks at 1/min",
                "s",
                p99,
                interval,
                "the tick interval (SYNMON_DISPATCH_INTERVAL)",
                better="lower",
                goal="< 1 s",
                met=p99 < 1.0 if size == "full" else None,
            )
        )
    return figures
