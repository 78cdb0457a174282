"""``synmon report``, ``synmon incidents`` and ``synmon rollups --rebuild``, in this process
(click's runner)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete

from app.cli import main
from app.cli.history import duration_text, window
from app.storage.models import DAILY_ROLLUPS, HOURLY_ROLLUPS
from config.settings import reset_settings
from tests.pipeline.test_ingest import definitions, prepare, result, store


def invoke(database_url: str, *arguments: str) -> tuple[int, str]:
    reset_settings()  # storing results read the settings of this process's environment
    outcome = CliRunner().invoke(
        main, list(arguments), env={"SYNMON_DATABASE_URL": database_url, "SYNMON_ENV": "test"}
    )
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    return outcome.exit_code, outcome.output


def test_report_and_rebuild(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    now = datetime.now(UTC)
    results = [
        result(status, now - timedelta(hours=hours), duration_ms=100.0)
        for hours, status in ((30, "passed"), (5, "failed"), (2, "passed"), (0, "degraded"))
    ]
    store(Session, settings, results, now=now)
    code, output = invoke(database_url, "report", "--since", "2d", "--json")
    assert code == 0, output
    (line,) = json.loads(output)["lines"]
    assert (line["key"], line["runs"], line["failed"], line["uptime_pct"]) == ("api", 4, 1, 75.0)
    assert line["p50_ms"] == pytest.approx(100.0)

    with Session.begin() as session:  # as if a release without rollups had stored them
        session.execute(delete(HOURLY_ROLLUPS))
        session.execute(delete(DAILY_ROLLUPS))
    code, output = invoke(database_url, "rollups", "--rebuild", "--since", "3d")
    assert code == 0 and "recounted" in output, output
    code, output = invoke(database_url, "report", "--since", "2d", "--by", "location")
    assert code == 0, output
    assert "eu-west-1" in output and " 75.000%" in output and "from " in output
    assert "incidents" in output.splitlines()[1]


def failing_period(Session: Any, settings: Any, start: datetime, recovers: bool) -> None:
    """Two failures (the policy's after_failures) open an incident; a pass closes it."""
    statuses = ["failed", "failed", *(["passed"] if recovers else [])]
    store(
        Session,
        settings,
        [result(s, start + timedelta(minutes=i)) for i, s in enumerate(statuses)],
        now=start,
    )


def test_incidents_are_listed_and_counted_in_the_report(database_url: str) -> None:
    settings, Session = prepare(database_url, definitions())
    now = datetime.now(UTC).replace(microsecond=0)
    failing_period(Session, settings, now - timedelta(days=10), recovers=True)
    failing_period(Session, settings, now - timedelta(hours=3), recovers=True)
    failing_period(Session, settings, now - timedelta(minutes=30), recovers=False)

    code, output = invoke(database_url, "incidents", "--json")
    assert code == 0, output
    listed = json.loads(output)["incidents"]
    assert [(i["check_id"], i["open"]) for i in listed] == [
        ("api", True),
        ("api", False),
        ("api", False),
    ]
    newest, middle, oldest = listed
    assert middle["duration_s"] == 60.0 and middle["locations"] == ["eu-west-1"]
    assert newest["closed_at"] is None and newest["duration_s"] >= 29 * 60
    assert datetime.fromisoformat(oldest["opened_at"]) == now - timedelta(days=10, minutes=-1)

    code, output = invoke(database_url, "incidents", "--since", "1d", "--json")
    assert len(json.loads(output)["incidents"]) == 2
    code, output = invoke(database_url, "incidents", "--open", "--json")
    assert [i["id"] for i in json.loads(output)["incidents"]] == [newest["id"]]
    code, output = invoke(database_url, "incidents", "--check", "other", "--json")
    assert json.loads(output)["incidents"] == []
    code, output = invoke(database_url, "incidents", "--since", "30d", "--limit", "1")
    assert code == 0 and len(output.splitlines()) == 2, output
    assert "open" in output and "eu-west-1" in output

    code, output = invoke(database_url, "report", "--since", "1d", "--json")
    (line,) = json.loads(output)["lines"]
    assert line["incidents"] == 2
    code, output = invoke(database_url, "report", "--since", "30d", "--by", "location", "--json")
    (line,) = json.loads(output)["lines"]
    assert (line["key"], line["incidents"]) == ("eu-west-1", 3)


def test_incidents_without_any_and_with_bad_options(database_url: str) -> None:
    prepare(database_url, definitions())
    code, output = invoke(database_url, "incidents")
    assert code == 0 and output.strip() == "no incidents"
    code, output = invoke(database_url, "incidents", "--since", "soon")
    assert code == 2 and "--since" in output
    code, output = invoke(database_url, "incidents", "--limit", "0")
    assert code == 2 and "--limit" in output


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(42.9, "42s"), (200, "3m 20s"), (7_500, "2h 05m"), (100_800, "1d 4h")],
)
def test_durations_read_in_their_two_largest_units(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_report_refuses_a_window_that_is_not_a_duration(database_url: str) -> None:
    code, output = invoke(database_url, "report", "--since", "a month")
    assert code == 2 and "--since" in output


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("1.5d", timedelta(hours=36)), ("2h", timedelta(hours=2))],
)
def test_windows_in_days_or_as_other_durations(text: str, expected: timedelta) -> None:
    assert window(text) == expected
