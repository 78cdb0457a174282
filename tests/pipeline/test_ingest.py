"""Ingest: idempotent storage, the state machine, alerts and retries, on both databases."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from app.definitions.loader import load_text
from app.definitions.models import Check
from app.execution.runs import RunResult
from app.pipeline.check_cache import CheckCache
from app.pipeline.ingest import relay_outbox, store_results
from app.pipeline.retries import backoff_seconds, decide_retry
from app.pipeline.schedule import retry_run_id
from app.pipeline.sqs import Outgoing
from app.pipeline.sync import sync
from app.pipeline.wire import decode_run_request
from app.storage.db import sessions
from app.storage.models import CheckRunRow, CheckStateRow, NotificationRow, OutboxRow
from tests.support.envelopes import run_request_of
from tests.support.results import run_result
from tests.support.settings import make_settings

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def definitions(retry: dict[str, Any] | None = None, alert: dict[str, Any] | None = None) -> str:
    return yaml.safe_dump(
        {
            "channels": [{"id": "ops", "type": "webhook", "url": "https://hooks.example.com/x"}],
            "checks": [
                {
                    "id": "api",
                    "type": "http",
                    "frequency": "1m",
                    "locations": ["eu-west-1", "us-east-1"],
                    "request": {"url": "https://api.example.com"},
                    "retry": retry or {"strategy": "none"},
                    "alert": alert
                    or {
                        "after_failures": 2,
                        "channels": ["ops"],
                        "notify_recovery": True,
                        "notify_degraded": True,
                    },
                }
            ],
        }
    )


def prepare(database_url: str, text: str) -> Any:
    settings = make_settings(SYNMON_DATABASE_URL=database_url)
    Session = sessions(database_url)
    with Session() as session:
        sync(session, load_text(text, "c.yaml", settings))
    return settings, Session


def result(status: str = "passed", started: datetime = NOW, **overrides: Any) -> RunResult:
    values: dict[str, Any] = {
        "status": status,
        "scheduled_at": started,
        "started_at": started,
        "finished_at": started + timedelta(milliseconds=20),
        "duration_ms": 20.0,
        "error": None if status != "failed" else "boom",
        "error_kind": None if status != "failed" else "network",
    }
    return run_result(**{**values, **overrides})


def store(Session: Any, settings: Any, results: Sequence[RunResult], now: datetime = NOW) -> Any:
    return store_with(Session, settings, results, CheckCache(), now)


def store_with(
    Session: Any,
    settings: Any,
    results: Sequence[RunResult],
    cache: CheckCache,
    now: datetime = NOW,
) -> Any:
    with Session.begin() as session:
        return store_results(session, results, settings, cache, now=now)


def rows(Session: Any, model: type) -> list[Any]:
    with Session() as session:
        return list(session.scalars(select(model)))


def test_a_result_is_stored_once_however_often_it_arrives(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    first, second = result(), result(started=NOW + timedelta(seconds=1))
    report = store(Session, settings, [first, first, second])
    assert (report.inserted, report.duplicates) == (2, 1)
    again = store(Session, settings, [second, first])
    assert (again.inserted, again.duplicates) == (0, 2)
    assert len(rows(Session, CheckRunRow)) == 2


def test_a_nul_character_is_stored_as_a_replacement_character(database_url: str) -> None:
    # Postgres stores NUL neither in text nor in jsonb, and a response body may hold one.
    settings, Session = prepare(database_url, definitions())
    binary = result(
        "failed", response={"body_excerpt": "PNG\x00\x01", "headers": {}}, error="got \x00"
    )
    assert store(Session, settings, [binary]).inserted == 1
    (run,) = rows(Session, CheckRunRow)
    assert run.response["body_excerpt"] == "PNG\ufffd\x01" and run.error == "got \ufffd"


def test_results_of_unknown_checks_are_kept(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    report = store(Session, settings, [result(check_id="removed-check")])
    assert report.inserted == 1
    (state,) = rows(Session, CheckStateRow)
    assert state.check_id == "removed-check" and state.status == "passing"


def test_alerts_after_n_failures_once_then_recovery(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    times = [NOW + timedelta(minutes=i) for i in range(6)]
    store(Session, settings, [result("failed", times[0])])
    assert rows(Session, NotificationRow) == []
    (state,) = rows(Session, CheckStateRow)
    assert state.status == "failing" and state.consecutive_failures == 1 and not state.alerting
    store(Session, settings, [result("failed", times[1])])
    store(Session, settings, [result("failed", times[2])])
    notifications = rows(Session, NotificationRow)
    assert [(n.event, n.channel_id) for n in notifications] == [("failure", "ops")]
    assert notifications[0].payload["error"] == "boom"
    store(Session, settings, [result("passed", times[3])])
    store(Session, settings, [result("degraded", times[4])])
    events = [n.event for n in rows(Session, NotificationRow)]
    assert events == ["failure", "recovery", "degraded"]
    (state,) = rows(Session, CheckStateRow)
    assert state.status == "degraded" and state.consecutive_failures == 0 and not state.alerting


def test_a_late_result_does_not_move_the_state_back(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    store(Session, settings, [result("passed", NOW + timedelta(minutes=5))])
    store(Session, settings, [result("failed", NOW)])
    (state,) = rows(Session, CheckStateRow)
    assert state.status == "passing" and state.consecutive_failures == 0
    assert len(rows(Session, CheckRunRow)) == 2


def test_a_state_row_is_written_only_when_its_verdict_moves(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    first = result("passed", NOW)
    store(Session, settings, [first], now=NOW)
    store(Session, settings, [result("passed", NOW + timedelta(minutes=1))], now=NOW + MINUTE)
    (state,) = rows(Session, CheckStateRow)
    # The second pass changed nothing that matters: the row still names the first run.
    assert (state.last_run_id, state.updated_at) == (first.run_id, NOW)
    failure = result("failed", NOW + timedelta(minutes=2))
    store(Session, settings, [failure], now=NOW + 2 * MINUTE)
    (state,) = rows(Session, CheckStateRow)
    assert (state.status, state.last_run_id, state.last_run_at) == (
        "failing",
        failure.run_id,
        failure.started_at,
    )
    # In one batch: a pass that moves the state, then one that does not.
    recovery = result("passed", NOW + 3 * MINUTE)
    store(Session, settings, [result("passed", NOW + 4 * MINUTE), recovery])
    (state,) = rows(Session, CheckStateRow)
    assert (state.status, state.last_run_id) == ("passing", recovery.run_id)


def test_a_late_result_behind_a_newer_run_that_moved_nothing_is_ignored(
    database_url: str,
) -> None:
    # The newer pass left no trace in the state row; the stored run itself must stop the
    # older failure from flipping the check to failing and alerting.
    settings, Session = prepare(
        database_url, definitions(alert={"after_failures": 1, "channels": ["ops"]})
    )
    store(Session, settings, [result("passed", NOW)])
    store(Session, settings, [result("passed", NOW + 2 * MINUTE)])
    store(Session, settings, [result("failed", NOW + MINUTE)])
    (state,) = rows(Session, CheckStateRow)
    assert state.status == "passing" and state.consecutive_failures == 0
    assert rows(Session, NotificationRow) == []


def test_two_ingest_transactions_take_turns_on_a_check(postgres_url: str) -> None:
    """An older failure is being stored while a newer pass arrives in another transaction.
    The pass must wait for the failure's commit and then move the check back to passing;
    deciding without the lock, it would see the old passing state, write nothing, and
    leave the check failing behind its newest result."""
    settings, Session = prepare(
        postgres_url, definitions(alert={"after_failures": 1, "channels": ["ops"]})
    )
    store(Session, settings, [result("passed", NOW)])
    older = Session()
    older.begin()
    store_results(older, [result("failed", NOW + MINUTE)], settings, CheckCache(), now=NOW)
    newer = threading.Thread(
        target=store, args=(Session, settings, [result("passed", NOW + 2 * MINUTE)])
    )
    newer.start()
    newer.join(timeout=1.0)
    assert newer.is_alive(), "the newer result did not wait for the check's lock"
    older.commit()
    older.close()
    newer.join(timeout=30)
    (state,) = rows(Session, CheckStateRow)
    assert state.status == "passing" and state.last_run_at == NOW + 2 * MINUTE
    assert [n.event for n in rows(Session, NotificationRow)] == ["failure", "recovery"]


def test_the_check_cache_stays_bounded_and_answers_every_check(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = [
        {"id": f"check-{i}", "type": "http", "request": {"url": "https://api.example.com"}}
        for i in range(25)
    ]
    _, Session = prepare(postgres_url, yaml.safe_dump({"checks": checks}))
    monkeypatch.setattr(CheckCache, "MAX_CHECKS", 10)
    cache = CheckCache()
    with Session() as session:
        for start in range(0, 25, 5):
            wanted = {f"check-{i}" for i in range(start, start + 5)}
            assert set(cache.load(session, wanted)) == wanted
            assert len(cache) <= 10
        # Forgotten checks come back from the database.
        assert set(cache.load(session, {"check-0", "check-24"})) == {"check-0", "check-24"}


def test_a_changed_definition_governs_ingest_within_its_freshness(postgres_url: str) -> None:
    settings, Session = prepare(postgres_url, definitions(alert={"after_failures": 2}))
    now = [0.0]
    cache = CheckCache(clock=lambda: now[0])

    def after_failures() -> int | None:
        with Session() as session:
            check = cache.load(session, {"api"}).get("api")
        return check.alert.after_failures if check else None

    def change(text: str) -> None:
        with Session() as session:
            sync(session, load_text(text, "c.yaml", settings))

    assert after_failures() == 2
    change(definitions(alert={"after_failures": 5}))
    now[0] += CheckCache.FRESH_SECONDS / 2
    assert after_failures() == 2
    now[0] += CheckCache.FRESH_SECONDS
    assert after_failures() == 5
    change(yaml.safe_dump({"checks": []}))
    now[0] += CheckCache.FRESH_SECONDS * 2
    assert after_failures() is None and len(cache) == 0


def test_a_failed_attempt_with_retries_left_schedules_a_retry_and_decides_nothing(
    database_url: str,
) -> None:
    settings, Session = prepare(
        database_url,
        definitions(
            retry={
                "strategy": "exponential",
                "max_retries": 2,
                "base_backoff": "5s",
                "max_duration": "2m",
                "same_region": False,
            },
            alert={"after_failures": 1, "channels": ["ops"]},
        ),
    )
    first = result("failed")
    report = store(Session, settings, [first])
    assert report.retries == 1
    (row,) = rows(Session, CheckRunRow)
    assert row.final is False
    assert rows(Session, CheckStateRow) == [] and rows(Session, NotificationRow) == []
    (outbox,) = rows(Session, OutboxRow)
    assert outbox.run_id == retry_run_id(first.run_id, 2)
    assert outbox.queue == "synmon-test-run-us-east-1-http"
    assert outbox.not_before == NOW + timedelta(seconds=5)
    # The same failed result delivered again schedules nothing more.
    assert store(Session, settings, [first]).retries == 0
    assert len(rows(Session, OutboxRow)) == 1

    second = result(
        "failed",
        run_id=outbox.run_id,
        attempt=2,
        root_run_id=first.run_id,
        location="us-east-1",
        started=NOW + timedelta(seconds=6),
        scheduled_at=NOW,
    )
    store(Session, settings, [second], now=NOW + timedelta(seconds=7))
    third_id = retry_run_id(first.run_id, 3)
    assert {o.run_id for o in rows(Session, OutboxRow)} == {outbox.run_id, third_id}
    third = result(
        "failed",
        run_id=third_id,
        attempt=3,
        root_run_id=first.run_id,
        started=NOW + timedelta(seconds=18),
        scheduled_at=NOW,
    )
    store(Session, settings, [third], now=NOW + timedelta(seconds=19))
    finals = [r for r in rows(Session, CheckRunRow) if r.final]
    assert [r.attempt for r in finals] == [3]
    assert {r.root_run_id for r in rows(Session, CheckRunRow)} == {first.run_id}
    (state,) = rows(Session, CheckStateRow)
    assert state.status == "failing" and state.consecutive_failures == 1
    assert [n.event for n in rows(Session, NotificationRow)] == ["failure"]


def test_a_retry_that_passes_neither_alerts_nor_counts(database_url: str) -> None:
    settings, Session = prepare(
        database_url,
        definitions(
            retry={"strategy": "fixed", "max_retries": 1},
            alert={"after_failures": 1, "channels": ["ops"]},
        ),
    )
    first = result("failed")
    store(Session, settings, [first])
    retry = result(
        "passed",
        run_id=retry_run_id(first.run_id, 2),
        attempt=2,
        root_run_id=first.run_id,
        started=NOW + timedelta(seconds=6),
    )
    store(Session, settings, [retry], now=NOW + timedelta(seconds=7))
    (state,) = rows(Session, CheckStateRow)
    assert state.status == "passing" and state.consecutive_failures == 0
    assert rows(Session, NotificationRow) == []


def test_relay_sends_each_retry_once_with_its_delay(database_url: str) -> None:
    settings, Session = prepare(
        database_url, definitions(retry={"strategy": "linear", "base_backoff": "30s"})
    )
    first = result("failed", started=datetime.now(UTC), scheduled_at=datetime.now(UTC))
    store(Session, settings, [first], now=datetime.now(UTC))
    sent: list[Outgoing] = []
    assert relay_outbox(Session, settings, sent.extend) == 1
    assert relay_outbox(Session, settings, sent.extend) == 0
    (message,) = sent
    assert 28 <= message.delay_seconds <= 30
    request = decode_run_request(run_request_of(message.body))
    assert (
        request.attempt == 2 and request.root_run_id == first.run_id and request.trigger == "retry"
    )
    with Session() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
            )
            == 0
        )


CHECK = Check.model_validate(
    {
        "id": "a",
        "type": "http",
        "locations": ["a", "b", "c"],
        "request": {"url": "https://x.example"},
    }
)


@pytest.mark.parametrize(
    ("strategy", "delays"),
    [("fixed", [5, 5, 5]), ("linear", [5, 10, 15]), ("exponential", [5, 10, 20])],
)
def test_backoff_strategies(strategy: str, delays: list[float]) -> None:
    policy = CHECK.retry.model_copy(update={"strategy": strategy, "base_backoff": 5.0})
    assert [backoff_seconds(policy, n) for n in (1, 2, 3)] == delays


def decide(
    status: str = "failed",
    attempt: int = 1,
    elapsed: float = 0,
    error_kind: str = "network",
    location: str = "a",
    **policy: Any,
) -> Any:
    check = CHECK.model_copy(
        update={"retry": CHECK.retry.model_copy(update={"strategy": "fixed", **policy})}
    )
    failed = result(status, location=location, attempt=attempt, error_kind=error_kind)
    return decide_retry(check, failed, NOW + timedelta(seconds=elapsed))


def test_retry_limits() -> None:
    assert decide("passed") is None
    assert decide(attempt=3, max_retries=2) is None
    assert decide(attempt=2, max_retries=2).attempt == 3
    assert decide(elapsed=118, max_duration=120.0, base_backoff=5.0) is None
    assert decide(elapsed=100, max_duration=120.0, base_backoff=5.0) is not None
    assert decide(error_kind="assertion", network_only=True) is None
    assert decide(error_kind="timeout", network_only=True) is not None
    assert decide(location="a", same_region=True).location == "a"
    assert decide(location="a", same_region=False).location == "b"
    assert decide(location="c", same_region=False).location == "a"


def test_a_configuration_failure_is_final_at_once(database_url: str) -> None:
    # The same definition fails the same way on every attempt: no retry, and it counts.
    settings, Session = prepare(
        database_url,
        definitions(
            retry={"strategy": "fixed", "max_retries": 2},
            alert={"after_failures": 1, "channels": ["ops"]},
        ),
    )
    report = store(Session, settings, [result("failed", error_kind="config", error="bad")])
    assert (report.inserted, report.retries, report.notifications) == (1, 0, 1)
    network = store(Session, settings, [result("failed", started=NOW + MINUTE)])
    assert network.retries == 1  # a network failure is still retried
