"""A webhook's body from the channel's Jinja2 template, rendered in the immutable sandbox:
what a target controls cannot break out of it, and a template that misbehaves (a bug, an
escape attempt, output without end, loops without end) fails its own notification alone,
with the channel and the field named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from time import perf_counter
from typing import Any

import pytest
from sqlalchemy import select

from app.storage.models import NotificationRow
from tests.alerts.support import monitored
from tests.support.servers import TargetServer, http_target

TEMPLATE = """{
  "summary": {{ text | tojson }},
  "check": {{ check_name | tojson }},
  "where": {{ failing_locations | join(",") | tojson }},
  "incident": {{ (incident.key if incident else none) | tojson }}
}"""


@pytest.fixture
def hooks() -> Iterator[TargetServer]:
    with http_target() as server:
        yield server


def channel(hooks: TargetServer, channel_id: str, template: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {"id": channel_id, "type": "webhook", "url": hooks.url("/echo")}
    if template is not None:
        document["template"] = template
    return document


def test_a_template_makes_the_body(database_url: str, hooks: TargetServer) -> None:
    check = monitored(
        database_url,
        [channel(hooks, "templated", TEMPLATE), channel(hooks, "plain", None)],
        [hooks.port],
    )
    check.run("failed")
    assert check.send() == 2
    templated, plain = hooks.hits
    assert templated["headers"]["Content-Type"] == "application/json"
    body = json.loads(templated["body"])
    (incident,) = check.incidents()
    assert body == {
        "summary": "🔴 API is failing in eu-west-1: connection refused",
        "check": "API",
        "where": "eu-west-1",
        "incident": f"synmon:api:{incident.opened_by_run}",
    }
    # Without a template: the documented JSON, the payload with its incident and text.
    documented = json.loads(plain["body"])
    assert documented["event"] == "failure" and documented["incident"]["id"] == incident.id
    assert documented["text"] == body["summary"]


def test_a_hostile_error_stays_inside_its_json_string(
    database_url: str, hooks: TargetServer
) -> None:
    check = monitored(database_url, [channel(hooks, "templated", TEMPLATE)], [hooks.port])
    # A result's error is the target's text: quotes and braces in it must not end the string.
    check.run("failed")
    with check.Session.begin() as session:
        row = session.scalars(select(NotificationRow)).one()
        row.payload = {**row.payload, "check_name": '", "admin": true, "x": "{{ 7*7 }}'}
    assert check.send() == 1
    body = json.loads(hooks.hits[0]["body"])
    assert body["check"] == '", "admin": true, "x": "{{ 7*7 }}'
    assert "admin" not in body


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{ failing_locations.append('x') }}", "refused by the template sandbox"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ('{% for i in range(100000) %}{{ "x" * 100 }}{% endfor %}', "output exceeds"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "exceeded its limits",
        ),
        ('{{ "x" * 2000000000 }}', "exceeded its limits"),
        (
            '{% set a = "x" * 1000000 %}{% set b = a ~ a ~ a ~ a %}{% set c = b ~ b ~ b ~ b %}'
            "{% set d = c ~ c ~ c ~ c %}{% set e = d ~ d ~ d ~ d %}{% set f = e ~ e ~ e ~ e %}"
            "{{ f | length }}",
            "exceeded its limits",
        ),
    ],
)
def test_a_misbehaving_template_fails_its_notification_alone(
    database_url: str, hooks: TargetServer, template: str, error: str
) -> None:
    check = monitored(
        database_url,
        [channel(hooks, "broken", template), channel(hooks, "fine", TEMPLATE)],
        [hooks.port],
    )
    check.run("failed")
    started = perf_counter()
    assert check.send() == 2
    assert perf_counter() - started < 10
    rows = {n.channel_id: n for n in check.notifications()}
    assert rows["fine"].status == "sent" and len(hooks.hits) == 1
    assert rows["broken"].status == "failed"  # permanent: the same template fails again
    message = rows["broken"].last_error or ""
    assert message.startswith("channel broken: template: ") and error in message
