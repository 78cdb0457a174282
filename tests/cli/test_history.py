"""``synmon report`` and ``synmon rollups --rebuild``, in this process (click's runner)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import delete

from app.cli import main
from app.cli.history import window
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


def test_report_refuses_a_window_that_is_not_a_duration(database_url: str) -> None:
    code, output = invoke(database_url, "report", "--since", "a month")
    assert code == 2 and "--since" in output


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("1.5d", timedelta(hours=36)), ("2h", timedelta(hours=2))],
)
def test_windows_in_days_or_as_other_durations(text: str, expected: timedelta) -> None:
    assert window(text) == expected
