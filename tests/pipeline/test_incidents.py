"""Incidents: one per alerting period of a check, opened and closed by ingest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from app.storage.incidents import IncidentRow
from app.storage.models import CheckLocationStateRow, CheckStateRow, NotificationRow
from tests.pipeline.test_ingest import MINUTE, NOW, definitions, prepare, result, rows, store

EU, US = "eu-west-1", "us-east-1"


def incidents(Session: Any) -> list[IncidentRow]:
    return sorted(rows(Session, IncidentRow), key=lambda row: row.opened_at)


def test_an_incident_opens_with_the_failure_notice_and_closes_with_the_recovery(
    database_url: str,
) -> None:
    settings, Session = prepare(database_url, definitions())
    times = [NOW + timedelta(minutes=i) for i in range(5)]
    store(Session, settings, [result("failed", times[0])])
    assert incidents(Session) == []  # one failure of the two the policy asks for
    opening = result("failed", times[1])
    store(Session, settings, [opening])
    (incident,) = incidents(Session)
    assert (incident.check_id, incident.opened_at, incident.opened_by_run) == (
        "api",
        times[1],
        opening.run_id,
    )
    assert incident.locations == [EU] and incident.closed_at is None
    store(Session, settings, [result("failed", times[2])])  # still the same incident
    recovery = result("passed", times[3])
    store(Session, settings, [recovery])
    (incident,) = incidents(Session)
    assert (incident.closed_at, incident.closed_by_run) == (times[3], recovery.run_id)
    events = [n.event for n in rows(Session, NotificationRow)]
    assert events == ["failure", "recovery"]


def test_a_redelivered_result_opens_nothing_twice(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    first, second = result("failed", NOW), result("failed", NOW + timedelta(minutes=1))
    store(Session, settings, [first, second])
    store(Session, settings, [second, first])
    store(Session, settings, [first])
    assert len(incidents(Session)) == 1


def test_two_failing_periods_are_two_incidents_even_within_one_batch(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    statuses = ["failed", "failed", "passed", "failed", "failed"]
    batch = [result(s, NOW + timedelta(minutes=i)) for i, s in enumerate(statuses)]
    store(Session, settings, batch)
    first, second = incidents(Session)
    assert first.closed_at == NOW + timedelta(minutes=2)
    assert second.opened_at == NOW + timedelta(minutes=4) and second.closed_at is None


def test_both_locations_down_is_one_incident(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    for minute in range(4):
        at = NOW + timedelta(minutes=minute)
        store(Session, settings, [result("failed", at, location=EU)])
        store(Session, settings, [result("failed", at + timedelta(seconds=5), location=US)])
    (incident,) = incidents(Session)
    # The locations failing when it opened: us-east-1 had failed once by then.
    assert incident.locations == [EU, US] and incident.closed_at is None


def test_an_incident_left_open_ends_where_the_next_one_opens(database_url: str) -> None:
    # Left open by the release before (it recovered the check without knowing incidents),
    # or by a check removed by a sync and added again: the next alert must still store
    # its batch (a second open incident would break the unique index and fail it).
    settings, Session = prepare(database_url, definitions())
    store(Session, settings, [result("failed", NOW), result("failed", NOW + MINUTE)])
    with Session.begin() as session:
        session.execute(delete(CheckStateRow))
        session.execute(delete(CheckLocationStateRow))
    later = [result("failed", NOW + timedelta(minutes=10 + i)) for i in range(2)]
    report = store(Session, settings, later)
    assert report.inserted == 2
    stale, fresh = incidents(Session)
    assert stale.closed_at == later[1].started_at and stale.closed_by_run is None
    assert fresh.opened_by_run == later[1].run_id and fresh.closed_at is None
