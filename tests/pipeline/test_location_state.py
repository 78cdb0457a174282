"""One state per (check, location) and a check verdict derived from them, on both databases.

Each test stores results the way ingest does (store_results, in one transaction per
batch) and reads what was written: states, location states and notifications.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from app.definitions.loader import load_text
from app.execution.runs import RunResult
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import store_results
from app.pipeline.sync import sync
from app.storage.db import sessions
from app.storage.models import CheckLocationStateRow, CheckStateRow, NotificationRow
from tests.support.processes import Synmon
from tests.support.results import run_result
from tests.support.settings import make_settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PERIOD = timedelta(minutes=1)
EU, US, AP = "eu-west-1", "us-east-1", "ap-south-1"


def prepare(database_url: str, **check: Any) -> tuple[Any, Any, CheckCache]:
    definition = {
        "id": "api",
        "type": "http",
        "frequency": "1m",
        "locations": [EU, US],
        "request": {"url": "https://api.example.com"},
        "retry": {"strategy": "none"},
        "alert": {"after_failures": 2, "channels": ["ops"], "notify_recovery": True},
        **check,
    }
    text = yaml.safe_dump(
        {
            "channels": [{"id": "ops", "type": "webhook", "url": "https://hooks.example.com/x"}],
            "checks": [definition],
        }
    )
    settings = make_settings(SYNMON_DATABASE_URL=database_url, SYNMON_LOCATIONS=f"{EU},{US},{AP}")
    Session = sessions(database_url)
    with Session() as session:
        sync(session, load_text(text, "c.yaml", settings))
    return settings, Session, CheckCache()


def result(status: str, location: str, period: int, **overrides: Any) -> RunResult:
    started = NOW + period * PERIOD
    return run_result(
        status=status,
        location=location,
        scheduled_at=started,
        started_at=started,
        finished_at=started + timedelta(milliseconds=20),
        duration_ms=20.0,
        error="connection refused" if status == "failed" else None,
        error_kind="network" if status == "failed" else None,
        **overrides,
    )


def store(env: tuple[Any, Any, CheckCache], results: list[RunResult]) -> None:
    settings, Session, cache = env
    with Session.begin() as session:
        store_results(session, results, settings, cache, now=results[-1].finished_at)


def events(env: tuple[Any, Any, CheckCache]) -> list[str]:
    with env[1]() as session:
        return list(
            session.scalars(select(NotificationRow.event).order_by(NotificationRow.id)).all()
        )


def state(env: tuple[Any, Any, CheckCache]) -> tuple[str, bool]:
    with env[1]() as session:
        row = session.get(CheckStateRow, "api")
        assert row is not None
        return row.status, row.alerting


def location_rows(env: tuple[Any, Any, CheckCache]) -> dict[str, tuple[str, int]]:
    with env[1]() as session:
        return {
            row.location: (row.status, row.consecutive_failures)
            for row in session.scalars(select(CheckLocationStateRow))
        }


def test_one_location_down_for_many_periods_alerts_once_and_recovers_once(
    database_url: str,
) -> None:
    env = prepare(database_url)
    for period in range(12):  # both locations each period, in one batch or one by one
        batch = [result("failed", EU, period), result("passed", US, period)]
        if period % 2:
            store(env, batch)
        else:
            for one in batch:
                store(env, [one])
    assert events(env) == ["failure"]
    assert state(env) == ("failing", True)
    assert location_rows(env) == {EU: ("failing", 12), US: ("passing", 0)}
    for period in range(12, 16):
        store(env, [result("passed", EU, period), result("passed", US, period)])
    assert events(env) == ["failure", "recovery"]
    assert state(env) == ("passing", False)
    assert location_rows(env) == {EU: ("passing", 0), US: ("passing", 0)}


def test_each_location_counts_its_own_failures(database_url: str) -> None:
    # Alternating failures across locations never make one location fail twice running.
    env = prepare(database_url)
    for period in range(10):
        failing, passing = (EU, US) if period % 2 else (US, EU)
        store(env, [result("failed", failing, period), result("passed", passing, period)])
    assert events(env) == []
    assert state(env) == ("failing", False)  # a location failed its last run, none is down


def test_a_quorum_of_two_ignores_one_location_down(database_url: str) -> None:
    env = prepare(
        database_url,
        locations=[EU, US, AP],
        alert={"after_failures": 1, "min_failing_locations": 2, "channels": ["ops"]},
    )
    for period in range(6):
        store(
            env,
            [
                result("failed", EU, period),
                result("passed", US, period),
                result("passed", AP, period),
            ],
        )
    assert events(env) == []
    assert state(env) == ("passing", False)
    store(env, [result("failed", US, 6), result("failed", EU, 6)])
    assert events(env) == ["failure"]
    store(env, [result("failed", US, 7), result("failed", EU, 7), result("failed", AP, 7)])
    assert events(env) == ["failure"]
    store(env, [result("passed", US, 8)])  # two locations still down
    assert events(env) == ["failure"]
    store(env, [result("passed", AP, 8)])  # one location left down: below the quorum
    assert events(env) == ["failure", "recovery"]
    assert state(env) == ("passing", False)


def test_a_late_result_of_an_older_run_moves_nothing(database_url: str) -> None:
    env = prepare(database_url, alert={"after_failures": 1, "channels": ["ops"]})
    store(env, [result("failed", EU, 5), result("passed", US, 5)])
    assert events(env) == ["failure"]
    store(env, [result("passed", EU, 3)])  # older than what EU already reported
    assert events(env) == ["failure"]
    assert location_rows(env)[EU] == ("failing", 1)
    store(env, [result("passed", US, 2)])  # late at US too, and moving nothing there
    assert state(env) == ("failing", True)
    store(env, [result("passed", EU, 6)])
    assert events(env) == ["failure", "recovery"]


def test_a_late_result_behind_a_newer_run_that_moved_nothing_is_ignored(
    database_url: str,
) -> None:
    env = prepare(database_url, alert={"after_failures": 1, "channels": ["ops"]})
    store(env, [result("passed", EU, 1)])
    store(env, [result("passed", EU, 3)])  # moves nothing: the location row names period 1
    store(env, [result("failed", EU, 2)])  # older than the stored run of period 3
    assert events(env) == []
    assert location_rows(env)[EU] == ("passing", 0)


def test_round_robin_counts_failures_per_location(database_url: str) -> None:
    env = prepare(database_url, run_mode="round-robin")
    # One location per period: EU, US, EU, US ... with EU refused every time.
    outcome = {EU: "failed", US: "passed"}
    for period in range(2):
        location = (EU, US)[period % 2]
        store(env, [result(outcome[location], location, period)])
    assert events(env) == []  # EU has failed once, US passed in between
    store(env, [result("failed", EU, 2)])
    assert events(env) == ["failure"]  # EU's second failure in a row, two periods apart
    store(env, [result("passed", US, 3)])
    for period in range(4, 12):
        location = (EU, US)[period % 2]
        store(env, [result(outcome[location], location, period)])
    assert events(env) == ["failure"]  # US passing in between recovers nothing
    store(env, [result("passed", EU, 12)])
    assert events(env) == ["failure", "recovery"]


def test_an_alert_opened_by_the_release_before_stays_open(database_url: str) -> None:
    # The release before kept one state per check; its rows carry over to each location.
    env = prepare(database_url)
    with env[1].begin() as session:
        session.add(
            CheckStateRow(
                check_id="api",
                status="failing",
                last_status="failed",
                last_run_at=NOW - PERIOD,
                consecutive_failures=3,
                alerting=True,
                updated_at=NOW,
            )
        )
    store(env, [result("failed", EU, 0)])
    assert events(env) == []  # neither a second failure nor a recovery
    assert state(env) == ("failing", True)
    store(env, [result("passed", EU, 1), result("passed", US, 1)])
    assert events(env) == ["recovery"]


@pytest.mark.processes
def test_the_commands_show_each_location(database_url: str, tmp_path: Path) -> None:
    env = prepare(database_url)
    now = datetime.now(UTC)
    for location, status in ((EU, "failed"), (US, "passed")):
        store(env, [run_result(status=status, location=location, started_at=now)])
    synmon = Synmon(
        {
            "SYNMON_DATABASE_URL": database_url,
            "SYNMON_ENV": "test",
            "SYNMON_LOCATIONS": f"{EU},{US},{AP}",
        },
        tmp_path,
    )
    (row,) = json.loads(synmon.command("stats", "--by", "check", "--json").stdout)
    assert (row["key"], row["state"]) == ("api", "failing")
    assert row["location_states"] == {EU: "failing", US: "passing"}
    table = synmon.command("stats", "--by", "check").stdout
    assert f"{EU} failing, {US} passing" in table
    header = synmon.command("runs", "--check", "api").stdout.splitlines()[0]
    assert header == f"api: failing ({EU} failing, {US} passing)"


def resync(env: tuple[Any, Any, CheckCache], database_url: str, **check: Any) -> Any:
    """The same check synced again with ``check``'s changes; a fresh cache sees them."""
    settings, Session, _ = prepare(database_url, **check)
    return settings, Session, CheckCache()


def test_a_location_added_later_starts_afresh(database_url: str) -> None:
    quorum = {"after_failures": 3, "min_failing_locations": 2, "channels": ["ops"]}
    env = prepare(database_url, alert=quorum)
    for period in range(6):
        store(env, [result("failed", EU, period), result("passed", US, period)])
    assert events(env) == []  # one location down, two needed
    env = resync(env, database_url, alert=quorum, locations=[EU, US, AP])
    store(env, [result("failed", AP, 6), result("failed", EU, 6)])
    assert location_rows(env)[AP] == ("failing", 1)  # its own count, not EU's six
    assert events(env) == []
    for period in (7, 8):
        store(env, [result("failed", AP, period)])
    assert events(env) == ["failure"]  # AP down after its own three


def test_removing_the_location_that_is_down_ends_the_alert(database_url: str) -> None:
    env = prepare(database_url)
    for period in range(3):
        store(env, [result("failed", EU, period), result("passed", US, period)])
    assert events(env) == ["failure"]
    env = resync(env, database_url, locations=[US])
    store(env, [result("passed", US, 3)])  # moves nothing at US, but the verdict moves
    assert events(env) == ["failure", "recovery"]
    assert state(env) == ("passing", False)
