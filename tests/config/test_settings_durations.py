"""Durations in settings: retention takes no minutes (``6m`` is not six months), the web's
short spans need their unit, and the HTTP concurrency follows the pool."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config.errors import SynmonError
from config.settings import load_settings


@pytest.mark.parametrize("raw", ["6m", "90s", "0d", "-1d", "month"])
def test_a_retention_in_minutes_or_seconds_is_refused(raw: str) -> None:
    with pytest.raises((SynmonError, ValueError)) as caught:
        load_settings({"SYNMON_RUNS_RETENTION": raw})
    assert "SYNMON_RUNS_RETENTION" in str(caught.value)


def test_retention_and_web_spans_take_their_units() -> None:
    settings = load_settings(
        {
            "SYNMON_RUNS_RETENTION": "45",
            "SYNMON_HOURLY_ROLLUPS_RETENTION": "12w",
            "SYNMON_WEB_LOCKOUT": "90s",
            "SYNMON_WEB_SESSION_LIFETIME": "8h",
        }
    )
    assert settings.runs_retention == timedelta(days=45)
    assert settings.hourly_rollups_retention == timedelta(weeks=12)
    assert settings.web_lockout == timedelta(seconds=90)
    assert settings.web_session_lifetime == timedelta(hours=8)
    with pytest.raises((SynmonError, ValueError)) as caught:
        load_settings({"SYNMON_WEB_LOCKOUT": "15"})  # minutes or days? the unit is required
    assert "SYNMON_WEB_LOCKOUT" in str(caught.value)


def test_the_http_concurrency_follows_the_pool_unless_set() -> None:
    assert load_settings({}).http_concurrency == 100
    assert load_settings({"SYNMON_HTTP_POOL": "prefork"}).http_concurrency == 4
    prefork = load_settings({"SYNMON_HTTP_POOL": "prefork", "SYNMON_HTTP_CONCURRENCY": "12"})
    assert prefork.http_concurrency == 12
