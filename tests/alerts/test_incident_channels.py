"""Each notification names its incident, and the channels that deduplicate use it: a
check fails and recovers through the real ingest, the sender delivers to local servers
that speak PagerDuty's Events API v2, Opsgenie's Alert API and a Teams webhook."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from app.storage.models import ChannelRow, NotificationRow
from tests.alerts.support import monitored
from tests.support.notifications import ChannelAPIServer, channel_apis
from tests.support.servers import TargetServer, http_target

ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"
GENIE_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"


@pytest.fixture
def apis() -> Iterator[ChannelAPIServer]:
    with channel_apis(ROUTING_KEY, GENIE_KEY) as server:
        yield server


@pytest.fixture
def hooks() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


def bodies(server: TargetServer) -> list[dict[str, Any]]:
    return [json.loads(hit["body"]) for hit in server.hits]


def test_each_notification_names_its_incident(database_url: str, hooks: TargetServer) -> None:
    check = monitored(
        database_url, [{"id": "hook", "type": "webhook", "url": hooks.url("/echo")}], [hooks.port]
    )
    check.run("failed", "failed", "passed", "failed", "passed", "degraded")
    assert check.send() == 5
    first, second = check.incidents()
    failure1, recovery1, failure2, recovery2, degraded = bodies(hooks)
    assert [b["event"] for b in (failure1, recovery1, failure2, recovery2, degraded)] == [
        "failure",
        "recovery",
        "failure",
        "recovery",
        "degraded",
    ]
    for body, incident in ((failure1, first), (recovery1, first), (failure2, second)):
        assert body["incident"]["id"] == incident.id
        assert datetime.fromisoformat(body["incident"]["opened_at"]) == incident.opened_at
        assert body["incident"]["locations"] == ["eu-west-1"]
    # One key per incident, the same for its failure and its recovery, another for the next.
    assert failure1["incident"]["key"] == recovery1["incident"]["key"]
    assert failure2["incident"]["key"] == recovery2["incident"]["key"]
    assert failure1["incident"]["key"] != failure2["incident"]["key"]
    assert failure1["incident"]["key"] == f"synmon:api:{first.opened_by_run}"
    assert recovery1["incident"]["closed_at"] is not None
    # A degraded notice belongs to no incident, and is sent all the same.
    assert degraded["incident"] is None
    assert {n.status for n in check.notifications()} == {"sent"}


def test_an_alert_opened_before_incidents_existed_still_recovers(
    database_url: str, hooks: TargetServer
) -> None:
    """A release before incidents sent the failure: its recovery finds no incident."""
    check = monitored(
        database_url, [{"id": "hook", "type": "webhook", "url": hooks.url("/echo")}], [hooks.port]
    )
    now = datetime.now(UTC)
    with check.Session.begin() as session:
        session.add(
            NotificationRow(
                check_id="api",
                channel_id="hook",
                event="recovery",
                run_id=uuid.uuid4(),
                payload={"event": "recovery", "check_id": "api", "location": "eu-west-1"},
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    assert check.send() == 1
    (body,) = bodies(hooks)
    assert body["event"] == "recovery" and body["incident"] is None
    assert check.notifications()[0].status == "sent"


def pagerduty(apis: ChannelAPIServer, **extra: Any) -> dict[str, Any]:
    return {
        "id": "pd",
        "type": "pagerduty",
        "routing_key": "{{PD_ROUTING_KEY}}",
        "url": apis.url("/v2/enqueue"),
        **extra,
    }


def test_pagerduty_triggers_and_resolves_one_alert_per_incident(
    database_url: str, apis: ChannelAPIServer
) -> None:
    check = monitored(
        database_url, [pagerduty(apis)], [apis.port], SYNMON_VAR_PD_ROUTING_KEY=ROUTING_KEY
    )
    check.run("failed", "failed")
    assert check.send() == 1
    (incident,) = check.incidents()
    key = f"synmon:api:{incident.opened_by_run}"
    assert list(apis.open_alerts) == [key]
    (trigger,) = apis.events
    assert trigger["event_action"] == "trigger" and trigger["routing_key"] == ROUTING_KEY
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"].startswith("🔴 API is failing in eu-west-1")
    assert trigger["payload"]["component"] == "api"

    check.run("passed", "failed", "passed")
    assert check.send() == 3
    assert apis.open_alerts == {}
    actions = [(e["event_action"], e["dedup_key"]) for e in apis.events]
    first, second = (f"synmon:api:{i.opened_by_run}" for i in check.incidents())
    # The second failure is sent after its incident closed (the sender was behind):
    # it resolves what it triggers, and its recovery resolves again, which changes nothing.
    assert actions == [
        ("trigger", first),
        ("resolve", first),
        ("trigger", second),
        ("resolve", second),
        ("resolve", second),
    ]
    # The routing key is stored as its placeholder, never in clear.
    with check.Session() as session:
        stored = session.get(ChannelRow, "pd")
        assert stored is not None and stored.config["routing_key"] == "{{PD_ROUTING_KEY}}"
        assert ROUTING_KEY not in json.dumps(stored.config)


def test_a_failure_retried_after_its_recovery_leaves_no_alert_open(
    database_url: str, apis: ChannelAPIServer
) -> None:
    check = monitored(
        database_url, [pagerduty(apis)], [apis.port], SYNMON_VAR_PD_ROUTING_KEY=ROUTING_KEY
    )
    apis.fail_with = [503]
    check.run("failed")
    check.send()
    (failure,) = check.notifications()
    assert failure.status == "pending" and "503" in (failure.last_error or "")
    check.run("passed")  # the recovery goes out while the failure waits for its retry
    check.send()
    check.make_due(failure.id)
    check.send()
    assert {n.status for n in check.notifications()} == {"sent"}
    key = f"synmon:api:{check.incidents()[0].opened_by_run}"
    assert [(e["event_action"], e["dedup_key"]) for e in apis.events] == [
        ("resolve", key),
        ("trigger", key),
        ("resolve", key),
    ]
    assert apis.open_alerts == {}


def test_pagerduty_refusals_are_permanent_and_outages_are_not(
    database_url: str, apis: ChannelAPIServer
) -> None:
    wrong_key = "W" * 32
    check = monitored(
        database_url,
        [
            pagerduty(apis),
            pagerduty(apis, id="unset", routing_key="{{NOT_SET}}"),
            pagerduty(apis, id="throttled"),
        ],
        [apis.port],
        SYNMON_VAR_PD_ROUTING_KEY=wrong_key,
    )
    apis.fail_with = [429]  # the first request sent is the "pd" channel's
    check.run("failed")
    check.send()
    rows = {n.channel_id: n for n in check.notifications()}
    assert rows["pd"].status == "pending" and "429" in (rows["pd"].last_error or "")
    assert rows["unset"].status == "failed"
    assert "SYNMON_VAR_NOT_SET" in (rows["unset"].last_error or "")
    assert rows["throttled"].status == "failed"
    error = rows["throttled"].last_error or ""
    assert "refused the notification (400)" in error and "'routing_key' is invalid" in error
    assert wrong_key not in error
    assert apis.open_alerts == {}


def test_opsgenie_creates_an_alert_by_alias_and_closes_it(
    database_url: str, apis: ChannelAPIServer
) -> None:
    check = monitored(
        database_url,
        [
            {
                "id": "genie",
                "type": "opsgenie",
                "api_key": "{{GENIE_KEY}}",
                "url": apis.url(""),
                "priority": "P2",
            }
        ],
        [apis.port],
        SYNMON_VAR_GENIE_KEY=GENIE_KEY,
    )
    check.run("failed")
    assert check.send() == 1
    (incident,) = check.incidents()
    key = f"synmon:api:{incident.opened_by_run}"
    assert list(apis.open_alerts) == [key]
    created = apis.open_alerts[key]
    assert created["priority"] == "P2" and created["entity"] == "api"
    assert created["message"].startswith("🔴 API is failing")
    assert created["details"]["error"] == "connection refused"
    assert (
        apis.hits[0]["headers"]["Authorization"] == f"GenieKey {GENIE_KEY}"
    )  # from the placeholder

    check.run("passed")
    assert check.send() == 1
    assert apis.open_alerts == {}
    assert [(e["action"], e["alias"]) for e in apis.events] == [("create", key), ("close", key)]
    assert {n.status for n in check.notifications()} == {"sent"}


def test_opsgenie_with_a_wrong_key_fails_for_good_without_showing_it(
    database_url: str, apis: ChannelAPIServer
) -> None:
    check = monitored(
        database_url,
        [{"id": "genie", "type": "opsgenie", "api_key": "{{GENIE_KEY}}", "url": apis.url("")}],
        [apis.port],
        SYNMON_VAR_GENIE_KEY="not-the-key",
    )
    check.run("failed")
    check.send()
    (row,) = check.notifications()
    assert row.status == "failed" and "(401)" in (row.last_error or "")
    assert "Could not authenticate" in (row.last_error or "")
    assert "not-the-key" not in (row.last_error or "")


def texts(element: Any, inside_run: bool = False) -> Iterator[tuple[str, bool]]:
    """Every text of a card, and whether it is a TextRun (shown as plain text)."""
    if isinstance(element, dict):
        if isinstance(element.get("text"), str):
            yield element["text"], element.get("type") == "TextRun"
        for value in element.values():
            yield from texts(value)
    elif isinstance(element, list):
        for item in element:
            yield from texts(item)


def test_teams_gets_an_adaptive_card_with_what_targets_control_as_plain_text(
    database_url: str, apis: ChannelAPIServer
) -> None:
    check = monitored(
        database_url,
        [{"id": "teams", "type": "teams", "url": apis.url("/{{TEAMS_PATH}}")}],
        [apis.port],
        SYNMON_VAR_TEAMS_PATH="teams",
    )
    hostile = "**urgent** [click](https://evil.example) <at>everyone</at> <img src=x>"
    with check.Session.begin() as session:
        now = datetime.now(UTC)
        session.add(
            NotificationRow(
                check_id="api",
                channel_id="teams",
                event="failure",
                run_id=uuid.uuid4(),
                payload={
                    "event": "failure",
                    "check_id": "api",
                    "check_name": "Shop _API_",
                    "location": "eu-west-1",
                    "error": hostile,
                },
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    assert check.send() == 1
    (message,) = apis.events
    card = message["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    found = list(texts(card["body"]))
    # The hostile text arrives whole, and only where Teams shows text as it is.
    assert (hostile, True) in found
    assert any("Shop _API_" in text and run for text, run in found)
    markdown = [text for text, run in found if not run]
    assert markdown == ["Check failing"]


def test_every_channel_goes_through_the_target_guard(
    database_url: str, apis: ChannelAPIServer
) -> None:
    check = monitored(
        database_url,
        [
            pagerduty(apis),
            {"id": "genie", "type": "opsgenie", "api_key": "{{K}}", "url": apis.url("")},
            {"id": "teams", "type": "teams", "url": apis.url("/{{TEAMS_PATH}}")},
        ],
        (),  # the local server's port is not allowed
        SYNMON_VAR_PD_ROUTING_KEY=ROUTING_KEY,
        SYNMON_VAR_TEAMS_PATH="teams",
        SYNMON_VAR_K=GENIE_KEY,
    )
    check.run("failed")
    check.send()
    for row in check.notifications():
        assert row.status == "failed"
        assert "loopback addresses are not allowed" in (row.last_error or "")
    assert apis.hits == []


def test_a_redirect_is_not_taken_for_a_delivery(database_url: str, hooks: TargetServer) -> None:
    moved = hooks.url("/redirect?code=302&to=https://elsewhere.example/hook")
    check = monitored(database_url, [{"id": "hook", "type": "webhook", "url": moved}], [hooks.port])
    check.run("failed")
    check.send()
    (row,) = check.notifications()
    assert row.status == "failed" and "answered a redirect (302)" in (row.last_error or "")
    assert len(hooks.hits) == 1  # not followed


def test_a_degraded_notice_warns_pagerduty_without_an_incident(
    database_url: str, apis: ChannelAPIServer
) -> None:
    check = monitored(
        database_url, [pagerduty(apis)], [apis.port], SYNMON_VAR_PD_ROUTING_KEY=ROUTING_KEY
    )
    check.run("degraded")
    assert check.send() == 1
    (event,) = apis.events
    assert event["event_action"] == "trigger" and event["dedup_key"] == "synmon:api:degraded"
    assert event["payload"]["severity"] == "warning"
    assert check.incidents() == []
